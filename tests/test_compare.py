"""Tests of ``python -m sb3_dsdpg.compare`` through its real entry point (subprocesses, one torch thread; marked
``subprocess``, run with ``-m subprocess``).

This module owns the checks of the comparison sweep: a tiny sweep (DSDPG and TD3 on the point mass, 2 seeds, 200 steps,
tiny networks) that is killed after its first run, resumed, and rerun (no new run), with every report file; the same
sweep on a local Ray instance started here; a one-run sweep of a DSDPG variant (``mage``), reused when rerun; and bad
input refused before any run. Without training: the matched and zoo protocols (the composed ``-params`` parsed back),
the protocol in the resume key, the report's settings table and paired per-seed results from fake finished runs with
known returns, the DSDPG variants (command, folder, ``--algo-params``, resume key, unknown names), env specs that
differ only by kwargs, and the ``noise-sweep`` and ``toy-bonus-sweep`` suites.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import wait_until

from sb3_dsdpg.tools.compare import runs as runs_module
from sb3_dsdpg.tools.compare import sweep as sweep_module
from sb3_dsdpg.tools.compare.runs import MARKER, SCALAR_SHARED_KEYS, Run

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TINY = [
    "--algos", "dsdpg", "td3",
    "--envs", "sb3_dsdpg/PointMassBonus-v0:n_bonus=2",
    "--seeds", "0", "1",
    "--timesteps", "200", "--eval-freq", "100", "--eval-episodes", "1",
    "--params", "learning_starts:100", "batch_size:32", 'policy_kwargs:"dict(net_arch=[8])"',
    "--algo-params", 'dsdpg:world_model_kwargs:"dict(encoder_arch=[8], decoder_arch=[8], prior_arch=[8], latent_dim=2)"',
    "dsdpg:n_samples:4",
    "--no-update-cost",
]  # fmt: skip
RUN_NAMES = {f"{algo}__sb3_dsdpg-PointMassBonus-v0-n_bonus=2__seed{seed}" for algo in ("dsdpg", "td3") for seed in (0, 1)}
REPORT_FILES = [
    "results.md",
    "results.csv",
    "runs.csv",
    "aggregate.png",
    "performance_profile.png",
    "curves.png",
    "curves_sb3_dsdpg-PointMassBonus-v0-n_bonus=2.png",
    "random_scores.json",
    "aggregate.json",
    "paired.csv",
]


def compare(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sb3_dsdpg.compare", *args], env=ENV, capture_output=True, text=True, timeout=timeout
    )


def markers(out: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in (out / "logs").glob(f"*/{MARKER}")}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check_report(out: Path) -> None:
    report = out / "report"
    for name in REPORT_FILES:
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    rows = read_csv(report / "results.csv")
    assert {(row["algo"], row["env"]) for row in rows} == {
        ("dsdpg", "sb3_dsdpg/PointMassBonus-v0(n_bonus=2)"),
        ("td3", "sb3_dsdpg/PointMassBonus-v0(n_bonus=2)"),
    }
    for row in rows:
        assert row["n_seeds"] == "2" and row["timesteps"] == "200"
        for key in ("final_mean", "final_std", "final_iqm", "steps_per_s", "wall_time_s_mean"):
            assert float(row[key]) == float(row[key]), key  # not nan
    runs = read_csv(report / "runs.csv")
    assert {f"{row['algo']}__sb3_dsdpg-PointMassBonus-v0-n_bonus=2__seed{row['seed']}" for row in runs} == RUN_NAMES
    text = (report / "results.md").read_text()
    assert "| sb3_dsdpg/PointMassBonus-v0(n_bonus=2) | dsdpg | 200 | 2 |" in text
    assert "IQM [95% CI]" in text and "random policy" in text
    aggregate = json.loads((report / "aggregate.json").read_text())
    assert set(aggregate["aggregates"]) == {"dsdpg", "td3"}
    # --envs: the matched protocol, the settings read from the runs' config.yml, both seeds paired.
    assert "**Protocol: matched.**" in text
    row = "| sb3_dsdpg/PointMassBonus-v0(n_bonus=2) | td3 | 0.001 | 32 | 0.98 | 0.005 | 200000 | 100 | [8] | normal 0.1 |"
    assert row in text
    assert "config.yml (2 runs)" in text and "On every env the shared settings are the same" in text
    assert "DSDPG ahead of td3 on " in text and " of 2 seeds" in text
    assert len(read_csv(report / "paired.csv")) == 2
    assert {marker["config"]["protocol"] for marker in markers(out).values()} == {"matched"}


@pytest.mark.subprocess
def test_sweep_interrupted_resumed_and_rerun(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    # Interrupt: kill the whole sweep (and its training) once the first run has finished.
    process = subprocess.Popen(
        [sys.executable, "-m", "sb3_dsdpg.compare", *TINY, "--out", str(out), "--jobs", "1"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def second_run_started() -> bool:
        assert process.poll() is None, "the sweep exited before it could be interrupted"
        finished = markers(out)
        return bool(finished) and any(
            (folder / "train.log").is_file() for folder in (out / "logs").iterdir() if folder.name not in finished
        )

    # The first run's marker is written, and the next run's folder has its train.log (its training is launched).
    try:
        wait_until(second_run_started, timeout=400, what="the first run has finished and the second one has started")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    first = markers(out)
    assert 1 <= len(first) < len(RUN_NAMES), "the sweep should have been killed after its first run"
    assert not (out / "report" / "results.md").exists()
    half_written = [path.name for path in (out / "logs").iterdir() if path.name not in first]
    assert half_written, "the killed run left a folder without marker"

    # Resume: the finished run is kept, the half-written one is redone, the rest run.
    resumed = compare(*TINY, "--out", str(out), "--jobs", "2")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(first)} already finished" in resumed.stdout
    done = markers(out)
    assert set(done) == RUN_NAMES
    for name, marker in first.items():
        assert done[name]["finished"] == marker["finished"]
    check_report(out)

    # Rerun: nothing to do, no run launched.
    rerun = compare(*TINY, "--out", str(out))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "4 already finished" in rerun.stdout and "0 to run" in rerun.stdout
    assert markers(out) == done
    check_report(out)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.subprocess
def test_ray_backend_same_runs(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'sb3_dsdpg[distributed]'")
    ray_cli = Path(sys.executable).with_name("ray")
    port = _free_port()
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def head_accepts_connections() -> bool:
            assert head.poll() is None, "ray start --head exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_until(head_accepts_connections, timeout=120, what=f"the Ray head listens on port {port}", interval=1.0)
        out = tmp_path / "ray-sweep"
        result = compare(*TINY, "--out", str(out), "--backend", "ray", "--ray-address", f"127.0.0.1:{port}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert set(markers(out)) == RUN_NAMES
        check_report(out)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algos", "dsdpg", "nosuchalgo"], "unknown algorithm 'nosuchalgo'"),
        (["--envs", "sb3_dsdpg/Pendulum-NoSuchNoise-v1"], "unknown env ID 'sb3_dsdpg/Pendulum-NoSuchNoise-v1'"),
        (["--envs", "sb3_dsdpg/PointMassBonus-v0:no_such_kwarg=1"], "cannot make sb3_dsdpg/PointMassBonus-v0"),
        (["--backend", "ray", "--ray-address", "127.0.0.1:1"], "unreachable"),
        (["--backend", "ray", "--ray-address", "nonsense"], "bad Ray address"),
    ],
)
def test_bad_input_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    if "--backend" in args:
        pytest.importorskip("ray", reason="Ray is not installed: pip install 'sb3_dsdpg[distributed]'")
    out = tmp_path / "out"
    base = ["--envs", "Pendulum-v1", "--seeds", "0", "--timesteps", "100"]
    with pytest.raises(SystemExit) as exit_info:
        sweep_module.main([*base, *args, "--out", str(out)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (out / "logs").exists()


@pytest.mark.subprocess
def test_bad_input_through_the_entry_point(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    base = ["--envs", "Pendulum-v1", "--seeds", "0", "--timesteps", "100"]
    result = compare(*base, "--out", str(blocker / "out"), timeout=300)
    assert result.returncode == 2
    assert "is not writable" in result.stderr
    result = compare(*base, "--algos", "dsdpg", "td4", "--out", str(tmp_path / "out"), timeout=300)
    assert result.returncode == 2
    assert "unknown algorithm 'td4'" in result.stderr and "td3" in result.stderr
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------------------------
# Protocols (no training)
# ----------------------------------------------------------------------------------------------------------------------


def build(*argv: str) -> list[Run]:
    return sweep_module.build_runs(sweep_module.make_parser().parse_args([*argv, "--out", "unused"]))


def given(run: Run) -> dict[str, Any]:
    """The run's -params parsed back as the zoo does (policy_kwargs evaluated to a dict)."""
    values = {}
    for item in run.params:
        key, text = runs_module.split_param(item)
        values[key] = runs_module.evaluate(text)
    if "policy_kwargs" in values:
        values["policy_kwargs"] = runs_module.as_kwargs(values["policy_kwargs"], "test")
    return values


