"""Quickstart: train DSDPG briefly on Pendulum-v1 and print a deterministic evaluation.

Run: ``python examples/quickstart.py [--timesteps 6000] [--seed 0]``. Small networks keep it to a few minutes on one
CPU core. Measured with ``examples/quickstart_cost.py --against td3 tqc`` (2026-12-03 10:34-10:50, idle 2-core
machine, nothing else running, 1 torch thread, seeds 0-2, every model trained in one process on the same settings,
the evaluation's start states seeded; results/quickstart/quickstart_cost_batch_variance.txt):
- returns -113, -147 and -170 (mean -143): -200 or better on each seed. TD3 at the same settings: -121, -148, -171;
  TQC: -112, -144, -165. The Polyak coefficient ``tau=0.02`` did it (see :func:`quickstart_settings`): at TD3's
  0.005 DSDPG scored -330, -296, -270 and TD3 -340, -345, -348 (results/quickstart/).
- time: 146, 146 and 154 s of training. **Not the one minute we aim for.** TQC took 107 s per run in the same
  process, TD3 32 s; DSDPG is 1.39x TQC (1.46x at 08:16 the same day; fused Adam, a two-pass batch
  variance and a one-pass ReLU derivative save about 7% of an update, timed in one process).
  On 2026-12-02 the machine ran more than twice as fast (the pre-ladder defaults took 57 s, 133 s a day later);
  at 1.39x TQC the quickstart would take about 60 s there, an estimate, not a measurement. Measured four times on
  2026-12-03 (10:34, 11:55, 17:08 and 18:01; results/quickstart/quickstart_cost_*2026-12-03*.txt and
  quickstart_cost_batch_variance.txt): 133-149 s per run, TQC 92-111 s and TD3 25-32 s beside it, 1.32-1.46x TQC,
  the same returns to 0.1 each time (docs/benchmarks.md, "The quickstart through the day"). On 2026-12-04, 15:48-15:56,
  probably on another CPU (results/quickstart/quickstart_cost_2026-12-04.txt): 92, 77 and 89 s (mean 86), TQC 52 s,
  TD3 16 s, 1.64x TQC, returns -118, -146, -168; at 16:53 on the day's last code 82 s, TQC 50 s, 1.66x, returns -119,
  -148, -170 (results/quickstart/quickstart_cost_2026-12-04_rsqrt.txt).
  Why not a minute: an update is 1,790 torch operations at about 10 us each on this machine (TD3 396, TQC 769), so
  5,000 updates cost 83 s before any arithmetic (``python -m sb3_dsdpg.benchmarks.update_cost --preset quickstart
  --floor``; docs/benchmarks.md). On 2026-12-04's machine an operation cost 4.5 us (1,701 of them, 7.7 ms an update at
  batch 8; 13.2 ms at the quickstart's 128, TQC 7.6; results/quickstart/update_floor_2026-12-04.txt).
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise

from sb3_dsdpg import DSDPG


def small_settings(action_dim: int) -> dict:
    """
    The quickstart's DSDPG arguments (also used by ``ablations.py``): 64x64 actor, critics and world model, batch
    128, learning rate 1e-3, gamma 0.98, normal action noise 0.1, 1000 random steps before learning.
    """
    return dict(
        learning_rate=1e-3,
        gamma=0.98,
        batch_size=128,
        learning_starts=1000,
        action_noise=NormalActionNoise(np.zeros(action_dim), 0.1 * np.ones(action_dim)),
        policy_kwargs=dict(net_arch=[64, 64]),
        world_model_kwargs=dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64]),
    )


def quickstart_settings(action_dim: int) -> dict:
    """
    The quickstart's DSDPG arguments: :func:`small_settings` with the target networks' Polyak coefficient ``tau`` at
    0.02 instead of TD3's 0.005. In a run of 5,000 updates TD3's rate leaves the targets hundreds of updates behind;
    at 0.02 TD3 itself with the same settings goes from -345 to -154 on seeds 0-2 of this quickstart (see the
    docstring above), and it costs nothing.
    """
    return dict(small_settings(action_dim), tau=0.02)


def evaluation_env(seed: int) -> Monitor:
    """Pendulum-v1 for the evaluation, its start states seeded (``seed + 1000``) so that an evaluation is repeatable."""
    env = Monitor(gym.make("Pendulum-v1"))
    env.reset(seed=seed + 1000)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    env = gym.make("Pendulum-v1")
    model = DSDPG("MlpPolicy", env, seed=args.seed, verbose=0, **quickstart_settings(env.action_space.shape[0]))
    random_return = evaluate_policy(model, evaluation_env(args.seed), n_eval_episodes=5, deterministic=True)[0]
    start = time.time()
    model.learn(args.timesteps, progress_bar=True)
    mean, std = evaluate_policy(model, evaluation_env(args.seed), n_eval_episodes=10, deterministic=True)
    print(f"DSDPG on Pendulum-v1 after {args.timesteps} steps ({time.time() - start:.0f} s, {args.threads} torch thread(s))")
    print(f"evaluation over 10 episodes: {mean:.1f} +- {std:.1f} (untrained policy: {random_return:.1f})")


if __name__ == "__main__":
    main()
