"""Two ``python -m sb3_dsdpg.train -optimize`` workers share one optuna study on a real PostgreSQL server (the
``postgres_urls`` fixture of conftest.py, tests/postgres.py): one connects through the server's unix socket, as a
worker on the database's machine does, the other over TCP with a password, as a worker on another machine does. The
study ends with the trials of both, none lost, none counted twice, none left running, and its best parameters are
readable from the database; a wrong password is refused. Marked ``subprocess``.

The study is created first (``optuna create-study``): two workers that start at once on an empty database both create
optuna's tables, and one of them fails (``duplicate key value violates unique constraint "pg_type_typname_nsp_index"``
on ``CREATE TYPE studydirection``), which this test met without that step."""

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
