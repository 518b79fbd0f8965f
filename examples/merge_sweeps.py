"""Aggregate the runs of two compare sweeps of the same suite and protocol as if they were one: new DSDPG runs beside
an earlier sweep's TD3 and TQC runs on the same seeds and settings.

Run: ``python examples/merge_sweeps.py --old results/cpu-small-matched --new results/cpu-small-ladder [--take dsdpg]
[--out results/cpu-small-ladder/merged.md]``. The runs of ``--take`` come from ``--new``, every other algorithm's
from ``--old``; both folders hold a compare report (``runs.csv`` and ``random_scores.json``). The aggregate is the
compare report's: per env, scores min-max normalised between the lower of the random policy's score and the worst
final return of any run, and the best final return of any run; IQM (25% trimmed mean) over all runs and envs with a
95% stratified bootstrap interval (seeds resampled per env, 2000 draws, seeded), over the seeds every algorithm
finished. Use it only when the sweeps ran the same settings for the algorithms taken from ``--old`` (the compare
report's settings table says what they got).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from scipy.stats import trim_mean


def read_runs(folder: Path, algos: set[str] | None, exclude: set[str]) -> list[dict]:
    with open(folder / "runs.csv") as file:
        rows = list(csv.DictReader(file))
    return [r for r in rows if (algos is None or r["algo"] in algos) and r["algo"] not in exclude]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--take", nargs="+", default=["dsdpg"], help="algorithms whose runs come from --new")
    parser.add_argument("--out", type=Path, help="markdown file to write (default: print only)")
    args = parser.parse_args()
    take = set(args.take)
    rows = read_runs(args.old, None, take) + read_runs(args.new, take, set())
    lows = json.loads((args.old / "random_scores.json").read_text())
    algos = sorted({r["algo"] for r in rows})
    envs = sorted({r["env"] for r in rows})
    final = {(r["algo"], r["env"], int(r["seed"])): float(r["final_return"]) for r in rows}
    seeds = sorted({s for (_, _, s) in final if all((a, e, s) in final for a in algos for e in envs)})
    lines = [f"Runs of {', '.join(sorted(take))} from `{args.new}`, the others from `{args.old}`; seeds {seeds}.", ""]
    lines += ["| env | " + " | ".join(algos) + " |", "|---" * (len(algos) + 1) + "|"]
    matrix = {a: np.zeros((len(seeds), len(envs))) for a in algos}
    for j, env in enumerate(envs):
        values = [final[(a, env, s)] for a in algos for s in seeds]
        low, high = min(min(values), lows[env]), max(values)
        cells = []
        for a in algos:
            scores = [final[(a, env, s)] for s in seeds]
            matrix[a][:, j] = [(v - low) / (high - low) for v in scores]
            cells.append(f"{np.mean(scores):.1f} +- {np.std(scores):.1f} ({', '.join(f'{v:.0f}' for v in scores)})")
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    rng = np.random.default_rng(0)
    lines += ["", "| algo | IQM [95% CI] | mean [95% CI] |", "|---|---|---|"]
    for a in algos:
        m = matrix[a]
        columns = np.arange(len(envs))[None, :]
        boot = [m[rng.integers(0, len(seeds), size=(len(seeds), len(envs))), columns] for _ in range(2000)]
        iqms = [trim_mean(b.ravel(), 0.25) for b in boot]
        means = [b.mean() for b in boot]
        lines.append(
            f"| {a} | {trim_mean(m.ravel(), 0.25):.3f} [{np.percentile(iqms, 2.5):.3f}, {np.percentile(iqms, 97.5):.3f}] "
            f"| {m.mean():.3f} [{np.percentile(means, 2.5):.3f}, {np.percentile(means, 97.5):.3f}] |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
