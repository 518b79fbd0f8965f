"""Milliseconds per gradient step of DSDPG against TD3 and TQC, measured in one process on the same shapes.

Run ``python -m sb3_dsdpg.benchmarks.update_cost --threads 2``. Each algorithm gets a replay buffer filled with
random transitions of the env's shapes (no simulation is timed), then ``train(gradient_steps, batch_size)`` is
timed in interleaved rounds (so drift of the machine hits all algorithms alike); the median over rounds is
reported with the ratios DSDPG/TD3 and DSDPG/TQC. TD3 and TQC use rl-zoo3's MuJoCo hyperparameters (TD3:
400x300 ReLU networks; TQC: 256x256, 2 critics of 25 quantiles); DSDPG uses its defaults unless
``--dsdpg-kwargs`` overrides them.
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch as th
from sb3_contrib import TQC
from stable_baselines3 import TD3
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sb3_dsdpg.dsdpg import DSDPG


def fill_buffer(model: OffPolicyAlgorithm, n: int, seed: int = 0) -> None:
    """Add ``n`` random transitions of the model's spaces to its replay buffer."""
    rng = np.random.default_rng(seed)
    obs_shape, act_dim = model.observation_space.shape, model.action_space.shape[0]
    for _ in range(n):
        obs = rng.standard_normal((1, *obs_shape)).astype(np.float32)
        next_obs = obs + 0.1 * rng.standard_normal((1, *obs_shape)).astype(np.float32)
        action = rng.uniform(-1, 1, (1, act_dim)).astype(np.float32)
        model.replay_buffer.add(obs, next_obs, action, rng.standard_normal(1), np.zeros(1), [{}])  # type: ignore[union-attr]


def build_models(env_id: str, batch_size: int, dsdpg_kwargs: dict, seed: int = 0) -> dict[str, OffPolicyAlgorithm]:
    env = gym.make(env_id)
    models: dict[str, OffPolicyAlgorithm] = {
        "DSDPG": DSDPG("MlpPolicy", env, batch_size=batch_size, seed=seed, **dsdpg_kwargs),
        "TD3": TD3("MlpPolicy", env, batch_size=batch_size, seed=seed),
        "TQC": TQC("MlpPolicy", env, batch_size=batch_size, seed=seed),
    }
    for model in models.values():
        model._setup_learn(10, progress_bar=False)  # a logger, so train() can record
        fill_buffer(model, 5 * batch_size, seed)
    return models


def time_steps(train: Callable[[], None], n_steps: int) -> float:
    start = time.perf_counter()
    train()
    return (time.perf_counter() - start) * 1000.0 / n_steps


def measure(models: dict[str, OffPolicyAlgorithm], batch_size: int, steps: int, rounds: int) -> dict[str, float]:
    """Median ms per gradient step of each model over interleaved rounds (after one warm-up round)."""
    results: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(rounds + 1):
        for name, model in models.items():
            ms = time_steps(lambda model=model: model.train(steps, batch_size), steps)
            if round_index > 0:
                results[name].append(ms)
    return {name: statistics.median(values) for name, values in results.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5", help="env whose observation and action shapes are used")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="gradient steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dsdpg-kwargs", type=json.loads, default={}, help='JSON, e.g. \'{"loss": "mmd"}\'')
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)
    models = build_models(args.env, args.batch_size, args.dsdpg_kwargs)
    ms = measure(models, args.batch_size, args.steps, args.rounds)
    print(f"update cost on {args.env} shapes, batch {args.batch_size}, {args.threads} torch thread(s), torch {th.__version__}")
    if args.dsdpg_kwargs:
        print(f"DSDPG overrides: {args.dsdpg_kwargs}")
    for name, value in ms.items():
        print(f"  {name:6s} {value:8.1f} ms/step")
    print(f"  ratio DSDPG/TD3 {ms['DSDPG'] / ms['TD3']:.2f}   DSDPG/TQC {ms['DSDPG'] / ms['TQC']:.2f}")
    return ms


if __name__ == "__main__":
    main()
