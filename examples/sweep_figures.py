"""The figures and tables of the paper's two sweeps, read from the reports of ``python -m sb3_dsdpg.compare``.

Run: ``python examples/sweep_figures.py toy runs/toy-bonus-sweep/report results/toy-bonus-sweep`` and
``python examples/sweep_figures.py noise runs/noise-sweep/report results/noise-sweep``; ``--also REPORT ...`` adds the
runs of the same sweep resumed in another folder (a run found in several reports is taken from the last).

Each reads the report's ``runs.csv`` (one row per finished run; its ``final_return`` is the last periodic
deterministic evaluation) and writes into the output folder:

- ``toy``: ``bonus_sweep.png``, the final return against the number of bonuses ``N`` per algorithm (mean over seeds,
  95% bootstrap interval, seeds as dots), as the paper's toy figure (Sec. 6.1); ``bonus_sweep.md``, the per-seed
  table and, per ``N``, DSDPG's paired difference to MAGE (``mage``) and to each other algorithm, seed by seed.
- ``noise``: ``noise_sweep.png``, the final return per noise level and algorithm; ``noise_sweep.md``, the per-seed
  table and DSDPG's paired differences.
"""

from __future__ import annotations

import argparse
import csv
import os
import re

import numpy as np
from ablations import bootstrap_interval

ORDER = (
    "dsdpg", "dsdpg-mmd", "mage", "dsdpg-returns", "td3", "tqc", "sac", "dsdpg-msmmd", "dsdpg-known-reward", "dsdpg-gw0",
    "dsdpg-gw0-untrained-models", "dsdpg-auto-scale", "dsdpg-per-row-mean", "dsdpg-2026-12-07",
)  # fmt: skip


def read_runs(reports: list[str]) -> list[dict]:
    """The runs of one or more reports of the same sweep, a run (algo, env, seed) taken from the last report holding it."""
    runs: dict[tuple[str, str, str], dict] = {}
    for report in reports:
        with open(os.path.join(report, "runs.csv")) as file:
            runs.update({(row["algo"], row["env"], row["seed"]): row for row in csv.DictReader(file)})
    return list(runs.values())


def noise_level(env: str) -> tuple[int, float]:
    """Sort key of a noise-sweep env label: clean, then dynamics noise, then observation noise, each by level."""
    if "DynNoise" in env:
        match = re.search(r"sigma=([0-9.]+)", env)
        return 1, float(match.group(1)) if match else 0.1
    if "ObsNoise" in env:
        match = re.search(r"high=([0-9.]+)", env)
        return 2, float(match.group(1)) if match else 1.2
    return 0, 0.0


def noise_label(env: str) -> str:
    """A short axis label: ``clean``, ``dyn sigma=0.1``, ``obs x U(0.8,1.2)``."""
    kind, _ = noise_level(env)
    if kind == 1:
        match = re.search(r"sigma=([0-9.]+)", env)
        return f"dyn sigma={match.group(1) if match else '0.1'}"
    if kind == 2:
        low, high = re.search(r"low=([0-9.]+)", env), re.search(r"high=([0-9.]+)", env)
        return f"obs x U({low.group(1) if low else '0.8'},{high.group(1) if high else '1.2'})"
    return "clean"


