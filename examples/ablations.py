"""Ablations of DSDPG at a small budget: world model, Sobolev inputs, distribution loss and the two baseline switches.

Run: ``python examples/ablations.py [--timesteps 5000] [--seeds 0 1 2] [--jobs 2] [--out runs/ablations]``.
Each variant changes one argument of the default (cVAE world model, action gradients, max-sliced MMD); the two
baselines are the deterministic Sobolev critic (``distributional=False``, MAGE) and the return-only distributional critic
(``sobolev=False``). Every variant runs on a noisy Pendulum (``sb3_dsdpg/Pendulum-DynNoise-v1``, velocity noise 0.1)
and on ``sb3_dsdpg/PointMassBonus-v0`` with four hidden bonuses, with the quickstart's small settings (64x64
networks and world model, batch 128, learning rate 1e-3, gamma 0.98, normal action noise 0.1, 1000 random steps
first). A run's score is the mean return of the deterministic policy over ``--eval-episodes`` episodes after
training. Results go to ``<out>/ablation.csv`` (one row per run) and ``<out>/ablation.md`` (mean +- std over
seeds, with the wall time per run), the figure to ``--figure`` (default ``docs/ablation.png``); finished runs are
read back from the csv, so an interrupted sweep resumes. ``--save-models DIR`` keeps the trained models (for
``python -m sb3_dsdpg.diagnostics``).

The parity check of the directional estimator (the full gradient against ``sobolev_directions=1``, same settings
otherwise) is the same script with other ``--variants`` and ``--envs``, e.g. on ``sb3_dsdpg/Hopper-DynNoise-v5``
(velocity noise 0.1) at 30000 steps: ``--envs sb3_dsdpg/Hopper-DynNoise-v5 --variants "sobolev_directions=None (full
gradient)" sobolev_directions=1 --timesteps 30000 --out runs/directions --figure docs/directions_hopper.png``.
"""

import argparse
import csv
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

VARIANTS: dict[str, dict] = {
    "DSDPG (cvae, action, msmmd)": {},
    "world_model=realnvp": {"world_model": "realnvp"},
    "sobolev_inputs=state_action": {"sobolev_inputs": "state_action"},
    "loss=mmd": {"loss": "mmd"},
    "distributional=False (MAGE)": {"distributional": False},
    "sobolev=False (return-only)": {"sobolev": False},
    # The two estimators of the gradient part of a joint sample, for the parity check of the directional one.
    "sobolev_directions=None (full gradient)": {"sobolev_directions": None},
    "sobolev_directions=1": {"sobolev_directions": 1},
    # Where the critic learns: the current policy's actions (the default with a world model, MAGE's loop) against
    # the replay's.
    "critic_actions=policy": {"critic_actions": "policy"},
    "critic_actions=replay": {"critic_actions": "replay"},
    # The units of the loss and the world model's warm-up (all three on by default), off together and one by one.
    "raw units, no warm-up": {"reward_scale": 1.0, "normalize_samples": False, "world_model_warmup_steps": 0},
    "normalize_samples=False": {"normalize_samples": False},
    "reward_scale=1": {"reward_scale": 1.0},
    "world_model_warmup_steps=0": {"world_model_warmup_steps": 0},
}
ABLATION_VARIANTS = list(VARIANTS)[:6]
ENVS: dict[str, dict] = {
    "sb3_dsdpg/Pendulum-DynNoise-v1": {},
    "sb3_dsdpg/PointMassBonus-v0": {"n_bonus": 4},
    "sb3_dsdpg/Hopper-DynNoise-v5": {},
    "Reacher-v5": {},
    "sb3_dsdpg/Pendulum-ObsNoise-v1": {},
    "sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5": {},
}
ABLATION_ENVS = list(ENVS)[:2]
FIELDS = ["env", "variant", "seed", "timesteps", "eval_mean", "eval_std", "seconds"]


def run(env_id: str, variant: str, seed: int, timesteps: int, eval_episodes: int, save_dir: str | None) -> dict:
    """Train one variant on one env with one seed (in a worker process, one torch thread) and evaluate it."""
    import gymnasium as gym
    import torch as th
    from quickstart import small_settings
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_dsdpg import DSDPG

    th.set_num_threads(1)
    env = gym.make(env_id, **ENVS[env_id])
    settings = small_settings(env.action_space.shape[0])
    if VARIANTS[variant].get("world_model") == "realnvp":
        settings["world_model_kwargs"] = dict(hidden_arch=[64, 64])
    model = DSDPG("MlpPolicy", env, buffer_size=200_000, seed=seed, **settings, **VARIANTS[variant])
    start = time.time()
    model.learn(timesteps)
    seconds = time.time() - start
    eval_env = gym.make(env_id, **ENVS[env_id])
    eval_env.reset(seed=10_000 + seed)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
    if save_dir is not None:
        os.makedirs(save_dir, exist_ok=True)
        name = f"{env_id.split('/')[-1]}_{variant.split(' ')[0].replace('=', '-')}_{seed}"
        model.save(os.path.join(save_dir, name))
    return dict(env=env_id, variant=variant, seed=seed, timesteps=timesteps, eval_mean=mean, eval_std=std, seconds=seconds)


