"""Milliseconds per gradient step of DSDPG against TD3 and TQC, measured in one process on the same shapes.

Run ``python -m sb3_dsdpg.benchmarks.update_cost [--preset mujoco|quickstart] [--threads 2] [--floor]``.

- ``mujoco`` (default): HalfCheetah-v5 and Humanoid-v5 shapes, batch 256, every algorithm at its constructor
  defaults (TD3: 400x300 ReLU; TQC: 256x256, 2 critics of 25 quantiles; DSDPG: 256x256 ReLU, cVAE 256x256 SiLU).
- ``quickstart``: Pendulum-v1 shapes at the quickstart's sizes: batch 128, 64x64 networks for all three (and
  the world model), DSDPG at learning rate 1e-3.

Each algorithm gets a replay buffer filled with random transitions of the env's shapes (no simulation is timed),
then ``train(gradient_steps, batch_size)`` is timed in interleaved rounds (so drift of the machine hits all
algorithms alike); the median over rounds is reported with the ratios to TD3 and TQC. Two DSDPG rows: its
defaults (plus ``--dsdpg-kwargs``), and the same with the other estimator of the gradient part: one random direction
(``sobolev_directions=1``) when the first row uses the full gradient (``None``, the paper's estimator), the full
gradient otherwise. The default, ``"auto"``, is one direction for ``|A| > 1``, so the first
row of HalfCheetah, Ant, Walker2d and Humanoid is one direction and the second the full gradient. The header names
the CPU (:func:`sb3_dsdpg.tools.machine.cpu_description`): the ratio to TQC moves with it.

``--floor`` adds, for each algorithm, the number of top-level torch operations in an update (counted with
``torch.profiler``: aten operations and autograd nodes not called by another aten operation) and its time at batch
8, where the arithmetic is all but gone: what an update costs in dispatch alone, and so how fast it can get on this
machine without fusing operations, whatever the batch.
"""

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import TD3
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sb3_dsdpg.dsdpg import DSDPG
from sb3_dsdpg.tools.extras import needs
from sb3_dsdpg.tools.machine import cpu_description

with needs("baselines", "the update-cost benchmark"):
    from sb3_contrib import TQC

PRESETS: dict[str, dict] = {
    "mujoco": dict(envs=["HalfCheetah-v5", "Humanoid-v5"], batch_size=256, common={}, dsdpg={}),
    "quickstart": dict(
        envs=["Pendulum-v1"],
        batch_size=128,
        common=dict(policy_kwargs=dict(net_arch=[64, 64])),
        dsdpg=dict(
            learning_rate=1e-3, world_model_kwargs=dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])
        ),
    ),
}


def fill_buffer(model: OffPolicyAlgorithm, n: int, seed: int = 0) -> None:
    """Add ``n`` random transitions of the model's spaces to its replay buffer."""
    rng = np.random.default_rng(seed)
    obs_shape, act_dim = model.observation_space.shape, model.action_space.shape[0]
    for _ in range(n):
        obs = rng.standard_normal((1, *obs_shape)).astype(np.float32)
        next_obs = obs + 0.1 * rng.standard_normal((1, *obs_shape)).astype(np.float32)
        action = rng.uniform(-1, 1, (1, act_dim)).astype(np.float32)
        model.replay_buffer.add(obs, next_obs, action, rng.standard_normal(1), np.zeros(1), [{}])  # type: ignore[union-attr]


