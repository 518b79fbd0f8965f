"""Two ``python -m sb3_dsdpg.train -optimize`` workers share one optuna study on a real PostgreSQL server (the
``postgres_urls`` fixture of conftest.py, tests/postgres.py): one connects through the server's unix socket, as a
worker on the database's machine does, the other over TCP with a password, as a worker on another machine does. The
study ends with the trials of both, none lost, none counted twice, none left running, and its best parameters are
readable from the database; a wrong password is refused. Marked ``subprocess``.

The study is created first (``optuna create-study``): two workers that start at once on an empty database both create
optuna's tables, and one of them fails (``duplicate key value violates unique constraint "pg_type_typname_nsp_index"``
on ``CREATE TYPE studydirection``), which this test met without that step."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rl_zoo3", reason="the zoo extra is not installed: pip install -e '.[zoo]'")
optuna = pytest.importorskip("optuna", reason="the zoo extra is not installed: pip install -e '.[zoo]'")

STUDY = "dsdpg-shared"
N_TRIALS = 2  # per worker: the zoo's --n-trials is each worker's own count (study.optimize(n_trials=...))


def worker_command(storage: str, seed: int) -> list[str]:
    """One worker: 300 Pendulum steps per trial, trained from step 200 on (the sampled nets are up to 256 wide, with
    up to 8 gradient steps), one evaluation episode, random sampler, no pruning; one torch thread."""
    return [
        sys.executable, "-m", "sb3_dsdpg.train", "--algo", "dsdpg", "--env", "Pendulum-v1", "-optimize",
        "--storage", storage, "--study-name", STUDY, "--n-trials", str(N_TRIALS), "--n-jobs", "1",
        "--sampler", "random", "--pruner", "none", "-n", "300", "--n-evaluations", "1", "--eval-episodes", "1",
        "--num-threads", "1", "--seed", str(seed), "-f", "logs", "--no-optim-plots",
        "-params", "learning_starts:200", "buffer_size:1000",
    ]  # fmt: skip


def optuna_cli() -> str:
    """The ``optuna`` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "optuna"
    return str(script) if script.is_file() else shutil.which("optuna") or pytest.skip("no optuna command")


@pytest.mark.subprocess
def test_two_workers_share_one_study_on_postgres(postgres_urls, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    socket_url, tcp_url = postgres_urls.socket, postgres_urls.tcp
    create = [optuna_cli(), "create-study", "--storage", socket_url, "--study-name", STUDY, "--direction", "maximize"]
    created = subprocess.run(create, env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr[-4000:]
    workers = []
    for seed, url in ((1, socket_url), (2, tcp_url)):
        cwd = tmp_path / f"worker{seed}"
        cwd.mkdir()
        command = worker_command(url, seed)
        workers.append(
            (command, subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        )
    for command, worker in workers:
        try:
            stdout, stderr = worker.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for _, other in workers:
                other.kill()
            pytest.fail(f"{' '.join(command)} did not finish in 600 s")
        if worker.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed ({worker.returncode}):\n{stdout[-4000:]}\n{stderr[-4000:]}")
        assert "Number of finished trials: " in stdout

    study = optuna.load_study(storage=tcp_url, study_name=STUDY)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2 * N_TRIALS  # both workers' trials, none lost
    assert sorted(trial.number for trial in trials) == list(range(2 * N_TRIALS))  # none counted twice
    assert len({trial._trial_id for trial in trials}) == 2 * N_TRIALS
    assert [trial.state for trial in trials] == [optuna.trial.TrialState.COMPLETE] * (2 * N_TRIALS)  # none RUNNING/FAIL
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.best_value == max(trial.value for trial in trials)
    assert {"learning_rate", "n_samples", "kernel_bandwidth"} <= set(study.best_params)
    assert "command" in study.user_attrs  # the first worker's command, stored once
    assert optuna.load_study(storage=socket_url, study_name=STUDY).best_trial.number == study.best_trial.number


@pytest.mark.subprocess
def test_postgres_refuses_a_wrong_password_over_tcp(postgres_urls):
    # The TCP URL's password is checked (scram-sha-256): the "other machine" worker above really authenticated.
    with pytest.raises(Exception, match="password authentication failed"):
        optuna.storages.RDBStorage(postgres_urls.with_password("wrong"))


@pytest.mark.subprocess
def test_tuning_script_scores_the_untuned_entry_first(postgres_urls, tmp_path):
    # examples/tune_shared_study.sh, as the tuned entries of dsdpg.yml were made, at the test's tiny budgets: the study
    # it creates holds both workers' trials, trial 0 is the enqueued baseline with its parameters, and the trials are
    # exported to runs/tune/STUDY/trials.csv.
    script = Path(__file__).resolve().parents[1] / "examples" / "tune_shared_study.sh"
    baseline = {
        "one_minus_gamma": 0.02, "learning_rate": 1e-3, "batch_size_pow": 6, "tau": 0.005, "train_freq": 1,
        "gradient_steps": 1, "noise_type": "normal", "noise_std": 0.1, "net_arch": "small", "critic_noise_dim": 8,
        "n_samples": 4, "n_target_model_draws": 1, "top_samples_to_drop_per_critic": 1, "kernel_bandwidth": 100.0,
        "world_model": "cvae", "world_model_size": "small", "world_model_latent_dim": 8,
        "world_model_learning_rate": 3e-4, "world_model_gradient_steps": 1, "critic_actions": "policy",
        "reward_scale": "auto", "normalize_samples": True, "world_model_warmup_steps": "auto",
    }  # fmt: skip
    env = {
        **os.environ, "URL": postgres_urls.socket, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
    }  # fmt: skip
    study = "dsdpg-script"
    command = [
        "bash", str(script), "Pendulum-v1", study, "10", json.dumps(baseline), "--n-trials", str(N_TRIALS),
        "--sampler", "random", "--pruner", "none", "-n", "300", "--n-evaluations", "1", "--eval-episodes", "1",
        "-params", "learning_starts:200", "buffer_size:1000",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    logs = "".join(path.read_text() for path in sorted((tmp_path / "runs" / "tune" / study).glob("worker*.log")))
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}\n{logs[-4000:]}"
    trials = optuna.load_study(storage=postgres_urls.tcp, study_name=study).get_trials(deepcopy=False)
    assert sorted(trial.number for trial in trials) == list(range(2 * N_TRIALS))
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials), logs[-4000:]
    assert trials[0].params == baseline
    exported = (tmp_path / "runs" / "tune" / study / "trials.csv").read_text().splitlines()
    assert len(exported) == 1 + 2 * N_TRIALS and exported[0].startswith(",number,value")
