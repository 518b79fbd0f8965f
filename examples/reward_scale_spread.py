"""How much the critic's units move with the seed: ``reward_scale="auto"`` over seeds, task by task.

Run: ``python examples/reward_scale_spread.py [--seeds 0 1 2 3 4 5] [--out results/units/reward_scale_spread.md]``

``reward_scale="auto"`` (the default until 2026-12-08) fixes the critic's units at the first update to the standard
deviation of the rewards of the random warm-up steps. This script builds DSDPG exactly as a run does (the env seeded
by ``seed``, ``learning_starts`` uniform random steps, SB3's own collection), takes one update, and reads the value
it was fixed to, per task and seed; then the spread across seeds (largest over smallest). The tasks: the
revealed-bonus toy at 4 and 8 bonuses with the sweep's 500 random steps, and the ladder's panel with its 1000
(docs/ablations.md). The default since, ``reward_scale=1.0``, is the same number on every seed by construction: the
critic then learns in the env's units, as TD3 and TQC do, and ``normalize_samples`` sets the kernel's units.
"""

from __future__ import annotations

import argparse

# name -> (gym id, make kwargs, learning_starts)
TASKS: dict[str, tuple[str, dict, int]] = {
    "toy N=4": ("sb3_dsdpg/PointMassRevealedBonus-v0", {"n_bonus": 4}, 500),
    "toy N=8": ("sb3_dsdpg/PointMassRevealedBonus-v0", {"n_bonus": 8}, 500),
    "pointmass": ("sb3_dsdpg/PointMassBonus-v0", {"n_bonus": 1}, 1000),
    "pendulum": ("Pendulum-v1", {}, 1000),
    "pendulum-dynnoise": ("sb3_dsdpg/Pendulum-DynNoise-v1", {}, 1000),
    "idp-dynnoise": ("sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5", {}, 1000),
}


def auto_scale(env_id: str, kwargs: dict, learning_starts: int, seed: int) -> float:
    """The value ``reward_scale="auto"`` is fixed to in a run of this task and seed."""
    import gymnasium as gym
    import torch as th

    from sb3_dsdpg import DSDPG

    th.set_num_threads(1)
    model = DSDPG(
        "MlpPolicy", gym.make(env_id, **kwargs), learning_starts=learning_starts, reward_scale="auto", seed=seed,
        world_model_warmup_steps=0, batch_size=32, policy_kwargs=dict(net_arch=[16]),
        world_model_kwargs=dict(encoder_arch=[16], decoder_arch=[16], prior_arch=[16]),
    )  # fmt: skip
    model.learn(learning_starts + 1)
    return float(model.reward_scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--out", help="also write the table (markdown) here")
    args = parser.parse_args()
    lines = [
        '| task | random steps | `reward_scale="auto"` per seed (' + ", ".join(map(str, args.seeds)) + ") | "
        "largest / smallest | `reward_scale=1.0` (default) |",
        "|---|---|---|---|---|",
    ]
    for name in args.tasks:
        env_id, kwargs, starts = TASKS[name]
        values = [auto_scale(env_id, kwargs, starts, seed) for seed in args.seeds]
        cells = ", ".join(f"{v:.3g}" for v in values)
        lines.append(f"| {name} | {starts} | {cells} | {max(values) / min(values):.1f}x | 1.0 on every seed (1.0x) |")
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
