"""
Summary of a tuning study from its exported trials (``runs/tune/STUDY/trials.csv`` of examples/tune_shared_study.sh):
trials by state, the study's wall time, the untuned entry (trial 0, enqueued), the best trial and the next ones, as
the markdown that docs/zoo.md ("Tuned entries") shows.

    python examples/study_summary.py results/tuning/dsdpg-pendulum-dynnoise/trials.csv [--top 5]
"""

import argparse

import pandas as pd

SHOWN = {  # trial parameter -> column title; the rest of a trial's parameters are in the CSV
    "train_freq": "train_freq",
    "gradient_steps": "gradient_steps",
    "learning_rate": "lr",
    "batch_size_pow": "batch",
    "one_minus_gamma": "gamma",
    "net_arch": "net",
    "world_model": "world model",
    "n_samples": "samples",
}


def cell(trial: pd.Series, name: str) -> str:
    value = trial[f"params_{name}"]
    if name == "batch_size_pow":
        return str(2 ** int(value))
    if name == "one_minus_gamma":
        return f"{1 - value:.4f}"
    if name == "learning_rate":
        return f"{value:.1e}"
    if name == "world_model":
        return f"{value}/{trial['params_world_model_size']}"
    return str(value)


def row(trial: pd.Series) -> str:
    minutes = (pd.to_datetime(trial["datetime_complete"]) - pd.to_datetime(trial["datetime_start"])).total_seconds() / 60
    number = f"{trial['number']} (untuned)" if trial["number"] == 0 else str(trial["number"])
    return f"| {number} | {trial['value']:.1f} | {minutes:.1f} | " + " | ".join(cell(trial, name) for name in SHOWN) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("trials", help="trials.csv exported from the study")
    parser.add_argument("--top", type=int, default=5, help="best complete trials shown (default 5)")
    args = parser.parse_args()
    trials = pd.read_csv(args.trials)
    counts = trials["state"].value_counts()
    start = pd.to_datetime(trials["datetime_start"]).min()
    end = pd.to_datetime(trials["datetime_complete"]).max()
    print(f"{len(trials)} trials: " + ", ".join(f"{counts[state]} {state.lower()}" for state in counts.index))
    print(f"first trial started {start:%H:%M}, last finished {end:%H:%M} ({(end - start).total_seconds() / 60:.0f} min)")
    complete = trials[trials["state"] == "COMPLETE"].sort_values("value", ascending=False)
    shown = complete.head(args.top)
    if 0 not in set(shown["number"]):
        shown = pd.concat([shown, trials[trials["number"] == 0]])
    print()
    print("| trial | last evaluation | minutes | " + " | ".join(SHOWN.values()) + " |")
    print("|---" * (3 + len(SHOWN)) + "|")
    for _, trial in shown.iterrows():
        print(row(trial))
    if 0 in set(complete["number"]):
        rank = list(complete["number"]).index(0) + 1
        print(f"\nThe untuned entry (trial 0) ranks {rank} of {len(complete)} complete trials.")


if __name__ == "__main__":
    main()
