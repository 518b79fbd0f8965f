"""The ladder from TD3 and TQC to DSDPG: one change per rung, on a panel of small tasks, paired seeds.

Run: ``python examples/ladder.py [--envs pointmass pendulum ...] [--rungs ...] [--seeds 0 1 2 3 4] [--jobs 2]
[--out results/ladder]``, then ``python examples/ladder.py --report-only`` to rewrite the report from the csv.

Every rung gets the quickstart's small settings (64x64 actor, critics and world model, batch 128, learning rate 1e-3,
gamma 0.98, 1000 random steps, normal action noise 0.1 for the deterministic actors, none for TQC as sb3-contrib's
default) and differs from the rung it names as ``parent`` by one argument. The rungs' arguments are written out in
full where a default of ``DSDPG`` may change, so that a row of the csv keeps meaning what it measured.

A run's score is the mean return of the deterministic policy over ``--eval-episodes`` episodes after training (the
evaluation env seeded ``10_000 + seed``); its wall time is the ``learn`` call's, on one torch thread, with ``--jobs``
runs sharing the machine. Beside the score each DSDPG run with a world model logs ``model_target_gap`` (RMS over
replay batches of the gap between one-step return targets with the model's and with the real ``(s', r)``, in reward
units) and, on the point mass, ``reward_error`` (RMS error of the model's mean reward against the true expected
reward at states within 0.25 of the bonus, random actions). Finished runs are read back from ``ladder.csv``, so an
interrupted ladder resumes. The report (``ladder.md``) holds per rung and task the per-seed scores, the mean, the
paired difference to the parent rung with a bootstrap interval over seeds, and the figure ``ladder.png``.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from ablations import append_row, bootstrap_interval, plot_panels, read_rows

# name -> (gym id, env kwargs, env steps per run). Budgets: where TD3 and TQC reach a stable score on the
# quickstart's settings within a few minutes of one core (see docs/ablations.md).
TASKS: dict[str, tuple[str, dict, int]] = {
    "pointmass": ("sb3_dsdpg/PointMassBonus-v0", {"n_bonus": 1}, 10_000),
    "pendulum": ("Pendulum-v1", {}, 6_000),
    "pendulum-dynnoise": ("sb3_dsdpg/Pendulum-DynNoise-v1", {}, 6_000),
    "idp-dynnoise": ("sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5", {}, 6_000),
}

# The tasks with a known reward function (sb3_dsdpg.envs.known_reward_fn), where the R6 rungs run.
KNOWN_REWARD_TASKS = ("pointmass", "pendulum", "pendulum-dynnoise")

# The base every DSDPG rung writes out: the arguments whose default the ladder may move.
BASE = dict(
    activation="relu",
    reward_scale="auto",
    normalize_samples=True,
    world_model_warmup_steps="auto",
    critic_actions="replay",
    target_returns="real",
    policy=dict(share_critic_noise=True),  # the default until the ladder's double-pendulum rungs (False since)
)


def dsdpg(**changes: object) -> dict:
    """A DSDPG rung: the base with ``changes`` (``policy``: DSDPGPolicy arguments, merged into the base's)."""
    policy = {**BASE["policy"], **changes.pop("policy", {})}  # type: ignore[dict-item]
    return {"algo": "DSDPG", **BASE, **changes, "policy": policy}


# name -> (parent rung, what changes, arguments). R-numbers follow the issue: R0 references, R1 DSDPG reduced to TD3,
# R2 the generative return-only critic, R3 returns through the world model, R4 the Sobolev gradient part, R5 the
# critic at the policy's actions, R6 the known reward function.
RUNGS: dict[str, tuple[str | None, str, dict]] = {
    "R0 TD3": (None, "SB3's TD3", {"algo": "TD3"}),
    "R0 TQC": (None, "sb3-contrib's TQC", {"algo": "TQC"}),
    "R1 DSDPG as TD3": (
        "R0 TD3",
        "one Q per critic, squared TD error, real transitions",
        dsdpg(sobolev=False, distributional=False),
    ),
    "R1 silu": (
        "R1 DSDPG as TD3",
        "activation SiLU (the old default)",
        dsdpg(sobolev=False, distributional=False, activation="silu"),
    ),
    "R2 return-only": ("R1 DSDPG as TD3", "generative critic, max-sliced MMD on returns, truncation", dsdpg(sobolev=False)),
    "R2 mmd": ("R2 return-only", "plain MMD instead of max-sliced", dsdpg(sobolev=False, loss="mmd")),
    "R2 no truncation": ("R2 return-only", "no target sample dropped", dsdpg(sobolev=False, top_samples_to_drop_per_critic=0)),
    "R2 raw units": (
        "R2 return-only",
        "reward_scale=1, normalize_samples=False",
        dsdpg(sobolev=False, reward_scale=1.0, normalize_samples=False),
    ),
    "R2 gaussian": (
        "R2 return-only",
        "Gaussian kernel mixture instead of the multiquadric",
        dsdpg(sobolev=False, kernel="gaussian", kernel_bandwidth=[0.5, 1.0, 2.0]),
    ),
    "R2 silu": ("R2 return-only", "activation SiLU (the old default)", dsdpg(sobolev=False, activation="silu")),
    "R2 unshared noise": (
        "R2 return-only",
        "fresh critic noise per batch row (share_critic_noise=False)",
        dsdpg(sobolev=False, policy=dict(share_critic_noise=False)),
    ),
    "R2 concat": (
        "R2 return-only",
        "concat critic [s, a, xi] instead of the factorized one",
        dsdpg(sobolev=False, policy=dict(critic_architecture="concat")),
    ),
    "R2 n25": (
        "R2 return-only",
        "25 samples per critic instead of 10 (TQC's 25 quantiles)",
        dsdpg(sobolev=False, n_samples=25),
    ),
    "R2 5 critics": ("R2 return-only", "5 critics instead of 2 (TQC's count)", dsdpg(sobolev=False, policy=dict(n_critics=5))),
    "R2 drop 3": (
        "R2 return-only",
        "3 top target samples dropped per critic instead of 1 (more pessimism)",
        dsdpg(sobolev=False, top_samples_to_drop_per_critic=3),
    ),
    "R3 model returns": (
        "R2 return-only",
        "return targets through the world model",
        dsdpg(sobolev=False, target_returns="model"),
    ),
    "R4 hybrid": ("R2 return-only", "plus the gradient part through the world model (returns real)", dsdpg()),
    "R4 all-model": (
        "R3 model returns",
        "plus the gradient part (returns and gradients from the model)",
        dsdpg(target_returns="model"),
    ),
    "R4 all-model k=1": (
        "R4 all-model",
        "one directional derivative instead of the full gradient",
        dsdpg(target_returns="model", sobolev_directions=1),
    ),
    "R5 policy actions": (
        "R4 all-model",
        "critic at the policy's actions (MAGE's loop)",
        dsdpg(target_returns="model", critic_actions="policy"),
    ),
    "R5 old default": (
        "R5 policy actions",
        "activation SiLU: the default before this ladder",
        dsdpg(target_returns="model", critic_actions="policy", activation="silu"),
    ),
    "R6 reward_fn": (
        "R5 policy actions",
        "reward from the task's known function",
        dsdpg(target_returns="model", critic_actions="policy", reward_fn="task"),
    ),
    "R4 hybrid gw0.3": ("R4 hybrid", "the gradient part weighs 0.3 in the kernel (0: R2)", dsdpg(gradient_weight=0.3)),
    "R6 hybrid reward_fn": ("R4 hybrid", "reward from the task's known function", dsdpg(reward_fn="task")),
    "R4 hybrid unshared noise": (
        "R4 hybrid",
        "fresh critic noise per batch row (share_critic_noise=False)",
        dsdpg(policy=dict(share_critic_noise=False)),
    ),
    "R4 hybrid unshared k=1": (
        "R4 hybrid unshared noise",
        "one directional derivative instead of the full gradient (sobolev_directions=1)",
        dsdpg(sobolev_directions=1, policy=dict(share_critic_noise=False)),
    ),
    "R4 hybrid drop 3": (
        "R4 hybrid",
        "3 top target samples dropped per critic instead of 1 (more pessimism)",
        dsdpg(top_samples_to_drop_per_critic=3),
    ),
    "R4 hybrid drop 3 unshared": (
        "R4 hybrid drop 3",
        "fresh critic noise per batch row (share_critic_noise=False)",
        dsdpg(top_samples_to_drop_per_critic=3, policy=dict(share_critic_noise=False)),
    ),
    "R6 hybrid wm5": (
        "R4 hybrid",
        "5 world-model updates per critic update (MAGE's refit rate)",
        dsdpg(world_model_gradient_steps=5),
    ),
    "R5 policy wm5": (
        "R5 policy actions",
        "5 world-model updates per critic update (MAGE's refit rate)",
        dsdpg(target_returns="model", critic_actions="policy", world_model_gradient_steps=5),
    ),
}
FIELDS = ["task", "rung", "seed", "timesteps", "eval_mean", "eval_std", "seconds", "model_target_gap", "reward_error"]


def _settings(algo: str, action_dim: int) -> dict:
    from stable_baselines3.common.noise import NormalActionNoise

    settings = dict(learning_rate=1e-3, gamma=0.98, batch_size=128, learning_starts=1000, buffer_size=200_000)
    if algo != "TQC":
        settings["action_noise"] = NormalActionNoise(np.zeros(action_dim), 0.1 * np.ones(action_dim))
    return settings


def build(rung: str, env, seed: int):
    """The model of ``rung`` on ``env`` (its arguments written out; ``reward_fn="task"``: the task's known reward)."""
    from sb3_contrib import TQC
    from stable_baselines3 import TD3
    from torch import nn

    from sb3_dsdpg import DSDPG

    args = dict(RUNGS[rung][2])
    algo = args.pop("algo")
    settings = _settings(algo, env.action_space.shape[0])
    policy_kwargs: dict = dict(net_arch=[64, 64])
    if algo == "TD3":
        return TD3("MlpPolicy", env, seed=seed, policy_kwargs=policy_kwargs, **settings)
    if algo == "TQC":
        return TQC("MlpPolicy", env, seed=seed, policy_kwargs=policy_kwargs, **settings)
    policy_kwargs.update(args.pop("policy", {}))  # critic knobs of DSDPGPolicy (share_critic_noise, n_critics, ...)
    if "activation" in args:
        policy_kwargs["activation_fn"] = {"relu": nn.ReLU, "silu": nn.SiLU}[args.pop("activation")]
    if args.get("reward_fn") == "task":
        from sb3_dsdpg.envs import known_reward_fn

        args["reward_fn"] = known_reward_fn(env)
    wm = dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])
    return DSDPG("MlpPolicy", env, seed=seed, policy_kwargs=policy_kwargs, world_model_kwargs=wm, **settings, **args)


