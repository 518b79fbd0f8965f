"""Where the bonus-count sweep's return goes: DSDPG and MAGE on the revealed-bonus toy with the learned reward and
with the task's known one (``reward_fn="known"``, as MAGE's code takes it), paired seeds.

Run: ``python examples/toy_known_reward.py [--n-bonus 4] [--seeds 0 1 2] [--variants ...] [--out results/toy-known-reward]``
(resumable: finished rows are read back from ``known_reward.csv``), then ``--report-only`` to rewrite the table.

Settings: those of the sweep's matched protocol (``python -m sb3_dsdpg.compare --suite toy-bonus-sweep``: learning
rate 1e-3, batch 128, gamma 0.98, tau 0.005, 500 random steps, 64x64 actor, critics and world model, normal action
noise 0.1, critic noise per batch row, one update per step, 10,000 steps), trained directly rather than through the
zoo (so a seed's run differs from the sweep's run of that seed; the variants here are paired among themselves). A
run's score: the mean return of the deterministic policy over 20 episodes after training, the evaluation env seeded
``10_000 + seed``; its time is the ``learn`` call's on one torch thread. ``--save DIR`` keeps each model and its
replay buffer, for ``examples/toy_model_jacobian.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from ablations import append_row, bootstrap_interval, read_rows

VARIANTS: dict[str, dict] = {
    "dsdpg": {},
    "dsdpg known reward": {"reward_fn": "known"},
    "mage": {"distributional": False},
    "mage known reward": {"distributional": False, "reward_fn": "known"},
}
FIELDS = ["n_bonus", "variant", "seed", "eval_mean", "eval_std", "seconds"]


def run(n_bonus: int, variant: str, seed: int, save: str | None) -> dict:
    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.noise import NormalActionNoise

    from sb3_dsdpg import DSDPG

    th.set_num_threads(1)
    env_id = "sb3_dsdpg/PointMassRevealedBonus-v0"
    model = DSDPG(
        "MlpPolicy", gym.make(env_id, n_bonus=n_bonus), learning_rate=1e-3, batch_size=128, gamma=0.98, tau=0.005,
        buffer_size=200_000, learning_starts=500, seed=seed,
        policy_kwargs=dict(net_arch=[64, 64], share_critic_noise=False),
        world_model_kwargs=dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64]),
        action_noise=NormalActionNoise(np.zeros(2), 0.1 * np.ones(2)), **VARIANTS[variant],
    )  # fmt: skip
    start = time.time()
    model.learn(10_000)
    seconds = time.time() - start
    eval_env = gym.make(env_id, n_bonus=n_bonus)
    eval_env.reset(seed=10_000 + seed)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    if save:
        name = os.path.join(save, f"n{n_bonus}_{variant.replace(' ', '_')}_seed{seed}")
        model.save(name)
        model.save_replay_buffer(name + "_buffer")
    return dict(n_bonus=n_bonus, variant=variant, seed=seed, eval_mean=mean, eval_std=std, seconds=seconds)


def report(rows: list[dict], path: str) -> str:
    scores: dict = {}
    for row in rows:
        scores.setdefault((int(row["n_bonus"]), row["variant"]), {})[int(row["seed"])] = float(row["eval_mean"])
    seeds = sorted({int(row["seed"]) for row in rows})
    lines = [
        "# DSDPG and MAGE with the learned and the known reward (revealed-bonus toy)",
        "",
        "Written by `python examples/toy_known_reward.py`. Final deterministic return over 20 episodes per seed;",
        "paired differences: mean over the seeds both finished, 95% bootstrap interval.",
        "",
        "| N | variant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
        "|---|---|" + "---|" * (len(seeds) + 1),
    ]
    for (n, variant), by_seed in sorted(scores.items(), key=lambda item: (item[0][0], list(VARIANTS).index(item[0][1]))):
        cells = " | ".join(f"{by_seed[s]:.1f}" if s in by_seed else "" for s in seeds)
        lines.append(f"| {n} | {variant} | {cells} | {np.mean(list(by_seed.values())):.1f} |")
    lines += ["", "| N | difference | per seed | mean [95% CI] |", "|---|---|---|---|"]
    pairs = [("dsdpg known reward", "dsdpg"), ("mage known reward", "mage"), ("dsdpg", "mage"),
             ("dsdpg known reward", "mage known reward")]  # fmt: skip
    for n in sorted({key[0] for key in scores}):
        for child, parent in pairs:
            a, b = scores.get((n, child), {}), scores.get((n, parent), {})
            common = sorted(set(a) & set(b))
            if not common:
                continue
            diffs = np.array([a[s] - b[s] for s in common])
            low, high = bootstrap_interval(diffs)
            per_seed = ", ".join(f"{d:+.1f}" for d in diffs)
            lines.append(f"| {n} | {child} - {parent} | {per_seed} | {diffs.mean():+.1f} [{low:+.1f}, {high:+.1f}] |")
    text = "\n".join(lines) + "\n"
    with open(path, "w") as file:
        file.write(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-bonus", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default="results/toy-known-reward")
    parser.add_argument("--save", help="folder for the models and replay buffers")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "known_reward.csv")
    rows = read_rows(path)
    done = {(int(r["n_bonus"]), r["variant"], int(r["seed"])) for r in rows}
    if not args.report_only:
        for seed in args.seeds:
            for variant in args.variants:
                if (args.n_bonus, variant, seed) in done:
                    continue
                row = run(args.n_bonus, variant, seed, args.save)
                print(row, flush=True)
                append_row(path, FIELDS, row)
                rows.append(row)
    print(report(rows, os.path.join(args.out, "known_reward.md")))


if __name__ == "__main__":
    main()