def shared_of(values: dict[str, Any]) -> dict[str, Any]:
    return {**{key: values.get(key) for key in SCALAR_SHARED_KEYS}, "net_arch": values["policy_kwargs"]["net_arch"]}


def by_env_algo(runs: list[Run]) -> dict[tuple[str, str], Run]:
    return {(run.env.label, run.algo): run for run in runs}


def test_matched_protocol_gives_every_algorithm_the_same_shared_values() -> None:
    runs = build("--envs", "Pendulum-v1", "sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5", "MountainCarContinuous-v0",
                 "-n", "1000")  # fmt: skip
    assert {run.protocol for run in runs} == {"matched"}
    table = by_env_algo(runs)
    # Without a suite: DSDPG's zoo entry of the env, its constructor defaults where the entry is silent.
    expected = {
        "Pendulum-v1": dict(learning_rate=1e-3, batch_size=128, gamma=0.98, tau=0.005, buffer_size=200_000,
                            learning_starts=1000, train_freq=1, gradient_steps=1, net_arch=[64, 64]),
        # The tuned entry (dsdpg.yml): 2 updates per step, which TD3 and TQC then get as well.
        "sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5": dict(learning_rate=1.11e-3, batch_size=256, gamma=0.99, tau=0.0142,
                                                             buffer_size=1_000_000, learning_starts=1000, train_freq=1,
                                                             gradient_steps=2, net_arch=[64, 64]),
        "MountainCarContinuous-v0": dict(learning_rate=3e-4, batch_size=256, gamma=0.99, tau=0.005, buffer_size=1_000_000,
                                         learning_starts=1000, train_freq=1, gradient_steps=1, net_arch=[256, 256]),
    }  # fmt: skip
    for env, values in expected.items():
        for algo in ("dsdpg", "td3", "tqc"):
            assert shared_of(given(table[env, algo])) == values, (env, algo)
        for algo in ("dsdpg", "td3"):
            if env == "sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5":  # the tuned entry explores without noise: so does TD3
                assert given(table[env, algo]).get("noise_type") is None and "noise_std" not in given(table[env, algo])
            else:
                assert given(table[env, algo])["noise_type"] == "normal" and given(table[env, algo])["noise_std"] == 0.1
        assert "noise_type" not in given(table[env, "tqc"]) and "noise_std" not in given(table[env, "tqc"])
    # TD3's zoo entry for MountainCar (rl-zoo3's file) has Ornstein-Uhlenbeck noise 0.5: replaced by the shared one.
    assert runs_module.zoo_entry("td3", "MountainCarContinuous-v0")[2]["noise_type"] == "ornstein-uhlenbeck"
    # TQC's rl-zoo3 MountainCar entry keeps its other policy_kwargs (and its own use_sde, ent_coef) under the matched
    # net_arch, and the zoo accepts the composed values.
    tqc = table["MountainCarContinuous-v0", "tqc"]
    assert given(tqc)["policy_kwargs"] == {"log_std_init": -3.67, "net_arch": [256, 256], "use_expln": True}
    from sb3_dsdpg.tools import zoo

    resolved = runs_module.resolved_hyperparams(tqc)
    assert resolved["use_sde"] is True and resolved["ent_coef"] == 0.1 and resolved["batch_size"] == 256
    zoo.check_hyperparams("tqc", resolved, "test")