def model_quality(model, task: str, seed: int) -> tuple[float, float]:
    """``model_target_gap`` over 10 replay batches, and on the point mass the reward error near the bonus."""
    import torch as th

    from sb3_dsdpg.envs.point_mass import point_mass_reward

    if getattr(model, "world_model", None) is None:
        return float("nan"), float("nan")
    gaps = []
    for _ in range(10):
        data = model._sample_batch(model.batch_size)
        gaps.append(model._model_target_gap(data, model.gamma))
    gap = float(np.sqrt(np.mean(np.square(gaps))) * model.reward_scale)
    error = float("nan")
    if task == "pointmass":
        rng = np.random.default_rng(seed)
        centre = np.array([0.7, 0.0])
        radius, angle = 0.25 * np.sqrt(rng.uniform(size=512)), rng.uniform(0, 2 * np.pi, size=512)
        pos = centre + np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        act = rng.uniform(-1, 1, size=(512, 2))
        noise = rng.normal(size=(256, 512, 2))
        nxt = np.clip(pos + 0.1 * act + 0.05 * noise, -1, 1)
        truth = point_mass_reward(nxt, act, centre).mean(axis=0)
        with th.no_grad():
            _, rewards = model.world_model.sample(th.as_tensor(pos, dtype=th.float32), th.as_tensor(act, dtype=th.float32), 64)
        predicted = rewards.mean(dim=1).numpy() * model.reward_scale
        error = float(np.sqrt(np.mean((predicted - truth) ** 2)))
    return gap, error


