"""Quickstart: train DSDPG briefly on Pendulum-v1 and print a deterministic evaluation.

Run: ``python examples/quickstart.py [--timesteps 6000] [--seed 0]``. Small networks (64x64) and a faster target
update (``tau=0.02``) keep it under a minute on one CPU core. Measured with
``examples/quickstart_cost.py --against td3 tqc`` (idle 2-core machine, nothing else running, 1 torch thread, seeds
0-2, DSDPG, TD3 and TQC trained in one process on the same settings, the evaluation's start states seeded):
- 2026-12-04 night (the same machine, the critics stacked; results/quickstart/quickstart_cost_2026-12-04_stacked.txt),
  three measurements of the code of c358e7b: **46.4 s of training per run (48, 45, 46; 20:48), 46.9 s (46, 48, 46;
  21:02) and 46.0 s (51, 42, 46; 21:07), returns -119, -146, -170** each time. TQC 36-38 s (-112, -144, -165), TD3
  11-12 s (-127, -147, -173): DSDPG is 1.23-1.27x TQC. The machine was fast: the evening's TQC times (39-52 s) would
  put these at 48-66 s (an extrapolation by the ratio, not a measurement). With two of the four changes (bb9e556,
  20:30): 55.1 s (56, 56, 54), 1.37x TQC.
- 2026-12-04 evening (AMD EPYC with AVX-512, the max-sliced search compiled with numba;
  results/quickstart/quickstart_cost_2026-12-04_compiled.txt), five measurements: 59.9 s of training per run
  (58, 65, 57; 17:35, fcf1f9d), 56.7 s (59, 57, 54; 17:47, d50a563), 58.8 s (66, 59, 52; 18:12, 6aec760), 67.4 s
  (67, 74, 61; 18:37, the same training) and 52.1 s (49, 56, 51; 18:54, c73a09a), **returns -118 to -119, -146 to
  -147, -168 to -169**. TQC 39-52 s (-112, -144, -165), TD3 12-15 s (-127, -147, -173): DSDPG is 1.22-1.34x TQC.
  10 of the 15 runs took at most 60 s: about a minute, not reliably under it; the machine's speed decides the side.
- The first run after an install also compiles the search: about 4 s, once (numba caches it beside the module).
- Before the compiled search: 82-86 s on the same machine (1.64-1.66x TQC, two runs that afternoon), and 133-149 s
  on 2026-12-03's slower machine (1.32-1.46x TQC, four runs, TQC itself 92-111 s). Returns: -113, -147, -170 in
  every run of 2026-12-03, -118 to -119, -146 to -148, -168 to -170 on 2026-12-04 (another CPU, and code changes
  that are the same training up to float round-off, which a seeded run amplifies). The history and why an update
  costs what it does: docs/benchmarks.md ("The quickstart through the day").
- ``tau=0.02`` made the return (see :func:`quickstart_settings`): at TD3's 0.005 DSDPG scored -330, -296, -270 and
  TD3 -340, -345, -348 (results/quickstart/).
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