def test_cpu_small_suite_matched_values() -> None:
    runs = build("--suite", "cpu-small")
    assert len(runs) == 5 * 5 * 3 and sorted({run.seed for run in runs}) == [0, 1, 2, 3, 4]
    assert {run.protocol for run in runs} == {"matched"}
    shared = dict(learning_rate=1e-3, batch_size=128, gamma=0.98, tau=0.005, buffer_size=200_000, learning_starts=500,
                  train_freq=1, gradient_steps=1, net_arch=[64, 64])  # fmt: skip
    for run in runs:
        values = given(run)
        assert shared_of(values) == shared, run.name
        if run.algo in ("tqc", "sac"):  # stochastic actors: no action noise
            assert "noise_type" not in values
        else:
            assert (values["noise_type"], values["noise_std"]) == ("normal", 0.1)
        wm = "dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])"
        assert values.get("world_model_kwargs") == (wm if run.algo == "dsdpg" else None)
    budgets = {run.env.label: run.timesteps for run in runs}
    assert budgets["Pendulum-v1"] == 6000 and budgets["sb3_dsdpg/PointMassBonus-v0(n_bonus=4)"] == 5000


def test_stochastic_policy_gets_no_noise_and_keeps_its_policy_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A TQC entry with a noise and policy_kwargs beyond net_arch (the shipped ones have neither).
    conf = tmp_path / "tqc.yml"
    conf.write_text(
        "Pendulum-v1:\n  policy: MlpPolicy\n  learning_rate: !!float 3e-4\n  gamma: 0.99\n  noise_type: normal\n"
        "  noise_std: 0.3\n  top_quantiles_to_drop_per_net: 3\n"
        '  policy_kwargs: "dict(n_quantiles=10, net_arch=[400, 300], log_std_init=-2)"\n'
    )
    original = runs_module.zoo_config_file
    monkeypatch.setattr(
        runs_module, "zoo_config_file", lambda algo, env_id: str(conf) if algo == "tqc" else original(algo, env_id)
    )
    table = by_env_algo(build("--envs", "Pendulum-v1", "-n", "1000"))
    tqc = given(table["Pendulum-v1", "tqc"])
    assert tqc["noise_type"] is None and "noise_std" not in tqc  # the entry's noise switched off
    assert tqc["policy_kwargs"] == {"n_quantiles": 10, "net_arch": [64, 64], "log_std_init": -2}
    assert "top_quantiles_to_drop_per_net" not in tqc  # algorithm-specific: stays as in the entry
    resolved = runs_module.resolved_hyperparams(table["Pendulum-v1", "tqc"])
    assert resolved["top_quantiles_to_drop_per_net"] == 3 and resolved["noise_type"] is None
    assert shared_of(tqc) == shared_of(given(table["Pendulum-v1", "td3"])) == shared_of(given(table["Pendulum-v1", "dsdpg"]))
    from sb3_dsdpg.tools import zoo

    zoo.check_hyperparams("tqc", resolved, "test")


def test_user_params_win_over_the_matched_values() -> None:
    runs = build("--envs", "Pendulum-v1", "-n", "1000", "--algos", "dsdpg", "td3", "tqc", "sac",
                 "--params", "learning_rate:5e-4", "noise_std:0.3", 'policy_kwargs:"dict(net_arch=[32, 32])"',
                 "--algo-params", "td3:batch_size:64", "tqc:top_quantiles_to_drop_per_net:5")  # fmt: skip
    table = by_env_algo(runs)
    for algo in ("dsdpg", "td3", "tqc", "sac"):
        values = given(table["Pendulum-v1", algo])
        assert values["learning_rate"] == 5e-4 and values["policy_kwargs"]["net_arch"] == [32, 32], algo
        assert values["batch_size"] == (64 if algo == "td3" else 128), algo
        assert values["gamma"] == 0.98
    assert given(table["Pendulum-v1", "td3"])["noise_std"] == 0.3
    assert given(table["Pendulum-v1", "dsdpg"])["noise_std"] == 0.3
    for algo in ("tqc", "sac"):  # --params noise reaches deterministic actors only
        assert "noise_std" not in given(table["Pendulum-v1", algo]) and "noise_type" not in given(table["Pendulum-v1", algo])
    assert given(table["Pendulum-v1", "tqc"])["top_quantiles_to_drop_per_net"] == 5
    # The suite's algorithm-specific world model stays under the matched protocol, on top go the user's values.
    dsdpg = given(by_env_algo(build("--suite", "cpu-small", "--params", "gamma:0.95"))["Pendulum-v1", "dsdpg"])
    assert dsdpg["gamma"] == 0.95 and "world_model_kwargs" in dsdpg and dsdpg["learning_starts"] == 500
    with pytest.raises(runs_module.CompareError, match="use --protocol zoo"):
        build("--envs", "Pendulum-v1", "-n", "1000", "--algos", "dsdpg", "ppo")