def run(task: str, rung: str, seed: int, eval_episodes: int) -> dict:
    """Train one rung on one task with one seed (one torch thread) and evaluate it."""
    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.evaluation import evaluate_policy

    import sb3_dsdpg  # noqa: F401  (registers the envs)

    th.set_num_threads(1)
    env_id, env_kwargs, timesteps = TASKS[task]
    model = build(rung, gym.make(env_id, **env_kwargs), seed)
    start = time.time()
    model.learn(timesteps)
    seconds = time.time() - start
    eval_env = gym.make(env_id, **env_kwargs)
    eval_env.reset(seed=10_000 + seed)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
    gap, error = model_quality(model, task, seed)
    return dict(task=task, rung=rung, seed=seed, timesteps=timesteps, eval_mean=mean, eval_std=std, seconds=seconds,
                model_target_gap=gap, reward_error=error)  # fmt: skip


def scores(rows: list[dict], task: str, rung: str) -> dict[int, float]:
    """Seed -> score of ``rung`` on ``task``."""
    return {int(r["seed"]): float(r["eval_mean"]) for r in rows if r["task"] == task and r["rung"] == rung}


def paired_difference(child: dict[int, float], parent: dict[int, float], n_boot: int = 2000) -> str:
    """Mean paired difference over the common seeds with a 95% bootstrap interval (seeded)."""
    common = sorted(set(child) & set(parent))
    if not common:
        return "-"
    diff = np.array([child[s] - parent[s] for s in common])
    low, high = bootstrap_interval(diff, n_boot)
    return f"{diff.mean():+.1f} [{low:+.1f}, {high:+.1f}] (n={len(common)})"


