"""The quickstart's time and return, against references trained in the same process on the same seeds.

Run: ``python examples/quickstart_cost.py [--seeds 0 1 2] [--timesteps 6000] [--against before td3 tqc] [--tau 0.02]``.
For each seed it trains the quickstart (``examples/quickstart.py``: Pendulum-v1, its settings, one torch thread) with
DSDPG's current defaults and, interleaved so that all see the same machine load, each reference of ``--against``:

- ``before``: DSDPG with the defaults before the ladder of docs/ablations.md (``target_returns="model"``,
  ``critic_actions="policy"``, SiLU networks, critic noise shared across the batch, foreach Adam for actor and
  critic; the world model's Adam is fused as today's);
- ``td3`` / ``tqc``: SB3's TD3 / sb3-contrib's TQC with the quickstart's settings where they mean the same (learning
  rate, gamma, batch, learning starts, tau, action noise, 64x64 networks). Their times are the yardstick of the
  machine: the environment loop is the same, so the ratio to them carries over between machines better than seconds.

``--tau`` overrides the quickstart's Polyak coefficient for every model (``--tau 0.005``: TD3's default, the
quickstart's before 2026-12-03); ``--dsdpg-kwargs JSON`` overrides arguments of today's DSDPG (e.g.
``'{"world_model_learning_rate": 0.001}'``). It prints the training seconds (``learn``: rollouts, the world model's
warm-up, the updates) and the evaluation (10 deterministic episodes from seeded start states) per seed, their means
and the time ratios.
"""

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch as th
from quickstart import evaluation_env, quickstart_settings
from stable_baselines3 import TD3
from stable_baselines3.common.evaluation import evaluate_policy
from torch import nn

from sb3_dsdpg import DSDPG
from sb3_dsdpg.tools.machine import cpu_description

SHARED = ("learning_rate", "gamma", "batch_size", "learning_starts", "tau", "action_noise", "policy_kwargs")


def build(name: str, seed: int, tau: float | None = None, dsdpg_kwargs: dict | None = None):
    """The quickstart's model for ``name``: ``today`` (DSDPG's defaults plus ``dsdpg_kwargs``), ``before``, ``td3`` or
    ``tqc``."""
    settings = quickstart_settings(1)
    if name == "today":
        settings.update(dsdpg_kwargs or {})
    if tau is not None:
        settings["tau"] = tau
    env = gym.make("Pendulum-v1")
    if name == "before":
        settings.update(target_returns="model", critic_actions="policy")
        settings["policy_kwargs"] = dict(
            settings["policy_kwargs"],
            activation_fn=nn.SiLU,
            share_critic_noise=True,
            optimizer_kwargs=dict(foreach=True),
        )
    if name in ("today", "before"):
        return DSDPG("MlpPolicy", env, seed=seed, **settings)
    shared = {key: settings[key] for key in SHARED}
    if name == "td3":
        return TD3("MlpPolicy", env, seed=seed, **shared)
    from sb3_contrib import TQC  # the baselines extra

    return TQC("MlpPolicy", env, seed=seed, **shared)


def train(
    name: str, seed: int, timesteps: int, tau: float | None = None, dsdpg_kwargs: dict | None = None
) -> tuple[float, float]:
    """Seconds of ``learn`` and the evaluation of the quickstart with one seed."""
    model = build(name, seed, tau, dsdpg_kwargs)
    start = time.perf_counter()
    model.learn(timesteps)
    seconds = time.perf_counter() - start
    mean, _ = evaluate_policy(model, evaluation_env(seed), n_eval_episodes=10, deterministic=True)
    return seconds, float(mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=6000)
    parser.add_argument("--against", nargs="*", choices=["before", "td3", "tqc"], default=["before", "td3"])
    parser.add_argument("--tau", type=float, default=None, help="Polyak coefficient of every model (default: 0.02)")
    parser.add_argument("--dsdpg-kwargs", type=json.loads, default={}, help="JSON: arguments of today's DSDPG")
    args = parser.parse_args()
    th.set_num_threads(1)
    names = ["today", *args.against]
    results = {name: [] for name in names}
    for seed in args.seeds:
        for name in names:
            results[name].append(train(name, seed, args.timesteps, args.tau, args.dsdpg_kwargs))
        row = "; ".join(f"{name} {results[name][-1][0]:.0f} s, {results[name][-1][1]:.1f}" for name in names)
        print(f"seed {seed}: {row}", flush=True)
    tau = quickstart_settings(1)["tau"] if args.tau is None else args.tau
    print(f"\n1 torch thread, {args.timesteps} steps, seeds {args.seeds}, tau {tau}; {cpu_description()}")
    for name in names:
        table = np.array(results[name])
        returns = ", ".join(f"{value:.0f}" for value in table[:, 1])
        print(f"{name:7s} {table[:, 0].mean():6.1f} s per run, return {table[:, 1].mean():7.1f} ({returns})")
    today = np.array(results["today"])[:, 0].sum()
    for name in args.against:
        print(f"time ratio today / {name}: {today / np.array(results[name])[:, 0].sum():.2f}")


if __name__ == "__main__":
    main()