def test_zoo_protocol_reproduces_the_previous_params() -> None:
    wm = 'world_model_kwargs:"dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])"'
    common = ("learning_starts:500", 'policy_kwargs:"dict(net_arch=[64, 64])"')
    for run in build("--suite", "cpu-small", "--protocol", "zoo"):
        assert run.protocol == "zoo"
        assert run.params == ((*common, wm) if run.algo == "dsdpg" else common)
    paper = build("--suite", "paper")
    assert {run.protocol for run in paper} == {"zoo"} and {run.params for run in paper} == {()}
    # Without a suite, --params for all and --algo-params for one, as before.
    for run in build("--envs", "Pendulum-v1", "-n", "1000", "--protocol", "zoo", "--params", "batch_size:32",
                     "--algo-params", "dsdpg:n_samples:4"):  # fmt: skip
        assert run.params == (("batch_size:32", "n_samples:4") if run.algo == "dsdpg" else ("batch_size:32",))
    # --params instead of the suite's (and no suite algo_params), as before.
    for run in build("--suite", "cpu-small", "--protocol", "zoo", "--params", "gamma:0.9"):
        assert run.params == ("gamma:0.9",)


def test_protocol_is_part_of_the_resume_key(tmp_path: Path) -> None:
    argv = ("--envs", "Pendulum-v1", "-n", "1000", "--seeds", "0", "--algos", "td3")
    (matched,), (zoo_run,) = build(*argv), build(*argv, "--protocol", "zoo")
    assert matched.name == zoo_run.name and matched.config() != zoo_run.config()
    assert matched.config()["protocol"] == "matched" and zoo_run.config()["protocol"] == "zoo"
    folder = matched.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(json.dumps({"config": zoo_run.config()}))
    assert runs_module.read_marker(zoo_run, tmp_path) is not None
    assert runs_module.read_marker(matched, tmp_path) is None  # a finished zoo-protocol run is redone
    # A marker written before --protocol existed (no "protocol" key) was a zoo-protocol run.
    old = {key: value for key, value in zoo_run.config().items() if key != "protocol"}
    (folder / MARKER).write_text(json.dumps({"config": old}))
    assert runs_module.read_marker(zoo_run, tmp_path) is not None
    assert runs_module.read_marker(matched, tmp_path) is None


# ----------------------------------------------------------------------------------------------------------------------
# Report from fake finished runs (no training)
# ----------------------------------------------------------------------------------------------------------------------

PENDULUM = "Pendulum-v1"
POINT_MASS = "sb3_dsdpg/PointMassBonus-v0(n_bonus=2)"
# Final returns per (env, algo, seed); td3 never finished seed 3 on Pendulum.
FINALS = {
    (PENDULUM, "dsdpg"): {0: -100.0, 1: -150.0, 2: -200.0, 3: -120.0},
    (PENDULUM, "td3"): {0: -110.0, 1: -140.0, 2: -260.0},
    (PENDULUM, "tqc"): {0: -90.0, 1: -100.0, 2: -150.0, 3: -130.0},
    (POINT_MASS, "dsdpg"): {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0},
    (POINT_MASS, "td3"): {0: 1.0, 1: 1.0, 2: 5.0, 3: 1.5},
    (POINT_MASS, "tqc"): {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0},
}


def fake_finished(out: Path, run: Run, final: float, config: dict[str, Any] | None) -> None:
    """What a finished run leaves: the zoo's evaluations.npz (and config.yml), and the completion marker."""
    folder = run.folder(out)
    env_name = run.env.env_id.replace("/", "-")
    eval_dir = folder / run.algo / f"{env_name}_1"
    eval_dir.mkdir(parents=True)
    np.savez(
        eval_dir / "evaluations.npz",
        timesteps=np.array([100, 200]),
        results=np.array([[final - 5.0, final - 5.0], [final - 1.0, final + 1.0]]),
        ep_lengths=np.array([[50, 50], [50, 50]]),
    )
    if config is not None:
        (eval_dir / env_name).mkdir()
        with open(eval_dir / env_name / "config.yml", "w") as handle:
            yaml.dump(OrderedDict(sorted(config.items())), handle)  # as the zoo writes it
    marker = {
        "config": run.config(),
        "name": run.name,
        "returncode": 0,
        "wall_time_s": 10.0,
        "steps_per_s": 20.0,
        "host": "test",
        "evaluations": str((eval_dir / "evaluations.npz").relative_to(folder)),
    }
    (folder / MARKER).write_text(json.dumps(marker))