def _mean(values, digits: int = 1) -> str:
    values = [v for v in values if np.isfinite(v)]
    return f"{np.mean(values):.{digits}f}" if values else "-"


def write_report(rows: list[dict], out: str) -> str:
    """``ladder.md``: per task, one line per rung with seeds, mean, paired difference to the parent and wall time."""
    lines = ["# The ladder", "", "Written by `python examples/ladder.py` from `ladder.csv`; see its docstring.", ""]
    for task, (env_id, kwargs, steps) in TASKS.items():
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        seeds = sorted({int(r["seed"]) for r in task_rows})
        lines += [f"## {task}: `{env_id}` {kwargs or ''}, {steps} steps", ""]
        header = "| rung | parent | change | " + " | ".join(f"seed {s}" for s in seeds)
        lines += [header + " | mean | vs parent (paired, 95% CI) | s/run | model gap | reward err |"]
        lines += ["|---" * (len(seeds) + 8) + "|"]
        for rung, (parent, change, _) in RUNGS.items():
            mine = scores(rows, task, rung)
            if not mine:
                continue
            mine_rows = [r for r in task_rows if r["rung"] == rung]
            cells = [f"{mine[s]:.1f}" if s in mine else "" for s in seeds]
            versus = paired_difference(mine, scores(rows, task, parent)) if parent else "-"
            seconds = _mean([float(r["seconds"]) for r in mine_rows], 0)
            gap = _mean([float(r["model_target_gap"] or "nan") for r in mine_rows], 3)
            error = _mean([float(r["reward_error"] or "nan") for r in mine_rows], 3)
            lines.append(
                f"| {rung} | {parent or '-'} | {change} | " + " | ".join(cells)
                + f" | {np.mean(list(mine.values())):.1f} | {versus} | {seconds} | {gap} | {error} |"
            )  # fmt: skip
        lines.append("")
    text = "\n".join(lines)
    with open(os.path.join(out, "ladder.md"), "w") as file:
        file.write(text)
    return text


def plot(rows: list[dict], path: str) -> None:
    """One panel per task: each seed's score as a dot and the mean as a bar, per rung run on it."""

    panels = {
        f"{task} ({TASKS[task][2]} steps)": {
            rung: list(scores(rows, task, rung).values()) for rung in RUNGS if scores(rows, task, rung)
        }
        for task in TASKS
        if any(r["task"] == task for r in rows)
    }
    plot_panels(panels, path, "The ladder: return per rung (bars: mean, dots: seeds)", width=5.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--rungs", nargs="+", default=list(RUNGS), choices=list(RUNGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (each on one torch thread)")
    parser.add_argument("--out", default="results/ladder")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the csv and stop")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ladder.csv")
    rows = read_rows(path)
    if not args.report_only:
        done = {(r["task"], r["rung"], int(r["seed"])) for r in rows}
        jobs = [
            (t, r, s)
            for s in args.seeds
            for t in args.tasks
            for r in args.rungs
            if (t, r, s) not in done and (RUNGS[r][2].get("reward_fn") != "task" or t in KNOWN_REWARD_TASKS)
        ]
        print(f"{len(jobs)} runs to do ({len(done)} in {path}), {args.jobs} at a time", flush=True)
        start = time.time()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run, *job, args.eval_episodes) for job in jobs]
            for future in as_completed(futures):
                row = future.result()
                append_row(path, FIELDS, row)
                rows.append({k: str(v) for k, v in row.items()})
                print(f"[{time.time() - start:6.0f} s] {row['task']} {row['rung']} seed {row['seed']}: "
                      f"{row['eval_mean']:.1f} ({row['seconds']:.0f} s)", flush=True)  # fmt: skip
    print(write_report(rows, args.out))
    plot(rows, os.path.join(args.out, "ladder.png"))


if __name__ == "__main__":
    main()