def bootstrap_interval(values, n_boot: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of the mean of ``values`` (seeded, so a report is reproducible)."""
    boot = np.random.default_rng(0).choice(np.asarray(values, dtype=float), size=(n_boot, len(values))).mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(low), float(high)


def append_row(path: str, fields: list[str], row: dict) -> None:
    """Append ``row`` to the csv at ``path``, writing the header first if the file is new (what makes sweeps resumable)."""
    new_file = not os.path.exists(path)
    with open(path, "a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        if new_file:
            writer.writeheader()
        writer.writerow(row)


def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return list(csv.DictReader(file))


def write_table(rows: list[dict], out: str) -> str:
    """Markdown table: one row per variant, one column per env, mean +- std of the seeds' scores."""
    envs = [env for env in ENVS if any(r["env"] == env for r in rows)]
    lines = [
        "| variant | " + " | ".join(f"{env.split('/')[-1]} return" for env in envs) + " | seconds per run |",
        "|---|" + "---|" * len(envs) + "---|",
    ]
    for variant in VARIANTS:
        cells, seconds = [], []
        for env in envs:
            scores = [float(r["eval_mean"]) for r in rows if r["env"] == env and r["variant"] == variant]
            seconds += [float(r["seconds"]) for r in rows if r["env"] == env and r["variant"] == variant]
            cells.append(f"{np.mean(scores):.1f} +- {np.std(scores):.1f} (n={len(scores)})" if scores else "-")
        if seconds:
            lines.append(f"| {variant} | " + " | ".join(cells) + f" | {np.mean(seconds):.0f} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(out, "ablation.md"), "w") as file:
        file.write(table)
    return table


def plot_panels(panels: dict[str, dict[str, list[float]]], path: str, title: str, width: float = 6.0) -> None:
    """
    One panel per entry of ``panels`` (panel title -> name -> scores): each score as a dot and their mean as a bar,
    one position per name (a name without scores keeps its place, empty). Also the ladder's figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * len(panels), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, named) in zip(axes, panels.items(), strict=True):
        names = list(named)
        for i, name in enumerate(names):
            if named[name]:
                ax.bar(i, np.mean(named[name]), color=f"C{i % 10}", alpha=0.5)
                ax.scatter(np.full(len(named[name]), i), named[name], color=f"C{i % 10}", s=16, zorder=3)
        ax.set_xticks(range(len(names)), [n.replace(" (", "\n(") for n in names], rotation=45, ha="right", fontsize=7)
        ax.set_title(panel, fontsize=9)
        ax.set_ylabel("evaluation return after training")
    fig.suptitle(title, fontsize=10)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)


def plot(rows: list[dict], path: str) -> None:
    """One panel per env: each seed's score as a dot and the mean as a bar, per variant."""
    envs = [env for env in ENVS if any(r["env"] == env for r in rows)]
    panels = {
        f"{env} ({ENVS[env] or 'defaults'})": {
            variant: [float(r["eval_mean"]) for r in rows if r["env"] == env and r["variant"] == variant]
            for variant in VARIANTS
        }
        for env in envs
    }
    budget = sorted({int(r["timesteps"]) for r in rows})
    plot_panels(panels, path, f"DSDPG ablations, {', '.join(map(str, budget))} env steps per run, dots: seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=5000, help="env steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--envs", nargs="+", default=ABLATION_ENVS, choices=list(ENVS))
    parser.add_argument("--variants", nargs="+", default=ABLATION_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (each on one torch thread)")
    parser.add_argument("--out", default="runs/ablations", help="folder of ablation.csv and ablation.md")
    parser.add_argument("--figure", default="docs/ablation.png", help="path of the figure")
    parser.add_argument("--save-models", default=None, help="folder to keep the trained models in")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ablation.csv")
    rows = read_rows(path)
    done = {(r["env"], r["variant"], int(r["seed"]), int(r["timesteps"])) for r in rows}
    # Slowest first (state_action and realnvp), so the parallel workers finish together.
    order = sorted(args.variants, key=lambda v: -int("state_action" in v or "realnvp" in v))
    jobs = [
        (env, variant, seed)
        for seed in args.seeds
        for variant in order
        for env in args.envs
        if (env, variant, seed, args.timesteps) not in done
    ]
    print(f"{len(jobs)} runs to do ({len(done)} in {path}), {args.jobs} at a time")
    start = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run, *job, args.timesteps, args.eval_episodes, args.save_models) for job in jobs]
        for future in as_completed(futures):
            row = future.result()
            append_row(path, FIELDS, row)
            rows.append({k: str(v) for k, v in row.items()})
            print(
                f"[{time.time() - start:6.0f} s] {row['env']} {row['variant']} seed {row['seed']}: "
                f"{row['eval_mean']:.1f} +- {row['eval_std']:.1f} ({row['seconds']:.0f} s)",
                flush=True,
            )
    rows = [r for r in rows if int(r["timesteps"]) == args.timesteps]
    print(write_table(rows, args.out))
    plot(rows, args.figure)
    print(f"wrote {path}, ablation.md in {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
