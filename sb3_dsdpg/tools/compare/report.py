"""The report of ``python -m sb3_dsdpg.compare``: tables, learning curves, rliable aggregates and the update cost.

This module owns ``DIR/report/`` of a sweep, computed from the finished runs only (their ``compare_run.json``
markers and the zoo's ``evaluations.npz``). It reads what a sweep is from :mod:`sb3_dsdpg.tools.compare.runs` and
knows nothing of how the runs were run (:mod:`~sb3_dsdpg.tools.compare.sweep` imports this module, not the reverse):

- ``curves_<env>.png`` (and ``curves.png``, all envs): mean evaluation return over seeds with a 95% t-interval;
- ``aggregate.png`` (IQM, mean and optimality gap with 95% stratified-bootstrap intervals, rliable) and
  ``performance_profile.png``, over min-max normalised final scores: per env, 0 = the lower of the score of a uniform
  random policy (measured here, ``random_scores.json``) and the worst final score of any run, 1 = the best final
  score of any run of any algorithm (seeds paired: only seeds every algorithm finished on the envs used);
- ``results.csv`` (one row per algo and env), ``runs.csv`` (one row per run), ``paired.csv`` (one row per env and
  seed finished by every algorithm: each algorithm's final return and DSDPG minus each other algorithm) and
  ``results.md`` (the protocol and the settings every algorithm got on every env, read from the zoo's ``config.yml``
  of the runs, the tables, the paired per-seed results, the aggregates, the normalisation, and the output of
  :mod:`sb3_dsdpg.tools.update_cost`).

The final score of a run is the mean return of the deterministic episodes of its last evaluation.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sb3_dsdpg.tools.compare.runs import (
    DETERMINISTIC_ACTOR_ALGOS,
    MARKER,
    NOISE_KEYS,
    SCALAR_SHARED_KEYS,
    CompareError,
    EnvSpec,
    Run,
    as_kwargs,
    read_marker,
    resolved_hyperparams,
    zoo_algorithm,
)
from sb3_dsdpg.tools.extras import needs

WHAT = "the comparison report"
with needs("zoo", WHAT):
    import yaml

RANDOM_EPISODES = 10
BOOTSTRAP_REPS = 2000


def _plt() -> Any:
    with needs("zoo", WHAT):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

    return plt


def load_finished(out: Path, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Finished runs with their evaluations: ``run``, ``marker``, ``timesteps`` (evals), ``returns`` (per eval)."""
    finished = []
    for run in runs:
        marker = read_marker(run, out)
        if marker is None or not marker.get("evaluations"):
            continue
        path = run.folder(out) / marker["evaluations"]
        try:
            data = np.load(path)
        except OSError:
            continue
        returns = np.asarray(data["results"], dtype=float).mean(axis=1)
        finished.append({"run": run, "marker": marker, "timesteps": np.asarray(data["timesteps"]), "returns": returns})
    return finished


# ----------------------------------------------------------------------------------------------------------------------
# Settings every algorithm got
# ----------------------------------------------------------------------------------------------------------------------

# Columns of the settings table: (key, header).
SETTING_COLUMNS = (
    ("learning_rate", "lr"),
    ("batch_size", "batch"),
    ("gamma", "gamma"),
    ("tau", "tau"),
    ("buffer_size", "buffer"),
    ("learning_starts", "learning starts"),
    ("net_arch", "net_arch"),
    ("noise", "action noise"),
    ("train_freq", "train_freq"),
    ("gradient_steps", "gradient steps"),
)
# The policies' net_arch when policy_kwargs leaves it out (SB3 / sb3-contrib / sb3_dsdpg policies, MLP features).
DEFAULT_NET_ARCH = {"dsdpg": [256, 256], "td3": [400, 300], "ddpg": [400, 300], "sac": [256, 256], "tqc": [256, 256]}
# Keys of a zoo config.yml that are neither shared nor the algorithm's own arguments worth listing.
NOT_ALGO_SPECIFIC = frozenset({"n_timesteps", "policy", "policy_kwargs", *SCALAR_SHARED_KEYS, *NOISE_KEYS})


