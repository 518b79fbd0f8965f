#!/usr/bin/env bash
# Tune DSDPG on one task with two `-optimize` workers sharing one optuna study in a PostgreSQL database, as the
# tuned entries of sb3_dsdpg/hyperparams/dsdpg.yml were made (docs/zoo.md, "Tuned entries").
#
#   URL=postgresql+psycopg2://USER@/DB?host=SOCKET_DIR bash examples/tune_shared_study.sh ENV STUDY MINUTES BASELINE \
#       [zoo arguments ...]
#
# ENV      the task, e.g. sb3_dsdpg/Pendulum-DynNoise-v1
# STUDY    the study's name; it is created here (two workers creating optuna's tables at once would race)
# MINUTES  wall time of the study: each worker gets SIGINT then, which the zoo catches (the running trial is stored
#          as FAIL) before it writes its report
# BASELINE the untuned entry as trial parameters (JSON, the sampler's names): enqueued as the study's first trial, so
#          the study scores the untuned entry with the same budget and seeds as every other trial
# The remaining arguments go to both workers (budget, evaluations, pruner, ...). The workers use seeds 100 and 101,
# one torch thread each; logs go to runs/tune/STUDY.
set -euo pipefail
env_id=$1 study=$2 minutes=$3 baseline=$4
shift 4
: "${URL:?set URL to the study database (SQLAlchemy URL)}"
out=runs/tune/$study
mkdir -p "$out"
# Retried: two of these scripts started at once on an empty database race to create optuna's tables (one fails with
# "duplicate key ... pg_type_typname_nsp_index"); the second attempt finds the tables.
for attempt in 1 2 3; do
    optuna create-study --storage "$URL" --study-name "$study" --direction maximize --skip-if-exists && break
    [ "$attempt" = 3 ] && exit 1
    sleep 2
done
python -c "import json, sys, optuna; optuna.load_study(storage=sys.argv[1], study_name=sys.argv[2]).enqueue_trial(json.loads(sys.argv[3]))" \
    "$URL" "$study" "$baseline"
for seed in 100 101; do
    timeout -s INT "${minutes}m" python -m sb3_dsdpg.train --algo dsdpg --env "$env_id" -optimize --storage "$URL" \
        --study-name "$study" --n-trials 1000 --n-jobs 1 --num-threads 1 --seed "$seed" -f "$out" --no-optim-plots \
        "$@" >"$out/worker$seed.log" 2>&1 &
done
wait || true
python -c "import sys, optuna; optuna.load_study(storage=sys.argv[1], study_name=sys.argv[2]).trials_dataframe().to_csv(sys.argv[3])" \
    "$URL" "$study" "$out/trials.csv"
echo "study $study: trials in $out/trials.csv"
