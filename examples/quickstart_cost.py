"""The quickstart's time and return at today's defaults against the defaults before the ladder, in one process.

Run: ``python examples/quickstart_cost.py [--seeds 0 1 2] [--timesteps 6000]``. For each seed it trains the
quickstart (``examples/quickstart.py``: Pendulum-v1, its small settings, one torch thread) once with DSDPG's current
defaults and once with the defaults before the ladder of docs/ablations.md (``target_returns="model"``,
``critic_actions="policy"``, SiLU networks, critic noise shared across the batch), the two interleaved so that both
see the same machine load, and prints the training seconds, the evaluation (10 deterministic episodes) and the time
ratio.
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch as th
from quickstart import small_settings
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from torch import nn

from sb3_dsdpg import DSDPG


def train(seed: int, timesteps: int, before: bool) -> tuple[float, float]:
    """Seconds of ``learn`` and the evaluation of the quickstart with one seed."""
    settings = small_settings(1)
    if before:
        settings.update(target_returns="model", critic_actions="policy")
        settings["policy_kwargs"] = dict(settings["policy_kwargs"], activation_fn=nn.SiLU, share_critic_noise=True)
    model = DSDPG("MlpPolicy", gym.make("Pendulum-v1"), seed=seed, **settings)
    start = time.perf_counter()
    model.learn(timesteps)
    seconds = time.perf_counter() - start
    mean, _ = evaluate_policy(model, Monitor(gym.make("Pendulum-v1")), n_eval_episodes=10, deterministic=True)
    return seconds, float(mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=6000)
    args = parser.parse_args()
    th.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        now = train(seed, args.timesteps, before=False)
        then = train(seed, args.timesteps, before=True)
        rows.append((seed, *now, *then))
        print(f"seed {seed}: today {now[0]:.0f} s, {now[1]:.1f}; before the ladder {then[0]:.0f} s, {then[1]:.1f}", flush=True)
    table = np.array(rows)
    print(f"\n1 torch thread, {args.timesteps} steps, seeds {args.seeds}")
    for name, column in (("today", 1), ("before the ladder", 3)):
        returns = ", ".join(f"{value:.0f}" for value in table[:, column + 1])
        print(f"{name}: {table[:, column].mean():.0f} s per run, return {table[:, column + 1].mean():.1f} ({returns})")
    print(f"time ratio today / before: {table[:, 1].sum() / table[:, 3].sum():.2f}")


if __name__ == "__main__":
    main()