class _ConfigLoader(yaml.SafeLoader):
    """Safe loader of the zoo's ``config.yml`` (an ``OrderedDict`` dumped by PyYAML's default dumper)."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    (pairs,) = loader.construct_sequence(node, deep=True)
    return {key: value for key, value in pairs}


_ConfigLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)


def config_file(out: Path, item: dict[str, Any]) -> Path | None:
    """The zoo's ``config.yml`` of a finished run (``<algo>/<Env>_1/<Env>/config.yml``), if it is there."""
    run = item["run"]
    eval_dir = (run.folder(out) / item["marker"]["evaluations"]).parent
    path = eval_dir / run.env.env_id.replace("/", "-") / "config.yml"
    if path.is_file():
        return path
    found = sorted(eval_dir.glob("*/config.yml"))
    return found[0] if found else None


def read_config(path: Path) -> dict[str, Any] | None:
    """The hyperparameters a zoo run recorded (its ``config.yml``), or None when unreadable."""
    try:
        with open(path) as handle:
            data = yaml.load(handle, Loader=_ConfigLoader)  # a SafeLoader with one more constructor
    except (OSError, yaml.YAMLError, ValueError):
        return None
    return dict(data) if isinstance(data, dict) else None


def _constructor_defaults(algo: str) -> dict[str, Any]:
    """The algorithm's constructor defaults (for the keys a run left unset)."""
    import inspect

    try:
        from sb3_dsdpg.tools import zoo

        zoo.register()
        parameters = inspect.signature(zoo.ALGOS[algo].__init__).parameters
    except Exception:
        return {}
    return {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("|", "\\|")


def setting_cells(algo: str, hyperparams: dict[str, Any]) -> dict[str, str]:
    """
    The settings table's cells of one algorithm (a label of ``--algos``: a DSDPG variant reads as DSDPG) on one env:
    the shared keys (``(default)`` where the run left a key to the algorithm's constructor), the action noise, and the
    algorithm-specific arguments (a variant's among them).
    """
    algo = zoo_algorithm(algo)
    defaults = _constructor_defaults(algo)
    try:
        policy_kwargs = as_kwargs(hyperparams.get("policy_kwargs"), "config")
    except CompareError:
        policy_kwargs = {"unreadable": hyperparams.get("policy_kwargs")}
    cells = {}
    for key in SCALAR_SHARED_KEYS:
        if key in hyperparams:
            cells[key] = _show(hyperparams[key])
        else:
            cells[key] = f"{_show(defaults[key])} (default)" if key in defaults else "default"
    if "net_arch" in policy_kwargs:
        cells["net_arch"] = _show(policy_kwargs["net_arch"])
    else:
        cells["net_arch"] = f"{DEFAULT_NET_ARCH[algo]} (default)" if algo in DEFAULT_NET_ARCH else "default"
    if hyperparams.get("noise_type") is not None:
        cells["noise"] = f"{hyperparams['noise_type']} {_show(hyperparams.get('noise_std'))}"
    else:
        cells["noise"] = "none" if algo in DETERMINISTIC_ACTOR_ALGOS else "none (entropy)"
    own = [f"{key}={_show(value)}" for key, value in sorted(hyperparams.items()) if key not in NOT_ALGO_SPECIFIC]
    own += [f"policy_kwargs.{key}={_show(value)}" for key, value in policy_kwargs.items() if key != "net_arch"]
    if hyperparams.get("policy", "MlpPolicy") != "MlpPolicy":
        own.append(f"policy={hyperparams['policy']}")
    cells["own"] = "; ".join(own) if own else "-"
    return cells


def settings(out: Path, runs: Sequence[Run], finished: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    Per env and algorithm: the settings it got, read from its finished runs' ``config.yml`` (what ran) or, when none
    is there, resolved from its zoo entry and ``-params`` (what will run).

    :return: rows with ``env``, ``algo``, ``source``, ``cells`` (:func:`setting_cells`)
    """
    rows = []
    for env in dict.fromkeys(run.env for run in runs):
        for algo in dict.fromkeys(run.algo for run in runs):
            configs = []
            for item in finished:
                if item["run"].env == env and item["run"].algo == algo:
                    path = config_file(out, item)
                    config = read_config(path) if path else None
                    if config is not None:
                        configs.append(config)
            if configs:
                cells = [setting_cells(algo, config) for config in configs]
                source = f"config.yml ({len(configs)} runs)" if len(configs) > 1 else "config.yml (1 run)"
                if any(cell != cells[0] for cell in cells):
                    source += ", differs between seeds"
                rows.append({"env": env.label, "algo": algo, "source": source, "cells": cells[0]})
                continue
            run = next(run for run in runs if run.env == env and run.algo == algo)
            try:
                cells = setting_cells(algo, resolved_hyperparams(run))
            except CompareError as exc:
                cells = {key: "?" for key, _ in SETTING_COLUMNS} | {"own": f"unknown: {exc}"}
            rows.append({"env": env.label, "algo": algo, "source": "zoo entry + -params (no config.yml)", "cells": cells})
    return rows


def shared_differences(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per env, the shared settings that are not the same for every algorithm (noise: deterministic actors only)."""
    differences = {}
    for env in dict.fromkeys(row["env"] for row in rows):
        group = [row for row in rows if row["env"] == env]
        keys = []
        for key, header in SETTING_COLUMNS:
            members = [row for row in group if key != "noise" or zoo_algorithm(row["algo"]) in DETERMINISTIC_ACTOR_ALGOS]
            if len({row["cells"][key].replace(" (default)", "") for row in members}) > 1:
                keys.append(header)
        if keys:
            differences[env] = keys
    return differences


PROTOCOL_TEXT = {
    "matched": "**Protocol: matched.** On each env every algorithm got the same learning rate, batch size, gamma, "
    "tau, buffer size, learning starts, network sizes (`net_arch`), train frequency and gradient steps; the "
    "deterministic-actor algorithms (dsdpg and its variants, td3, ddpg) the same action noise, while the "
    "stochastic-policy algorithms (tqc, sac) explore through their entropy and ran without action noise (a noise of "
    "their zoo entry is switched off). The algorithms differ only in their own arguments (TQC's quantiles and "
    "entropy, TD3's policy delay and target noise, DSDPG's world model and samples, a DSDPG variant's own, ...), as "
    "in their zoo entries. Settings below.",
    "zoo": "**Protocol: zoo.** Every algorithm ran its own zoo entry (`hyperparams/<algo>.yml`, or rl-zoo3's own "
    "file where ours lacks the env) plus the sweep's `-params` overrides: the settings below differ between "
    "algorithms (learning rate, batch size, gamma, network sizes, ... as their entries set them).",
}


# ----------------------------------------------------------------------------------------------------------------------
# Paired per-seed results
# ----------------------------------------------------------------------------------------------------------------------


def paired(
    finished: list[dict[str, Any]], envs: Sequence[EnvSpec], algos: Sequence[str], seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """
    Per env: the final returns of the seeds every algorithm finished, and DSDPG minus each other algorithm.

    :return: per env ``env``, ``rows`` (``seed``, ``final`` {algo: return}, ``diff`` {algo: dsdpg - algo}),
        ``summary`` {algo: (mean difference, seeds DSDPG is ahead, ties, pairs)}, ``missing`` {seed: [algos]}
    """
    final = {(item["run"].algo, item["run"].env, item["run"].seed): float(item["returns"][-1]) for item in finished}
    others = [algo for algo in algos if algo != "dsdpg"]
    result = []
    for env in envs:
        rows, missing = [], {}
        for seed in seeds:
            absent = [algo for algo in algos if (algo, env, seed) not in final]
            if absent:
                missing[seed] = absent
                continue
            values = {algo: final[(algo, env, seed)] for algo in algos}
            diff = {algo: values["dsdpg"] - values[algo] for algo in others} if "dsdpg" in values else {}
            rows.append({"seed": seed, "final": values, "diff": diff})
        summary = {}
        if rows and "dsdpg" in algos:
            for algo in others:
                diffs = np.array([row["diff"][algo] for row in rows])
                summary[algo] = (float(diffs.mean()), int((diffs > 0).sum()), int((diffs == 0).sum()), len(diffs))
        result.append({"env": env.label, "rows": rows, "summary": summary, "missing": missing})
    return result


def write_paired_csv(pairs: list[dict[str, Any]], algos: Sequence[str], path: Path) -> None:
    """``paired.csv``: one row per env and paired seed."""
    others = [algo for algo in algos if algo != "dsdpg"] if "dsdpg" in algos else []
    fields = ["env", "seed", *(f"final_{algo}" for algo in algos), *(f"dsdpg_minus_{algo}" for algo in others)]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for group in pairs:
            for row in group["rows"]:
                writer.writerow(
                    {
                        "env": group["env"],
                        "seed": row["seed"],
                        **{f"final_{algo}": row["final"][algo] for algo in algos},
                        **{f"dsdpg_minus_{algo}": row["diff"][algo] for algo in others},
                    }
                )


def paired_lines(pairs: list[dict[str, Any]], algos: Sequence[str]) -> list[str]:
    """The "Paired per-seed results" section of results.md."""
    lines = [
        "## Paired per-seed results",
        "",
        "Final return of each seed (the same seed for every algorithm) and the difference DSDPG minus each other "
        "algorithm on that seed. Only seeds finished by every algorithm of the env are paired. Also in `paired.csv`.",
        "",
    ]
    if "dsdpg" not in algos or len(algos) < 2:
        return [*lines, "DSDPG and at least one other algorithm are needed for paired differences.", ""]
    others = [algo for algo in algos if algo != "dsdpg"]
    for group in pairs:
        lines += [f"### {group['env']}", ""]
        if group["rows"]:
            lines += [
                "| seed | " + " | ".join(algos) + " | " + " | ".join(f"dsdpg - {algo}" for algo in others) + " |",
                "|---:|" + "---:|" * (len(algos) + len(others)),
            ]
            for row in group["rows"]:
                cells = [_fmt(row["final"][algo]) for algo in algos] + [f"{row['diff'][algo]:+.1f}" for algo in others]
                lines.append(f"| {row['seed']} | " + " | ".join(cells) + " |")
            lines.append("")
            for algo, (mean, ahead, ties, n) in group["summary"].items():
                tie_text = f" ({ties} tied)" if ties else ""
                lines.append(f"- DSDPG ahead of {algo} on {ahead} of {n} seeds{tie_text}, mean difference {mean:+.1f}")
        else:
            lines.append("- No seed finished by every algorithm yet.")
        if group["missing"]:
            lines.append(
                "- Not paired (not finished by every algorithm): "
                + ", ".join(f"seed {seed} ({', '.join(absent)} missing)" for seed, absent in group["missing"].items())
            )
        lines.append("")
    return lines


def random_score(env: EnvSpec, episodes: int = RANDOM_EPISODES, seed: int = 0) -> float:
    """Mean return of uniformly random actions over ``episodes`` episodes (the 0 of the normalisation)."""
    import gymnasium as gym

    import sb3_dsdpg.envs  # noqa: F401  (registers the IDs)

    made = gym.make(env.env_id, **dict(env.kwargs))
    made.action_space.seed(seed)
    totals = []
    for episode in range(episodes):
        made.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = made.step(made.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        totals.append(total)
    made.close()
    return float(np.mean(totals))


def random_scores(out: Path, envs: Sequence[EnvSpec]) -> dict[str, float]:
    """Random-policy scores per env label, cached in ``report/random_scores.json``."""
    path = out / "report" / "random_scores.json"
    cached: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(path.read_text())
    for env in envs:
        if env.label not in cached:
            cached[env.label] = random_score(env)
    path.write_text(json.dumps(cached, indent=1))
    return cached


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean (scipy's 25% trimmed mean; with fewer than 4 values it is the mean)."""
    with needs("zoo", WHAT):
        from scipy.stats import trim_mean

    return float(trim_mean(np.asarray(values, dtype=float), 0.25))


def t_interval(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of the 95% t-interval along ``axis`` (0 half-width for one value)."""
    with needs("zoo", WHAT):
        from scipy.stats import t

    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, np.zeros_like(mean)
    half = t.ppf(0.975, n - 1) * values.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, half


def plot_curves(finished: list[dict[str, Any]], envs: Sequence[EnvSpec], algos: Sequence[str], report: Path) -> list[Path]:
    """One learning-curve figure per env and one with all envs."""
    plt = _plt()
    written = []
    n = len(envs)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    grid, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for index, env in enumerate(envs):
        single, single_ax = plt.subplots(figsize=(6, 4))
        for ax in (single_ax, axes[index // cols][index % cols]):
            for algo in algos:
                curves = [item for item in finished if item["run"].env == env and item["run"].algo == algo]
                if not curves:
                    continue
                length = min(len(item["returns"]) for item in curves)
                steps = curves[0]["timesteps"][:length]
                values = np.stack([item["returns"][:length] for item in curves])
                mean, half = t_interval(values)
                (line,) = ax.plot(steps, mean, label=f"{algo} ({len(curves)} seeds)")
                ax.fill_between(steps, mean - half, mean + half, alpha=0.2, color=line.get_color())
            ax.set_title(env.label, fontsize=9)
            ax.set_xlabel("env steps")
            ax.set_ylabel("eval return")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        path = report / f"curves_{env.slug}.png"
        single.tight_layout()
        single.savefig(path, dpi=100)
        plt.close(single)
        written.append(path)
    for index in range(n, rows * cols):
        axes[index // cols][index % cols].axis("off")
    grid.suptitle("Deterministic evaluation return: mean over seeds, 95% t-interval")
    grid.tight_layout()
    path = report / "curves.png"
    grid.savefig(path, dpi=90)
    plt.close(grid)
    written.append(path)
    return written


def aggregate(
    finished: list[dict[str, Any]], envs: Sequence[EnvSpec], algos: Sequence[str], seeds: Sequence[int], lows: dict[str, float]
) -> dict[str, Any]:
    """
    Normalised score matrices (seeds x envs) per algorithm over the envs every algorithm finished with every seed.

    :return: ``envs`` (labels used), ``left_out``, ``scores`` {algo: matrix}, ``highs`` {env label: best final score}
    """
    final = {(item["run"].algo, item["run"].env, item["run"].seed): float(item["returns"][-1]) for item in finished}
    # Seeds paired across algorithms: per env, the seeds every algorithm finished; then the seeds common to the envs
    # kept (an interrupted seed-major sweep keeps every env with its finished seeds).
    common = {env: [seed for seed in seeds if all((algo, env, seed) in final for algo in algos)] for env in envs}
    counts = {seed: sum(seed in common[env] for env in envs) for seed in seeds}
    anchor = max(seeds, key=lambda seed: (counts[seed], -seed)) if seeds else None
    complete = [env for env in envs if anchor in common[env]]
    seeds = [seed for seed in seeds if all(seed in common[env] for env in complete)]
    highs, floors = {}, {}
    for env in envs:
        values = [value for (_, item_env, _), value in final.items() if item_env == env]
        if values:
            highs[env.label] = max(values)
            floors[env.label] = min(min(values), lows[env.label])
    scores = {}
    for algo in algos:
        matrix = np.zeros((len(seeds), len(complete)))
        for column, env in enumerate(complete):
            low, high = floors[env.label], max(highs[env.label], lows[env.label])
            for row, seed in enumerate(seeds):
                matrix[row, column] = (final[(algo, env, seed)] - low) / (high - low) if high > low else 1.0
        scores[algo] = matrix
    return {
        "envs": [env.label for env in complete],
        "left_out": [env.label for env in envs if env not in complete],
        "seeds": seeds,
        "scores": scores,
        "highs": highs,
        "floors": floors,
    }


def plot_aggregate(scores: dict[str, np.ndarray], report: Path) -> dict[str, dict[str, tuple[float, float, float]]]:
    """rliable's IQM / mean / optimality gap with stratified-bootstrap 95% intervals, and performance profiles."""
    with needs("zoo", WHAT):
        from rliable import library as rly
        from rliable import metrics, plot_utils

    plt = _plt()

    def statistics(matrix: np.ndarray) -> np.ndarray:
        return np.array(
            [metrics.aggregate_iqm(matrix), metrics.aggregate_mean(matrix), metrics.aggregate_optimality_gap(matrix)]
        )

    point, intervals = rly.get_interval_estimates(scores, statistics, reps=BOOTSTRAP_REPS)
    names = ["IQM", "Mean", "Optimality Gap"]
    algos = list(scores)
    fig, _ = plot_utils.plot_interval_estimates(
        point, intervals, metric_names=names, algorithms=algos, xlabel="Normalised score", xlabel_y_coordinate=-0.3
    )
    fig.savefig(report / "aggregate.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    thresholds = np.linspace(0.0, 1.0, 51)
    profiles, profile_cis = rly.create_performance_profile(scores, thresholds)
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_utils.plot_performance_profiles(
        profiles, thresholds, performance_profile_cis=profile_cis, xlabel=r"Normalised score $(\tau)$", ax=ax
    )
    ax.legend(algos, loc="lower left")
    fig.savefig(report / "performance_profile.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return {
        algo: {
            name: (float(point[algo][i]), float(intervals[algo][0, i]), float(intervals[algo][1, i]))
            for i, name in enumerate(names)
        }
        for algo in algos
    }


def update_cost_text() -> str:
    """Run :mod:`sb3_dsdpg.tools.update_cost` (1 thread) and return what it prints."""
    from sb3_dsdpg.tools import update_cost

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        update_cost.main(["--threads", "1"])
    return buffer.getvalue()


def _fmt(value: float, digits: int = 1) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


# ----------------------------------------------------------------------------------------------------------------------
# results.md, section by section (each function returns its markdown lines)
# ----------------------------------------------------------------------------------------------------------------------


def _result_row(run: Run, items: list[dict[str, Any]], low: float) -> dict[str, Any]:
    """The results.csv row of one algorithm on one env (``run``: any run of the pair) from its finished runs."""
    final = np.array([item["returns"][-1] for item in items])
    walls = np.array([item["marker"]["wall_time_s"] for item in items])
    return {
        "algo": run.algo,
        "env": run.env.label,
        "timesteps": run.timesteps,
        "n_seeds": len(items),
        "final_mean": float(final.mean()) if len(final) else float("nan"),
        "final_std": float(final.std(ddof=0)) if len(final) else float("nan"),
        "final_iqm": iqm(final) if len(final) else float("nan"),
        "random_score": low,
        "steps_per_s": float(np.mean([item["marker"]["steps_per_s"] for item in items])) if items else float("nan"),
        "wall_time_s_mean": float(walls.mean()) if len(walls) else float("nan"),
    }


def result_rows(
    runs: Sequence[Run], envs: Sequence[EnvSpec], algos: Sequence[str], finished: list[dict[str, Any]], lows: dict[str, float]
) -> list[dict[str, Any]]:
    """One row per env and algorithm (env-major): final return statistics, random score, speed and wall time."""
    rows = []
    for env in envs:
        for algo in algos:
            items = [item for item in finished if item["run"].env == env and item["run"].algo == algo]
            run = next(run for run in runs if run.env == env and run.algo == algo)
            rows.append(_result_row(run, items, lows[env.label]))
    return rows


def write_results_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """``results.csv``: one row per algorithm and env (:func:`result_rows`)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_runs_csv(finished: list[dict[str, Any]], path: Path) -> None:
    """``runs.csv``: one row per finished run."""
    run_rows = [
        {
            "algo": item["run"].algo,
            "env": item["run"].env.label,
            "seed": item["run"].seed,
            "timesteps": item["run"].timesteps,
            "final_return": float(item["returns"][-1]),
            "best_eval_return": float(item["returns"].max()),
            "wall_time_s": item["marker"]["wall_time_s"],
            "steps_per_s": item["marker"]["steps_per_s"],
            "host": item["marker"].get("host", ""),
        }
        for item in finished
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(run_rows[0]) if run_rows else ["algo", "env", "seed"])
        writer.writeheader()
        writer.writerows(run_rows)


def write_aggregate(summary: dict[str, Any], algos: Sequence[str], lows: dict[str, float], report: Path) -> dict[str, Any]:
    """Plot the rliable aggregates (when an env is complete) and write ``aggregate.json``; return the aggregates."""
    aggregates: dict[str, Any] = {}
    if summary["envs"] and len(algos) > 0:
        aggregates = plot_aggregate(summary["scores"], report)
    (report / "aggregate.json").write_text(
        json.dumps(
            {
                "envs": summary["envs"],
                "seeds": summary["seeds"],
                "left_out": summary["left_out"],
                "aggregates": aggregates,
                "random_scores": lows,
                "best_scores": summary["highs"],
                "normalisation_zero": summary["floors"],
            },
            indent=1,
        )
    )
    return aggregates


def header_lines(
    runs: Sequence[Run], finished: list[dict[str, Any]], argv: Sequence[str], suite: str | None, protocols: list[str]
) -> list[str]:
    """The title, the command line, the count of finished runs and the protocol text."""
    envs = list(dict.fromkeys(run.env for run in runs))
    algos = list(dict.fromkeys(run.algo for run in runs))
    seeds = sorted({run.seed for run in runs})
    return [
        "# DSDPG vs " + ", ".join(algo for algo in algos if algo != "dsdpg"),
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M')} by `python -m sb3_dsdpg.compare {' '.join(argv)}`"
        + (f" (suite `{suite}`)" if suite else "")
        + ".",
        "",
        f"Runs finished: {len(finished)} of {len(runs)} ({len(algos)} algorithms x {len(envs)} envs x {len(seeds)} seeds: "
        f"{', '.join(map(str, seeds))}). Final score of a run = mean return of the deterministic episodes of its last "
        "evaluation.",
        "",
        *(PROTOCOL_TEXT.get(protocol, f"**Protocol: {protocol}.**") for protocol in protocols),
        "",
    ]


def settings_lines(setting_rows: list[dict[str, Any]], protocols: list[str]) -> list[str]:
    """The "Settings per algorithm and env" section (and, matched protocol, the shared settings that differ)."""
    lines = [
        "## Settings per algorithm and env",
        "",
        "What each algorithm got, read from the zoo's `config.yml` of its finished runs (`<algo>/<Env>_1/<Env>/`), "
        "else from its zoo entry and `-params`. `(default)`: the run left the key to the algorithm's constructor "
        "(or policy). Own arguments: the rest of its configuration (algorithm-specific).",
        "",
        "| env | algo | " + " | ".join(header for _, header in SETTING_COLUMNS) + " | own arguments | source |",
        "|---|---|" + "---|" * (len(SETTING_COLUMNS) + 2),
        *(
            f"| {row['env']} | {row['algo']} | "
            + " | ".join(row["cells"][key] for key, _ in SETTING_COLUMNS)
            + f" | {row['cells']['own']} | {row['source']} |"
            for row in setting_rows
        ),
        "",
    ]
    if "matched" not in protocols:
        return lines
    differences = shared_differences(setting_rows)
    if differences:
        text = (
            "Shared settings that differ between algorithms (per-algorithm overrides): "
            + "; ".join(f"{env}: {', '.join(keys)}" for env, keys in differences.items())
            + "."
        )
    else:
        text = (
            "On every env the shared settings are the same for every algorithm (action noise compared among "
            "dsdpg, its variants, td3, ddpg only)."
        )
    return [*lines, text, ""]


def final_return_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The "Final return per algorithm and env" table (:func:`result_rows`)."""
    lines = [
        "## Final return per algorithm and env",
        "",
        "| env | algo | steps | seeds | final return mean +- std | IQM | random policy | env steps/s | wall time/run (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if not row["n_seeds"]:
            lines.append(f"| {row['env']} | {row['algo']} | {row['timesteps']} | 0 | not finished | | | | |")
            continue
        lines.append(
            f"| {row['env']} | {row['algo']} | {row['timesteps']} | {row['n_seeds']} | "
            f"{_fmt(row['final_mean'])} +- {_fmt(row['final_std'])} | {_fmt(row['final_iqm'])} | "
            f"{_fmt(row['random_score'])} | "
            f"{_fmt(row['steps_per_s'])} | {_fmt(row['wall_time_s_mean'], 0)} |"
        )
    return [*lines, "", "IQM over seeds is scipy's 25% trimmed mean: with fewer than 4 seeds it equals the mean.", ""]


def aggregate_lines(summary: dict[str, Any], aggregates: dict[str, Any]) -> list[str]:
    """The "Aggregate over envs (rliable)" section: the normalisation, then the aggregate table and figures."""
    lines = [
        "## Aggregate over envs (rliable)",
        "",
        "Normalisation (min-max, per env): 0 = the lower of the mean return of a uniformly random policy over "
        f"{RANDOM_EPISODES} episodes (seeds 0..{RANDOM_EPISODES - 1}, `random_scores.json`) and the worst final score "
        "of any run on that env (so a run worse than random is not blown up when the best run barely beats random), "
        "1 = the best final score of any run of any algorithm on that env (the best run scores 1 by construction; the "
        "scale is relative to this sweep, not to published results). Both ends per env: `aggregate.json`. "
        f"95% intervals: stratified bootstrap over runs, {BOOTSTRAP_REPS} resamples (zero width with one seed).",
        "",
    ]
    if not aggregates:
        return [*lines, "No env was finished by every algorithm with every seed: no aggregate yet.", ""]
    left_out = summary["left_out"]
    lines += [
        f"Envs in the aggregate: {', '.join(summary['envs'])}; seeds {', '.join(map(str, summary['seeds']))}."
        + (f" Left out (not finished by every algorithm with these seeds): {', '.join(left_out)}." if left_out else ""),
        "",
        "| algo | IQM [95% CI] | mean [95% CI] | optimality gap [95% CI] |",
        "|---|---|---|---|",
    ]
    for algo, values in aggregates.items():
        cells = [f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in values.values()]
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    return [*lines, "", "![aggregate](aggregate.png)", "", "![performance profile](performance_profile.png)", ""]


def curves_lines(figures: list[Path]) -> list[str]:
    """The "Learning curves" section: the all-envs figure."""
    return ["## Learning curves", "", *(f"![{path.stem}]({path.name})" for path in figures if path.name == "curves.png"), ""]


def cost_lines(rows: list[dict[str, Any]], envs: Sequence[EnvSpec]) -> list[str]:
    """The "Cost per run" section: per env, DSDPG's wall time per run over each other algorithm's (no trailing blank)."""
    lines = ["## Cost per run", ""]
    for env in envs:
        walls = {row["algo"]: row["wall_time_s_mean"] for row in rows if row["env"] == env.label}
        if "dsdpg" not in walls or not np.isfinite(walls["dsdpg"]):
            continue
        ratios = [
            f"{walls['dsdpg'] / value:.1f}x {algo}"
            for algo, value in walls.items()
            if algo != "dsdpg" and np.isfinite(value) and value > 0
        ]
        if ratios:
            lines.append(f"- {env.label}: DSDPG wall time per run = " + ", ".join(ratios))
    return [
        *lines,
        "",
        "Per run: `runs.csv`. Wall time includes evaluation, process start-up and a shared, contended machine.",
    ]


def update_cost_lines() -> list[str]:
    """The "Update cost" section (runs the benchmark; starts with the blank line the cost section leaves out)."""
    return [
        "",
        "## Update cost (`python -m sb3_dsdpg.benchmarks.update_cost --threads 1`)",
        "",
        "```",
        update_cost_text().rstrip(),
        "```",
    ]


def write_report(
    out: Path, runs: Sequence[Run], argv: Sequence[str], suite: str | None = None, update_cost: bool = True
) -> Path:
    """
    Write ``out/report/`` from the finished runs among ``runs``.

    :param out: the sweep folder
    :param runs: the runs of the sweep (finished or not)
    :param argv: the command line of the sweep (quoted in results.md)
    :param suite: the suite's name, if any
    :param update_cost: run the update-cost benchmark and append its figures
    :return: the path of results.md
    """
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    envs = list(dict.fromkeys(run.env for run in runs))
    algos = list(dict.fromkeys(run.algo for run in runs))
    seeds = sorted({run.seed for run in runs})
    finished = load_finished(out, runs)
    lows = random_scores(out, envs)

    rows = result_rows(runs, envs, algos, finished, lows)
    write_results_csv(rows, report / "results.csv")
    write_runs_csv(finished, report / "runs.csv")
    pairs = paired(finished, envs, algos, seeds)
    write_paired_csv(pairs, algos, report / "paired.csv")
    setting_rows = settings(out, runs, finished)
    protocols = list(dict.fromkeys(run.protocol for run in runs))
    figures = plot_curves(finished, envs, algos, report) if finished else []
    summary = aggregate(finished, envs, algos, seeds, lows)
    aggregates = write_aggregate(summary, algos, lows, report)

    lines = [
        *header_lines(runs, finished, argv, suite, protocols),
        *settings_lines(setting_rows, protocols),
        *final_return_lines(rows),
        *paired_lines(pairs, algos),
        *aggregate_lines(summary, aggregates),
        *curves_lines(figures),
        *cost_lines(rows, envs),
        *(update_cost_lines() if update_cost else []),
    ]
    path = report / "results.md"
    path.write_text("\n".join(lines) + "\n")
    return path


__all__ = ["MARKER", "write_report"]