def test_paired_report_from_fake_runs(tmp_path: Path) -> None:
    from sb3_dsdpg.tools.compare import report as report_module

    argv = ["--envs", "Pendulum-v1", "sb3_dsdpg/PointMassBonus-v0:n_bonus=2", "--seeds", "0", "1", "2", "3", "-n", "200"]
    runs = build(*argv)
    out = tmp_path / "sweep"
    for run in runs:
        final = FINALS[run.env.label, run.algo].get(run.seed)
        if final is not None:  # td3 leaves config.yml out: its settings come from its zoo entry and -params
            config = None if run.algo == "td3" else runs_module.resolved_hyperparams(run)
            fake_finished(out, run, final, config)
    (out / "report").mkdir(parents=True)
    (out / "report" / "random_scores.json").write_text(json.dumps({PENDULUM: -1200.0, POINT_MASS: -0.2}))
    report_module.write_report(out, runs, argv, update_cost=False)
    report = out / "report"

    paired = read_csv(report / "paired.csv")
    rows = {(row["env"], int(row["seed"])): row for row in paired}
    assert set(rows) == {(PENDULUM, 0), (PENDULUM, 1), (PENDULUM, 2)} | {(POINT_MASS, seed) for seed in range(4)}
    assert [float(rows[PENDULUM, seed]["dsdpg_minus_td3"]) for seed in range(3)] == [10.0, -10.0, 60.0]
    assert [float(rows[PENDULUM, seed]["dsdpg_minus_tqc"]) for seed in range(3)] == [-10.0, -50.0, -50.0]
    assert float(rows[POINT_MASS, 3]["final_td3"]) == 1.5
    assert [float(rows[POINT_MASS, seed]["dsdpg_minus_td3"]) for seed in range(4)] == [0.0, 1.0, -2.0, 2.5]

    text = (report / "results.md").read_text()
    assert "**Protocol: matched.**" in text
    assert "- DSDPG ahead of td3 on 2 of 3 seeds, mean difference +20.0" in text
    assert "- DSDPG ahead of tqc on 0 of 3 seeds, mean difference -36.7" in text
    assert "- Not paired (not finished by every algorithm): seed 3 (td3 missing)" in text
    assert "- DSDPG ahead of td3 on 2 of 4 seeds (1 tied), mean difference +0.4" in text
    assert "- DSDPG ahead of tqc on 4 of 4 seeds, mean difference +2.5" in text
    assert "| 2 | -200.0 | -260.0 | -150.0 | +60.0 | -50.0 |" in text
    # Settings: from config.yml where the run wrote one, else from the zoo entry and -params; the same shared values.
    assert f"| {PENDULUM} | dsdpg | 0.001 | 128 | 0.98 | 0.005 | 200000 | 1000 | [64, 64] | normal 0.1 | 1 | 1 |" in text
    assert f"| {PENDULUM} | tqc | 0.001 | 128 | 0.98 | 0.005 | 200000 | 1000 | [64, 64] | none (entropy) | 1 | 1 |" in text
    assert "config.yml (4 runs)" in text and "zoo entry + -params (no config.yml)" in text
    assert "On every env the shared settings are the same for every algorithm (action noise compared" in text
    # Everything else of the report is still there.
    for name in ("results.csv", "runs.csv", "aggregate.json", "curves.png", "aggregate.png"):
        assert (report / name).is_file(), name
    assert "## Final return per algorithm and env" in text and "## Aggregate over envs (rliable)" in text


# ----------------------------------------------------------------------------------------------------------------------
# DSDPG variants, env kwargs and the variant suites (no training)
# ----------------------------------------------------------------------------------------------------------------------

OLD_DEFAULTS = (
    "loss:'msmmd'",
    "unbiased_mmd:False",
    "reward_fn:None",
    "hybrid_latent:'standard'",
    "actor_mean:'per_row'",
    "reward_scale:'auto'",
)
VARIANTS = {
    "dsdpg-mmd": ("loss:'mmd'",),
    "dsdpg-msmmd": ("loss:'msmmd'",),
    "mage": ("distributional:False",),
    "dsdpg-returns": ("sobolev:False",),
    "dsdpg-known-reward": ("reward_fn:'known'",),
    "dsdpg-gw0": ("gradient_weight:0.0",),
    "dsdpg-gw0-untrained-models": (
        "gradient_weight:0.0",
        "reward_fn:None",
        "world_model_gradient_steps:0",
        "world_model_warmup_steps:0",
    ),
    "dsdpg-auto-scale": ("reward_scale:'auto'",),
    "dsdpg-per-row-mean": ("actor_mean:'per_row'",),
    "dsdpg-2026-12-07": OLD_DEFAULTS,
}
POINT_MASS_4 = "sb3_dsdpg/PointMassBonus-v0:n_bonus=4"
IDP_DYN = "sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5"
IDP_OBS = "sb3_dsdpg/InvertedDoublePendulum-ObsNoise-v5"
SMALL_WM = "dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])"


def given_all(run: Run) -> dict[str, Any]:
    """The run's whole -params (a variant's included) parsed back as the zoo does."""
    return given(dataclasses.replace(run, params=run.zoo_params))


def test_variant_runs_dsdpg_with_its_params_last() -> None:
    assert {label: params for label, (_, params) in runs_module.ALGO_VARIANTS.items()} == VARIANTS
    assert not set(runs_module.ALGO_VARIANTS) & set(sweep_module.known_algos())  # no label hides a zoo algorithm
    runs = build("--algos", "dsdpg", *VARIANTS, "td3", "tqc", "--envs", POINT_MASS_4, "--seeds", "0", "-n", "10000")
    table = {run.algo: run for run in runs}
    assert list(table) == ["dsdpg", *VARIANTS, "td3", "tqc"]
    out = Path("sweep")
    dsdpg = table["dsdpg"]
    for label, params in VARIANTS.items():
        run = table[label]
        assert run.name == f"{label}__sb3_dsdpg-PointMassBonus-v0-n_bonus=4__seed0"
        assert run.folder(out) == out / "logs" / run.name
        command = run.command(out)
        assert command[command.index("--algo") + 1] == "dsdpg" and run.zoo_algo == "dsdpg"
        # The matched protocol's -params of DSDPG (a deterministic actor: the shared noise), then the variant's, last.
        assert run.params == dsdpg.params and run.zoo_params == (*dsdpg.params, *params)
        assert command[command.index("-params") + 1 :] == list(run.zoo_params)
        values = given_all(run)
        assert (values["noise_type"], values["noise_std"]) == ("normal", 0.1)
        assert shared_of(values) == shared_of(given(dsdpg)) == shared_of(given(table["tqc"]))
        resolved = runs_module.resolved_hyperparams(run)
        from sb3_dsdpg.tools import zoo

        zoo.check_hyperparams("dsdpg", resolved, "test")
    assert given_all(table["dsdpg-mmd"])["loss"] == "mmd"
    assert given_all(table["dsdpg-msmmd"])["loss"] == "msmmd"
    old = given_all(table["dsdpg-2026-12-07"])  # the defaults before 2026-12-08
    assert {key: old[key] for key in ("loss", "unbiased_mmd", "reward_fn", "hybrid_latent", "actor_mean", "reward_scale")} == {
        "loss": "msmmd",
        "unbiased_mmd": False,
        "reward_fn": None,
        "hybrid_latent": "standard",
        "actor_mean": "per_row",
        "reward_scale": "auto",
    }
    assert given_all(table["mage"])["distributional"] is False
    assert given_all(table["dsdpg-returns"])["sobolev"] is False
    assert dsdpg.zoo_params == dsdpg.params and dsdpg.command(out)[dsdpg.command(out).index("--algo") + 1] == "dsdpg"
    # The zoo protocol: the sweep's -params, then the variant's.
    (mage,) = build("--algos", "mage", "--envs", POINT_MASS_4, "--seeds", "0", "-n", "1000", "--protocol", "zoo",
                    "--params", "batch_size:32")  # fmt: skip
    assert mage.zoo_params == ("batch_size:32", "distributional:False")