def build_models(
    env_id: str, batch_size: int, dsdpg_kwargs: dict, common_kwargs: dict | None = None, seed: int = 0
) -> dict[str, OffPolicyAlgorithm]:
    """TD3, TQC, DSDPG (defaults plus ``dsdpg_kwargs``) and DSDPG with the other gradient estimator, buffers filled."""
    env = gym.make(env_id)

    def kwargs(extra: dict | None = None) -> dict:
        # A fresh copy for each model: SB3 writes into the policy_kwargs it is given. The extra arguments win, and
        # their policy_kwargs are merged into the preset's (e.g. the quickstart's net_arch plus share_critic_noise).
        merged = {**(common_kwargs or {}), **(extra or {})}
        if common_kwargs and extra and "policy_kwargs" in common_kwargs and "policy_kwargs" in extra:
            merged["policy_kwargs"] = {**common_kwargs["policy_kwargs"], **extra["policy_kwargs"]}
        return copy.deepcopy(dict(batch_size=batch_size, seed=seed, **merged))

    models: dict[str, OffPolicyAlgorithm] = {
        "TD3": TD3("MlpPolicy", env, **kwargs()),
        "TQC": TQC("MlpPolicy", env, **kwargs()),
        "DSDPG": DSDPG("MlpPolicy", env, **kwargs(dsdpg_kwargs)),
    }
    other = 1 if models["DSDPG"].sobolev_directions is None else None  # type: ignore[attr-defined]
    models[f"DSDPG directions={other}"] = DSDPG("MlpPolicy", env, **kwargs({**dsdpg_kwargs, "sobolev_directions": other}))
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


FLOOR_BATCH = 8


def count_operations(model: OffPolicyAlgorithm, batch_size: int, steps: int = 5) -> float:
    """Top-level torch operations per gradient step (aten operations and autograd nodes outside another aten one)."""
    from torch.profiler import ProfilerActivity, profile

    model.train(1, batch_size)  # lazily built state (e.g. the world model's warm-up) stays out of the count
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.train(steps, batch_size)
    n_ops = 0
    for event in prof.events():
        parent = event.cpu_parent
        if event.name.startswith(("aten::", "autograd::")) and not (parent is not None and parent.name.startswith("aten::")):
            n_ops += 1
    return n_ops / steps


def print_floor(models: dict[str, OffPolicyAlgorithm], ms: dict[str, float], steps: int, rounds: int) -> dict[str, float]:
    """Operations per update and ms per update at batch 8 beside ``ms`` (the timed batch); returns the batch-8 ms."""
    floor = measure(models, FLOOR_BATCH, steps, rounds)
    print(f"  per-operation floor (batch {FLOOR_BATCH}, interleaved rounds as above):")
    for name, model in models.items():
        n_ops = count_operations(model, FLOOR_BATCH)
        print(
            f"  {name:20s} {n_ops:6.0f} ops/step {floor[name]:8.1f} ms/step at batch {FLOOR_BATCH}"
            f" ({1000.0 * floor[name] / n_ops:5.1f} us/op, {floor[name] / ms[name]:.0%} of the timed batch's)"
        )
    return floor


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mujoco", help="envs, batch size and network sizes")
    parser.add_argument("--env", nargs="+", default=None, help="env ids whose shapes are used (default: the preset's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--steps", type=int, default=10, help="gradient steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--floor", action="store_true", help=f"also operations per update and ms at batch {FLOOR_BATCH}")
    parser.add_argument("--dsdpg-kwargs", type=json.loads, default={}, help='JSON, e.g. \'{"loss": "mmd"}\'')
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    batch_size = args.batch_size or preset["batch_size"]
    th.set_num_threads(args.threads)
    print(f"update cost, preset {args.preset}, batch {batch_size}, {args.threads} torch thread(s), torch {th.__version__}")
    print(cpu_description())
    if args.dsdpg_kwargs:
        print(f"DSDPG overrides: {args.dsdpg_kwargs}")
    results = {}
    for env_id in args.env or preset["envs"]:
        models = build_models(env_id, batch_size, {**preset["dsdpg"], **args.dsdpg_kwargs}, preset["common"])
        ms = measure(models, batch_size, args.steps, args.rounds)
        directions = models["DSDPG"].sobolev_directions  # type: ignore[attr-defined]
        print(f"{env_id} (|A| = {models['DSDPG'].action_space.shape[0]}); first DSDPG row: sobolev_directions={directions}")
        for name, value in ms.items():
            ratios = f"   x{value / ms['TD3']:.2f} TD3   x{value / ms['TQC']:.2f} TQC" if name.startswith("DSDPG") else ""
            print(f"  {name:20s} {value:8.1f} ms/step{ratios}")
        if args.floor:
            floor = print_floor(models, ms, args.steps, args.rounds)
            ms = {**ms, **{f"{name} batch {FLOOR_BATCH}": value for name, value in floor.items()}}
        results[env_id] = ms
    return results
