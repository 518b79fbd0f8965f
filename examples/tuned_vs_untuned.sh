#!/usr/bin/env bash
# Tuned against untuned dsdpg.yml entries on fresh seeds, as docs/zoo.md ("Tuned entries") reports them.
#
#   bash examples/tuned_vs_untuned.sh ENV UNTUNED_YML TUNED_YML OUT [zoo arguments for both runs ...]
#
# Seeds 0, 1 and 2 (the studies' workers used 100 and 101). For each seed the untuned and the tuned entry train at
# the same time (one torch thread each, so both see the same load), with the zoo arguments given (the budget), and
# are evaluated as the study's trials were: 10 deterministic episodes every 2000 steps. The table gives the last
# evaluation's mean return and each run's wall time; OUT/results.csv holds the same rows.
set -euo pipefail
env_id=$1 untuned=$2 tuned=$3 out=$4
shift 4
if [ -e "$out" ]; then
    echo "$out exists: give a new folder (the zoo would number a second run of a seed apart)" >&2
    exit 2
fi
mkdir -p "$out"
for seed in 0 1 2; do
    for which in untuned tuned; do
        conf=$untuned
        [ "$which" = tuned ] && conf=$tuned
        (
            start=$(date +%s)
            python -m sb3_dsdpg.train --algo dsdpg --env "$env_id" --conf-file "$conf" --seed "$seed" \
                -f "$out/$which/seed$seed" --num-threads 1 --eval-freq 2000 --eval-episodes 10 "$@" \
                >"$out/$which-seed$seed.log" 2>&1
            echo $(($(date +%s) - start)) >"$out/$which/seed$seed/seconds"
        ) &
    done
    wait
done
python - "$out" <<'EOF'
import csv
import glob
import sys
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
rows = []
for which in ("untuned", "tuned"):
    for seed in (0, 1, 2):
        folder = out / which / f"seed{seed}"
        (evaluations,) = glob.glob(str(folder / "dsdpg" / "*" / "evaluations.npz"))
        data = np.load(evaluations)
        seconds = int((folder / "seconds").read_text())
        last = float(data["results"][-1].mean())
        rows.append(dict(entry=which, seed=seed, steps=int(data["timesteps"][-1]), final_return=last, seconds=seconds))
with open(out / "results.csv", "w", newline="") as file:
    writer = csv.DictWriter(file, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
print(f"{'entry':8} {'seed':>4} {'steps':>6} {'final return':>12} {'seconds':>7}")
for row in rows:
    print(f"{row['entry']:8} {row['seed']:>4} {row['steps']:>6} {row['final_return']:>12.1f} {row['seconds']:>7}")
for which in ("untuned", "tuned"):
    returns = [row["final_return"] for row in rows if row["entry"] == which]
    print(f"{which}: mean {np.mean(returns):.1f} (per seed {', '.join(f'{r:.1f}' for r in returns)})")
EOF