def test_algo_params_of_a_variant_name_it() -> None:
    argv = ("--envs", POINT_MASS_4, "--seeds", "0", "-n", "1000", "--algos", "dsdpg", "mage", "td3")
    table = {run.algo: run for run in build(*argv, "--algo-params", "dsdpg:n_samples:4", "mage:kernel_bandwidth:50.0")}
    dsdpg, mage = given_all(table["dsdpg"]), given_all(table["mage"])
    assert dsdpg["n_samples"] == 4 and "kernel_bandwidth" not in dsdpg
    # dsdpg's --algo-params do not reach the variant (a note says so); its own do, before its definition.
    assert mage["kernel_bandwidth"] == 50.0 and "n_samples" not in mage
    assert table["mage"].zoo_params[-2:] == ("kernel_bandwidth:50.0", "distributional:False")
    args = sweep_module.make_parser().parse_args([*argv, "--algo-params", "dsdpg:n_samples:4", "--out", "unused"])
    (note,) = sweep_module.unshared_algo_params(args)
    assert "do not reach its variant mage (n_samples)" in note and "mage:KEY:VALUE" in note
    args = sweep_module.make_parser().parse_args(
        [*argv, "--algo-params", "dsdpg:n_samples:4", "mage:n_samples:4", "--out", "unused"]
    )
    assert sweep_module.unshared_algo_params(args) == []
    # A variant's definition cannot be overridden; --algo-params of a label that does not run are refused as before.
    with pytest.raises(runs_module.CompareError, match="sets what the variant 'mage' is defined by"):
        build(*argv, "--algo-params", "mage:distributional:True")
    with pytest.raises(runs_module.CompareError, match="not among --algos"):
        build(*argv, "--algo-params", "dsdpg-mmd:n_samples:4")


def test_variant_params_are_part_of_the_resume_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ("--envs", POINT_MASS_4, "--seeds", "0", "-n", "1000")
    table = {run.algo: run for run in build(*argv, "--algos", "dsdpg", *VARIANTS)}
    configs = {label: run.config() for label, run in table.items()}
    assert "zoo_algo" not in configs["dsdpg"]  # a plain algorithm's key is as before the variants
    for label, params in VARIANTS.items():
        assert configs[label]["zoo_algo"] == "dsdpg" and configs[label]["algo"] == label
        assert configs[label]["params"][-len(params) :] == list(params)
    assert len({json.dumps(config, sort_keys=True) for config in configs.values()}) == len(configs)
    mage = table["mage"]
    folder = mage.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(json.dumps({"config": configs["mage"]}))
    assert runs_module.read_marker(mage, tmp_path) is not None
    for other in ("dsdpg", "dsdpg-mmd"):  # a finished run of another variant (or of DSDPG) is not this one
        (folder / MARKER).write_text(json.dumps({"config": {**configs[other], "algo": "mage"}}))
        assert runs_module.read_marker(mage, tmp_path) is None
    # A variant whose definition changed is redone.
    (folder / MARKER).write_text(json.dumps({"config": configs["mage"]}))
    monkeypatch.setitem(runs_module.ALGO_VARIANTS, "mage", ("dsdpg", ("distributional:False", "n_samples:1")))
    assert runs_module.read_marker(mage, tmp_path) is None