def table(rows: list[dict]) -> dict[str, dict[str, dict[int, float]]]:
    """env label -> algo -> seed -> final return."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for row in rows:
        out.setdefault(row["env"], {}).setdefault(row["algo"], {})[int(row["seed"])] = float(row["final_return"])
    return out


def bootstrap(values: list[float]) -> tuple[float, float]:
    """95% bootstrap interval of the mean (seeded); NaN without values."""
    return bootstrap_interval(values) if values else (np.nan, np.nan)


def paired(mine: dict[int, float], other: dict[int, float]) -> str:
    seeds = sorted(set(mine) & set(other))
    if not seeds:
        return "-"
    diff = [mine[s] - other[s] for s in seeds]
    low, high = bootstrap(diff)
    wins = sum(d > 0 for d in diff)
    return f"{np.mean(diff):+.1f} [{low:+.1f}, {high:+.1f}], ahead on {wins}/{len(seeds)}"


def algos_of(results: dict[str, dict[str, dict[int, float]]]) -> list[str]:
    present = {algo for per_env in results.values() for algo in per_env}
    return [a for a in ORDER if a in present] + sorted(present - set(ORDER))


def write_markdown(results, envs: list[str], names: dict[str, str], title: str, path: str, seconds: dict) -> None:
    algos = algos_of(results)
    seeds = sorted({s for e in envs for a in results[e].values() for s in a})
    lines = [f"# {title}", "", "Written by `python examples/sweep_figures.py` from the compare report's `runs.csv`.", ""]
    lines += ["| setting | algorithm | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | 95% CI | s/run |"]
    lines += ["|---" * (len(seeds) + 5) + "|"]
    for env in envs:
        for algo in algos:
            mine = results[env].get(algo, {})
            if not mine:
                continue
            cells = [f"{mine[s]:.1f}" if s in mine else "" for s in seeds]
            low, high = bootstrap(list(mine.values()))
            wall = np.mean(seconds.get((env, algo), [np.nan]))
            lines.append(
                f"| {names[env]} | {algo} | " + " | ".join(cells)
                + f" | {np.mean(list(mine.values())):.1f} | [{low:.1f}, {high:.1f}] | {wall:.0f} |"
            )  # fmt: skip
    lines += ["", "## DSDPG's paired difference (mean [95% CI], seeds ahead)", ""]
    others = [a for a in algos if a != "dsdpg"]
    lines += ["| setting | " + " | ".join(f"vs {a}" for a in others) + " |", "|---" * (len(others) + 1) + "|"]
    for env in envs:
        mine = results[env].get("dsdpg", {})
        lines.append(f"| {names[env]} | " + " | ".join(paired(mine, results[env].get(a, {})) for a in others) + " |")
    with open(path, "w") as file:
        file.write("\n".join(lines) + "\n")


def plot(results, envs: list[str], xs: list, xlabel: str, title: str, path: str, log_x: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = algos_of(results)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    width = 0.6 / max(1, len(algos))
    for i, algo in enumerate(algos):
        positions = np.arange(len(envs)) + (i - (len(algos) - 1) / 2) * width
        means, lows, highs = [], [], []
        for j, env in enumerate(envs):
            values = list(results[env].get(algo, {}).values())
            ax.scatter([positions[j]] * len(values), values, s=8, alpha=0.4, color=f"C{i}")
            means.append(np.mean(values) if values else np.nan)
            low, high = bootstrap(values)
            lows.append(low)
            highs.append(high)
        means, lows, highs = map(np.array, (means, lows, highs))
        ax.errorbar(positions, means, yerr=[means - lows, highs - means], fmt="o-", color=f"C{i}", label=algo, capsize=3)
    ax.set_xticks(np.arange(len(envs)), [str(x) for x in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("final return (deterministic evaluation)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", choices=("toy", "noise"))
    parser.add_argument("report", help="the compare report folder (holds runs.csv)")
    parser.add_argument("out", help="output folder")
    parser.add_argument(
        "--also", nargs="+", default=[], help="reports of the same sweep resumed in other folders (their runs are added)"
    )
    args = parser.parse_args()
    rows = read_runs([args.report, *args.also])
    results = table(rows)
    seconds: dict = {}
    for row in rows:
        seconds.setdefault((row["env"], row["algo"]), []).append(float(row["wall_time_s"]))
    os.makedirs(args.out, exist_ok=True)
    if args.sweep == "toy":
        by_n = {int(re.search(r"n_bonus=(\d+)", env).group(1)): env for env in results}
        ns = sorted(by_n)
        envs = [by_n[n] for n in ns]
        names = {env: f"N={n}" for n, env in by_n.items()}
        title = "PointMassRevealedBonus-v0: final return against the number of bonuses"
        plot(results, envs, ns, "number of bonuses N", title, os.path.join(args.out, "bonus_sweep.png"))
        write_markdown(results, envs, names, "The bonus-count sweep", os.path.join(args.out, "bonus_sweep.md"), seconds)
    else:
        envs = sorted(results, key=noise_level)
        names = {env: noise_label(env) for env in envs}
        title = "InvertedDoublePendulum: final return per noise level"
        plot(results, envs, [names[e] for e in envs], "noise", title, os.path.join(args.out, "noise_sweep.png"))
        write_markdown(results, envs, names, "The noise-level sweep", os.path.join(args.out, "noise_sweep.md"), seconds)
    print(open(os.path.join(args.out, f"{'bonus' if args.sweep == 'toy' else 'noise'}_sweep.md")).read())


if __name__ == "__main__":
    main()
