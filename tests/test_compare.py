"""Tests of ``python -m sb3_dsdpg.compare`` through its real entry point (subprocesses, one torch thread).

This module owns the checks of the comparison sweep: a tiny sweep (DSDPG and TD3 on the point mass, 2 seeds, 200 steps,
tiny networks) that is killed after its first run, resumed, and rerun (no new run), with every report file; the same
sweep on a local Ray instance started here; and bad input refused before any run.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sb3_dsdpg.compare import MARKER

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
    deadline = time.time() + 400
    while not markers(out) and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
    time.sleep(3)  # the second run has started
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
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
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
    from sb3_dsdpg import compare as compare_module

    if "--backend" in args:
        pytest.importorskip("ray", reason="Ray is not installed: pip install 'sb3_dsdpg[distributed]'")
    out = tmp_path / "out"
    base = ["--envs", "Pendulum-v1", "--seeds", "0", "--timesteps", "100"]
    with pytest.raises(SystemExit) as exit_info:
        compare_module.main([*base, *args, "--out", str(out)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (out / "logs").exists()


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