def test_unknown_algorithm_or_variant_names_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(runs_module.CompareError) as error:
        build("--envs", "Pendulum-v1", "-n", "100", "--algos", "dsdpg", "magee")
    message = str(error.value)
    assert "unknown algorithm 'magee'" in message
    assert "td3" in message and "tqc" in message
    variants = (
        "dsdpg-mmd, dsdpg-msmmd, mage, dsdpg-returns, dsdpg-known-reward, dsdpg-gw0, dsdpg-gw0-untrained-models, "
        "dsdpg-auto-scale, "
        "dsdpg-per-row-mean, dsdpg-2026-12-07"
    )
    assert f"a DSDPG variant: {variants}" in message
    with pytest.raises(SystemExit) as exit_info:
        sweep_module.main(["--envs", "Pendulum-v1", "-n", "100", "--algos", "dsdpg-sliced", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "unknown algorithm 'dsdpg-sliced'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_env_kwargs_distinguish_runs_and_report_rows(tmp_path: Path) -> None:
    from sb3_dsdpg.tools.compare import report as report_module

    envs = [IDP_DYN, f"{IDP_DYN}:sigma=0.2", f"{IDP_OBS}:low=0.8,high=1.2", f"{IDP_OBS}:low=0.6,high=1.4"]
    argv = ["--algos", "dsdpg", "mage", "--envs", *envs, "--seeds", "0", "1", "-n", "200"]
    runs = build(*argv)
    specs = list(dict.fromkeys(run.env for run in runs))
    assert len(specs) == 4
    assert len({spec.slug for spec in specs}) == len({spec.label for spec in specs}) == 4
    assert [spec.label for spec in specs] == [
        IDP_DYN,
        f"{IDP_DYN}(sigma=0.2)",
        f"{IDP_OBS}(low=0.8,high=1.2)",
        f"{IDP_OBS}(low=0.6,high=1.4)",
    ]
    assert len({run.name for run in runs}) == len(runs) == 16
    sigma = next(run for run in runs if run.env.kwargs == (("sigma", 0.2),) and run.algo == "mage")
    command = sigma.command(tmp_path)
    assert command[command.index("--env-kwargs") + 1] == "sigma:0.2"
    assert sigma.name == "mage__sb3_dsdpg-InvertedDoublePendulum-DynNoise-v5-sigma=0.2__seed0"
    assert sigma.config()["env_kwargs"] == {"sigma": 0.2}
    # The report: one row per (algo, env spec), its own curves, DSDPG paired with the variant.
    out = tmp_path / "sweep"
    finals = {spec: 100.0 * (index + 1) for index, spec in enumerate(specs)}
    for run in runs:
        final = finals[run.env] + (10.0 if run.algo == "dsdpg" else 0.0) + run.seed
        fake_finished(out, run, final, runs_module.resolved_hyperparams(run) if run.seed == 0 else None)
    (out / "report").mkdir(parents=True)
    (out / "report" / "random_scores.json").write_text(json.dumps({spec.label: 0.0 for spec in specs}))
    report_module.write_report(out, runs, argv, update_cost=False)
    report = out / "report"
    rows = read_csv(report / "results.csv")
    assert {(row["algo"], row["env"]) for row in rows} == {(algo, spec.label) for algo in ("dsdpg", "mage") for spec in specs}
    assert {row["env"]: float(row["final_mean"]) for row in rows if row["algo"] == "mage"} == {
        spec.label: finals[spec] + 0.5 for spec in specs
    }
    for spec in specs:
        assert (report / f"curves_{spec.slug}.png").is_file()
    text = (report / "results.md").read_text()
    assert "# DSDPG vs mage" in text and "- DSDPG ahead of mage on 2 of 2 seeds, mean difference +10.0" in text
    mage_row = next(line for line in text.splitlines() if line.startswith(f"| {IDP_OBS}(low=0.6,high=1.4) | mage |"))
    assert "| normal 0.1 |" in mage_row and "distributional=False" in mage_row  # DSDPG's entry, the variant's argument
    assert "On every env the shared settings are the same for every algorithm" in text
    assert len(read_csv(report / "paired.csv")) == 4 * 2


CPU_SMALL_SHARED = dict(learning_rate=1e-3, batch_size=128, gamma=0.98, tau=0.005, buffer_size=200_000,
                        learning_starts=500, train_freq=1, gradient_steps=1, net_arch=[64, 64])  # fmt: skip


def check_variant_suite(name: str, algos: tuple[str, ...], n_envs: int, seeds: tuple[int, ...], budget: int) -> list[Run]:
    """The suite's runs: its algorithms, envs, seeds and budget, the cpu-small settings, the variants' params last."""
    suite = runs_module.SUITES[name]
    cpu_small = runs_module.SUITES["cpu-small"]
    assert suite.algos == algos and suite.seeds == seeds and suite.protocol == "matched"
    assert suite.shared == cpu_small.shared and suite.params == cpu_small.params
    assert set(cpu_small.algo_params) <= set(suite.algo_params)
    runs = build("--suite", name)
    assert len(runs) == n_envs * len(algos) * len(seeds)
    assert list(dict.fromkeys(run.algo for run in runs)) == list(algos)
    assert sorted({run.seed for run in runs}) == list(seeds) and {run.timesteps for run in runs} == {budget}
    assert {run.protocol for run in runs} == {"matched"}
    for run in runs:
        values = given(run)
        assert shared_of(values) == CPU_SMALL_SHARED, run.name
        if run.algo in ("tqc", "sac"):  # stochastic actors: no action noise
            assert "noise_type" not in values
        else:
            assert (values["noise_type"], values["noise_std"]) == ("normal", 0.1), run.name
        assert values.get("world_model_kwargs") == (SMALL_WM if run.zoo_algo == "dsdpg" else None), run.name
        assert run.zoo_params[len(run.params) :] == VARIANTS.get(run.algo, ())
    # --algos still overrides the suite's.
    assert {run.algo for run in build("--suite", name, "--algos", "dsdpg", "td3")} == {"dsdpg", "td3"}
    return runs


def test_noise_sweep_suite() -> None:
    suite = runs_module.SUITES["noise-sweep"]
    assert [(spec.env_id, spec.kwargs, spec.timesteps) for spec in suite.envs] == [
        ("InvertedDoublePendulum-v5", (), 6000),
        (IDP_DYN, (("sigma", 0.1),), 6000),
        (IDP_DYN, (("sigma", 0.2),), 6000),
        (IDP_OBS, (("low", 0.8), ("high", 1.2)), 6000),
        (IDP_OBS, (("low", 0.6), ("high", 1.4)), 6000),
    ]
    assert (suite.eval_freq, suite.eval_episodes) == (1000, 10)
    runs = check_variant_suite("noise-sweep", ("dsdpg", "mage", "dsdpg-returns", "td3", "tqc"), 5, (0, 1, 2), 6000)
    assert {run.eval_freq for run in runs} == {1000} and {run.eval_episodes for run in runs} == {10}
    # Without a suite the default algorithms stay.
    assert {run.algo for run in build("--envs", "Pendulum-v1", "-n", "100")} == {"dsdpg", "td3", "tqc"}


def test_noise_sweep_runs_dsdpg_at_its_defaults_on_every_level() -> None:
    """The tuned DynNoise entry of dsdpg.yml is put back to DSDPG's defaults: DSDPG's own values equal on every level."""
    import inspect

    from torch import nn

    from sb3_dsdpg import DSDPG

    defaults = {name: p.default for name, p in inspect.signature(DSDPG.__init__).parameters.items()}
    runs = [run for run in build("--suite", "noise-sweep", "--seeds", "0") if run.zoo_algo == "dsdpg"]
    own_keys = ("critic_actions", "kernel_bandwidth", "reward_scale", "normalize_samples", "world_model_learning_rate")
    for algo in ("dsdpg", "mage", "dsdpg-returns"):
        mine = [run for run in runs if run.algo == algo]
        tuned = given(next(run for run in mine if run.env.env_id == IDP_DYN))
        assert {key: tuned[key] for key in own_keys} == {key: defaults[key] for key in own_keys}
        assert tuned["policy_kwargs"]["activation_fn"] is nn.ReLU and tuned["policy_kwargs"]["net_arch"] == [64, 64]
        clean = given(next(run for run in mine if run.env.env_id == "InvertedDoublePendulum-v5"))
        assert not set(own_keys) & set(clean)  # nothing to put back on an untuned entry
    # Without the flag (cpu-small), the tuned entry stays; --dsdpg-defaults asks for the same on any sweep.
    cpu_small = [run for run in build("--suite", "cpu-small", "--seeds", "0") if run.algo == "dsdpg"]
    assert "critic_actions" not in given(next(run for run in cpu_small if run.env.env_id == IDP_DYN))
    flagged = [run for run in build("--suite", "cpu-small", "--seeds", "0", "--dsdpg-defaults") if run.algo == "dsdpg"]
    tuned = given(next(run for run in flagged if run.env.env_id == IDP_DYN))
    assert {key: tuned[key] for key in own_keys} == {key: defaults[key] for key in own_keys}
    assert tuned["policy_kwargs"]["activation_fn"] is nn.ReLU and "share_critic_noise" in tuned["policy_kwargs"]
    assert tuned["policy_kwargs"]["share_critic_noise"] is False


def test_noise_sweep_envs_accept_their_kwargs() -> None:
    pytest.importorskip("mujoco", reason="InvertedDoublePendulum needs MuJoCo")
    sweep_module.check_envs(runs_module.SUITES["noise-sweep"].envs)


def test_toy_bonus_sweep_suite() -> None:
    import gymnasium as gym

    import sb3_dsdpg.envs  # noqa: F401  (registers the IDs)

    suite = runs_module.SUITES["toy-bonus-sweep"]
    assert [(spec.env_id, spec.kwargs, spec.timesteps) for spec in suite.envs] == [
        ("sb3_dsdpg/PointMassRevealedBonus-v0", (("n_bonus", n),), 10_000) for n in (1, 2, 4, 8)
    ]
    assert (suite.eval_freq, suite.eval_episodes) == (2000, 20)
    algos = ("dsdpg", "dsdpg-msmmd", "mage", "dsdpg-returns", "td3", "tqc", "sac")
    runs = check_variant_suite("toy-bonus-sweep", algos, 4, (0, 1, 2, 3, 4), 10_000)
    assert {run.eval_freq for run in runs} == {2000} and {run.eval_episodes for run in runs} == {20}
    if "sb3_dsdpg/PointMassRevealedBonus-v0" in gym.registry:  # made only once the env is there
        sweep_module.check_envs(suite.envs)


@pytest.mark.subprocess
def test_variant_sweep_runs_and_is_reused(tmp_path: Path) -> None:
    out = tmp_path / "mage"
    argv = [
        "--algos", "mage", "--envs", "sb3_dsdpg/PointMassBonus-v0:n_bonus=2", "--seeds", "0",
        "--timesteps", "200", "--eval-freq", "100", "--eval-episodes", "1",
        "--params", "learning_starts:100", "batch_size:32", 'policy_kwargs:"dict(net_arch=[8])"',
        "--algo-params", 'mage:world_model_kwargs:"dict(encoder_arch=[8], decoder_arch=[8], prior_arch=[8], latent_dim=2)"',
        "--no-update-cost", "--out", str(out),
    ]  # fmt: skip
    result = compare(*argv)
    assert result.returncode == 0, result.stdout + result.stderr
    name = "mage__sb3_dsdpg-PointMassBonus-v0-n_bonus=2__seed0"
    (marker,) = markers(out).values()
    assert marker["name"] == name and marker["config"]["zoo_algo"] == "dsdpg"
    assert marker["command"][marker["command"].index("--algo") + 1] == "dsdpg"
    assert marker["command"][-1] == "distributional:False"
    config = (out / "logs" / name / marker["evaluations"]).parent / "sb3_dsdpg-PointMassBonus-v0" / "config.yml"
    from sb3_dsdpg.tools.compare import report as report_module

    assert report_module.read_config(config)["distributional"] is False
    rows = read_csv(out / "report" / "results.csv")
    assert [(row["algo"], row["env"], row["n_seeds"]) for row in rows] == [
        ("mage", "sb3_dsdpg/PointMassBonus-v0(n_bonus=2)", "1")
    ]
    rerun = compare(*argv)
    assert rerun.returncode == 0 and "1 already finished" in rerun.stdout and "0 to run" in rerun.stdout
