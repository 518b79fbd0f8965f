"""``python -m sb3_dsdpg.compare``: one command that compares DSDPG with TD3 and TQC on the same tasks.

This module owns the sweep: it expands ``--algos x --envs x --seeds`` (or a named ``--suite``) into runs, checks the
input before anything starts (algorithms, env IDs and kwargs, the output folder, Ray), runs every run as an ordinary
zoo training (``python -m sb3_dsdpg.train ... --num-threads 1``, one subprocess per run) locally with ``--jobs K``
workers or as one-CPU Ray tasks on a running cluster (``--backend ray``), skips the runs that already finished in
``--out`` (a run is finished once its completion marker ``compare_run.json`` is written, which happens only after the
training exited cleanly), and then writes the report with :mod:`sb3_dsdpg.compare_report`.

Layout of ``--out DIR``::

    DIR/logs/<algo>__<env-slug>__seed<S>/          # the zoo's -f folder of one run (train.log, compare_run.json)
        <algo>/<EnvName>_1/evaluations.npz        # the zoo's own logs, model and periodic deterministic evaluations
    DIR/report/                                   # results.md, results.csv, runs.csv, curves_*.png, aggregate.png, ...

Fairness: every algorithm of an env gets the same env ID and kwargs, the same budget ``-n``, the same evaluation
protocol (``--eval-freq``, ``--eval-episodes``, ``--n-eval-envs``, deterministic actions) and the same seeds; the
suite's ``-params`` overrides (e.g. ``learning_starts``) are applied to all algorithms alike.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MARKER = "compare_run.json"
DEFAULT_ALGOS = ("dsdpg", "td3", "tqc")
PAPER_BASES = ("Ant", "HalfCheetah", "Hopper", "Walker2d", "Humanoid", "InvertedDoublePendulum")


class CompareError(ValueError):
    """Bad input of a comparison, found before any run starts."""


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """An env ID with its make-kwargs and its budget in env steps."""

    env_id: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    timesteps: int | None = None

    @property
    def slug(self) -> str:
        """File-name-safe name, e.g. ``sb3_dsdpg-PointMassBonus-v0-n_bonus=4``."""
        base = self.env_id.replace("/", "-").replace(":", "-")
        return base + "".join(f"-{key}={value}" for key, value in self.kwargs)

    @property
    def label(self) -> str:
        """Readable name, e.g. ``sb3_dsdpg/PointMassBonus-v0(n_bonus=4)``."""
        if not self.kwargs:
            return self.env_id
        return self.env_id + "(" + ",".join(f"{key}={value}" for key, value in self.kwargs) + ")"


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named set of envs with budgets, seeds, evaluation protocol and ``-params`` overrides for every algorithm."""

    envs: tuple[EnvSpec, ...]
    seeds: tuple[int, ...]
    eval_freq: int | None
    eval_episodes: int
    params: tuple[str, ...]
    description: str
    algo_params: tuple[tuple[str, str], ...] = ()


SUITES: dict[str, Suite] = {
    # Budgets for a 2-core machine (see README, "Comparing with TD3 and TQC"): learning starts after 500 steps for
    # every algorithm (TD3's zoo entry waits 10000 steps, DSDPG's MuJoCo entry 10000: more than these budgets). On an
    # idle machine an update of these 64x64 models costs about 40 ms (DSDPG), 25 ms (TQC), 10 ms (TD3) with one torch
    # thread, so 45 runs at 5000-6000 steps with --jobs 2 take about an hour.
    "cpu-small": Suite(
        envs=(
            EnvSpec("Pendulum-v1", timesteps=6000),
            EnvSpec("sb3_dsdpg/Pendulum-ObsNoise-v1", timesteps=6000),
            EnvSpec("sb3_dsdpg/Pendulum-DynNoise-v1", timesteps=6000),
            EnvSpec("sb3_dsdpg/PointMassBonus-v0", (("n_bonus", 4),), timesteps=5000),
            EnvSpec("sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5", timesteps=5000),
        ),
        seeds=(0, 1, 2),
        eval_freq=1000,
        eval_episodes=10,
        params=("learning_starts:500", 'policy_kwargs:"dict(net_arch=[64, 64])"'),
        algo_params=(
            ("dsdpg", 'world_model_kwargs:"dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])"'),
        ),
        description="Pendulum-v1 and its ObsNoise/DynNoise variants, PointMassBonus (n_bonus=4), "
        "InvertedDoublePendulum-DynNoise-v5, 6000 steps on the Pendulums and 5000 on the others; 64x64 networks "
        "(and DSDPG world model) and "
        "learning_starts 500 for every algorithm",
    ),
    # The paper's suite, for a cluster (--backend ray): the zoo entries of hyperparams/{dsdpg,td3,tqc}.yml as they are.
    "paper": Suite(
        envs=tuple(
            EnvSpec(env_id, timesteps=1_000_000)
            for base in PAPER_BASES
            for env_id in (f"{base}-v5", f"sb3_dsdpg/{base}-ObsNoise-v5", f"sb3_dsdpg/{base}-DynNoise-v5")
        ),
        seeds=(0, 1, 2, 3, 4),
        eval_freq=10_000,
        eval_episodes=10,
        params=(),
        description="Ant, HalfCheetah, Hopper, Walker2d, Humanoid, InvertedDoublePendulum x {clean, ObsNoise, "
        "DynNoise}, 1M steps, 5 seeds, the shipped zoo entries",
    ),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One zoo training: an algorithm on an env with a seed, and everything that makes it reproducible."""

    algo: str
    env: EnvSpec
    seed: int
    timesteps: int
    eval_freq: int
    eval_episodes: int
    n_eval_envs: int
    params: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.algo}__{self.env.slug}__seed{self.seed}"

    def folder(self, out: Path) -> Path:
        """The run's ``-f`` log folder."""
        return out / "logs" / self.name

    def command(self, out: Path) -> list[str]:
        """The ``python -m sb3_dsdpg.train`` command line of this run."""
        command = [
            sys.executable, "-m", "sb3_dsdpg.train",
            "--algo", self.algo, "--env", self.env.env_id, "--seed", str(self.seed),
            "-n", str(self.timesteps), "-f", str(self.folder(out)),
            "--eval-freq", str(self.eval_freq), "--eval-episodes", str(self.eval_episodes),
            "--n-eval-envs", str(self.n_eval_envs), "--num-threads", "1", "--verbose", "0",
        ]  # fmt: skip
        if self.env.kwargs:
            command += ["--env-kwargs", *(f"{key}:{value!r}" for key, value in self.env.kwargs)]
        if self.params:
            command += ["-params", *self.params]
        return command

    def config(self) -> dict[str, Any]:
        """What must match for a finished run to be reused."""
        return {
            "algo": self.algo,
            "env_id": self.env.env_id,
            "env_kwargs": dict(self.env.kwargs),
            "seed": self.seed,
            "timesteps": self.timesteps,
            "eval_freq": self.eval_freq,
            "eval_episodes": self.eval_episodes,
            "n_eval_envs": self.n_eval_envs,
            "params": list(self.params),
        }


# ----------------------------------------------------------------------------------------------------------------------
# Input
# ----------------------------------------------------------------------------------------------------------------------


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_env(text: str) -> EnvSpec:
    """
    Parse ``ID`` or ``ID:key=value,key=value`` (make-kwargs, values as Python literals).

    :param text: e.g. ``sb3_dsdpg/PointMassBonus-v0:n_bonus=4``
    :return: the env spec (without budget)
    """
    env_id, _, rest = text.partition(":")
    kwargs = []
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CompareError(f"bad env kwargs {item!r} in {text!r}: expected key=value")
        kwargs.append((key.strip(), _literal(value.strip())))
    return EnvSpec(env_id, tuple(kwargs))


def known_algos() -> list[str]:
    """The zoo's algorithms plus ``dsdpg``."""
    from sb3_dsdpg import zoo

    zoo.register()
    return sorted(zoo.ALGOS)


def check_algos(algos: Sequence[str]) -> None:
    known = known_algos()
    for algo in algos:
        if algo not in known:
            raise CompareError(f"unknown algorithm {algo!r}: choose from {', '.join(known)}")


def check_envs(envs: Sequence[EnvSpec]) -> None:
    """Fail on an unregistered ID or kwargs the env does not accept (each env is made and closed once)."""
    import gymnasium as gym

    from sb3_dsdpg import zoo

    for spec in envs:
        try:
            zoo.check_env_id(spec.env_id)
        except zoo.ZooConfigError as exc:
            raise CompareError(str(exc)) from exc
        try:
            gym.make(spec.env_id, **dict(spec.kwargs)).close()
        except Exception as exc:
            raise CompareError(f"cannot make {spec.label}: {type(exc).__name__}: {exc}") from exc


def check_out(out: Path) -> None:
    """Fail unless ``out`` can be created and written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CompareError(f"output folder {str(out)!r} is not writable: {exc}") from exc


def check_ray(address: str | None) -> None:
    """Fail unless Ray is installed and, for ``host:port``, the address accepts a connection."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise CompareError("--backend ray needs Ray: pip install 'sb3_dsdpg[distributed]'") from exc
    if address and address not in ("auto", "local") and "://" not in address:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise CompareError(f"bad Ray address {address!r}: expected host:port (e.g. 10.0.0.1:6379), 'auto' or 'local'")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise CompareError(f"Ray cluster at {address!r} is unreachable: {exc}") from exc


def build_runs(args: argparse.Namespace) -> list[Run]:
    """Expand the command line into runs (suite values unless overridden), in a stable order."""
    suite = SUITES[args.suite] if args.suite else None
    if args.envs:
        envs = [parse_env(text) for text in args.envs]
    elif suite:
        envs = list(suite.envs)
    else:
        raise CompareError("give --envs or --suite")
    seeds = args.seeds if args.seeds is not None else (list(suite.seeds) if suite else [0, 1, 2])
    params = tuple(args.params) if args.params is not None else (suite.params if suite else ())
    algo_params: dict[str, list[str]] = {}
    if suite and args.params is None and args.algo_params is None:
        for algo, value in suite.algo_params:
            if algo in args.algos:
                algo_params.setdefault(algo, []).append(value)
    for item in args.algo_params or []:
        algo, sep, value = item.partition(":")
        if not sep or ":" not in value:
            raise CompareError(f"bad --algo-params {item!r}: expected ALGO:key:value")
        algo_params.setdefault(algo, []).append(value)
    for algo in algo_params:
        if algo not in args.algos:
            raise CompareError(f"--algo-params for {algo!r}, which is not among --algos {args.algos}")
    runs = []
    # Seed-major order: an interrupted sweep has whole seeds of every (algo, env), which the aggregate can use.
    for seed in seeds:
        for env in envs:
            timesteps = args.timesteps or env.timesteps
            if not timesteps:
                raise CompareError(f"no budget for {env.label}: give --timesteps")
            eval_freq = args.eval_freq or (suite.eval_freq if suite and suite.eval_freq else max(1, timesteps // 10))
            eval_episodes = args.eval_episodes or (suite.eval_episodes if suite else 10)
            for algo in args.algos:
                runs.append(
                    Run(algo, env, seed, timesteps, eval_freq, eval_episodes, args.n_eval_envs,
                        params + tuple(algo_params.get(algo, ())))
                )  # fmt: skip
    if len({run.name for run in runs}) != len(runs):
        raise CompareError("the same (algo, env, seed) is listed twice")
    return runs


# ----------------------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------------------


def read_marker(run: Run, out: Path) -> dict[str, Any] | None:
    """The completion record of a finished run with the same configuration, else None."""
    path = run.folder(out) / MARKER
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return marker if marker.get("config") == run.config() else None


def evaluation_file(folder: Path) -> Path | None:
    """The zoo's ``evaluations.npz`` inside a run folder."""
    found = sorted(folder.glob("*/*/evaluations.npz"))
    return found[-1] if found else None


def _child_setup() -> None:  # pragma: no cover - runs in the child
    """Let a training die with the sweep that started it (Linux), so an interrupted sweep leaves no orphan writing."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def execute(run: Run, out: Path) -> dict[str, Any]:
    """
    Run one training in a subprocess (the run's folder is wiped first: a half-written run is redone), then write its
    completion marker. Used by both backends.

    :param run: the run
    :param out: the sweep folder
    :return: the marker (``returncode`` != 0 and no marker file when the training failed)
    """
    folder = run.folder(out)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = run.command(out)
    start = time.time()
    with open(folder / "train.log", "w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        returncode = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_child_setup)
    wall_time = time.time() - start
    evaluations = evaluation_file(folder)
    marker = {
        "config": run.config(),
        "name": run.name,
        "command": command,
        "returncode": returncode,
        "wall_time_s": wall_time,
        "steps_per_s": run.timesteps / wall_time if wall_time > 0 else float("nan"),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": socket.gethostname(),
        "evaluations": str(evaluations.relative_to(folder)) if evaluations else None,
    }
    if returncode == 0 and evaluations is not None:
        tmp = folder / (MARKER + ".tmp")
        tmp.write_text(json.dumps(marker, indent=1))
        tmp.replace(folder / MARKER)
    elif returncode == 0:
        marker["returncode"] = -1000  # finished without evaluations: not usable
    return marker


def _collect_files(run: Run, out: Path, marker: dict[str, Any]) -> dict[str, bytes]:
    """The small files the report needs (marker, evaluations, zoo config), relative to ``out``, for a Ray driver."""
    folder = run.folder(out)
    files = {}
    names = [MARKER, "train.log"] + ([marker["evaluations"]] if marker.get("evaluations") else [])
    if marker.get("evaluations"):
        eval_dir = Path(marker["evaluations"]).parent
        names += [str(eval_dir / name / "config.yml") for name in ("", run.env.env_id.replace("/", "-"))]
    for name in names:
        path = folder / name
        if path.is_file():
            files[str(path.relative_to(out))] = path.read_bytes()
    return files


def run_local(runs: Sequence[Run], out: Path, jobs: int, progress: Any) -> list[dict[str, Any]]:
    """Run with ``jobs`` local worker threads, each driving one training subprocess."""
    results = []
    lock = threading.Lock()

    def work(run: Run) -> dict[str, Any]:
        marker = execute(run, out)
        with lock:
            progress.update(1)
            progress.set_postfix_str(f"{run.name} {'ok' if marker['returncode'] == 0 else 'FAILED'}")
        return marker

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for marker in pool.map(work, runs):
            results.append(marker)
    return results


def _ray_task(run: Run, out: str) -> tuple[dict[str, Any], dict[str, bytes]]:  # pragma: no cover - runs in Ray
    path = Path(out)
    marker = execute(run, path)
    return marker, _collect_files(run, path, marker) if marker["returncode"] == 0 else {}


def run_ray(runs: Sequence[Run], out: Path, address: str | None, progress: Any) -> list[dict[str, Any]]:
    """
    Run every training as a one-CPU Ray task. A task writes into ``out`` on its node; the driver writes back the files
    the report needs (marker last), so ``out`` need not be a shared file system.
    """
    import ray

    init_kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
    if address and address != "local":
        init_kwargs["address"] = address
    runtime_env = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
    try:
        ray.init(runtime_env=runtime_env, **init_kwargs)
    except Exception as exc:
        raise CompareError(f"cannot connect to Ray at {address!r}: {exc}") from exc
    task = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
    pending = {task.remote(run, str(out.resolve())): run for run in runs}
    results = []
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            run = pending.pop(done[0])
            try:
                marker, files = ray.get(done[0])
            except Exception as exc:  # a crashed worker
                marker, files = {"name": run.name, "returncode": -1001, "error": str(exc)}, {}
            for relative in sorted(files, key=lambda name: name.endswith(MARKER)):  # marker last
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists() or target.read_bytes() != files[relative]:
                    target.write_bytes(files[relative])
            results.append(marker)
            progress.update(1)
            progress.set_postfix_str(f"{run.name} {'ok' if marker['returncode'] == 0 else 'FAILED'}")
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        ray.shutdown()
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sb3_dsdpg.compare",
        description="Compare DSDPG with TD3 and TQC: every (algo, env, seed) as one zoo training, then a report.",
        epilog="Example: python -m sb3_dsdpg.compare --suite cpu-small --out runs/cpu-small --jobs 2",
    )
    parser.add_argument("--algos", nargs="+", default=list(DEFAULT_ALGOS), help="zoo algorithms (default: dsdpg td3 tqc)")
    parser.add_argument("--envs", nargs="+", help="env IDs, with make-kwargs as ID:key=value,key=value")
    parser.add_argument("--suite", choices=sorted(SUITES), help="named set of envs, budgets, seeds and overrides")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds, paired across algorithms (default: suite's or 0 1 2)")
    parser.add_argument("--timesteps", "-n", type=int, help="env steps per run (default: the suite's per-env budget)")
    parser.add_argument("--out", required=True, type=Path, help="sweep folder (logs/ and report/)")
    parser.add_argument("--jobs", type=int, default=1, help="local runs at once (one CPU each)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", help="Ray cluster address (host:port or 'auto'; default: start a local Ray)")
    parser.add_argument("--eval-freq", type=int, help="env steps between evaluations (default: suite's or n/10)")
    parser.add_argument("--eval-episodes", type=int, help="deterministic episodes per evaluation (default: suite's or 10)")
    parser.add_argument("--n-eval-envs", type=int, default=1, help="evaluation envs")
    parser.add_argument("--params", nargs="*", help="zoo -params overrides for every algorithm (default: the suite's)")
    parser.add_argument("--algo-params", nargs="+", metavar="ALGO:KEY:VALUE", help="-params overrides for one algorithm")
    parser.add_argument("--no-update-cost", action="store_true", help="leave the update-cost benchmark out of the report")
    parser.add_argument("--no-report", action="store_true", help="only run")
    parser.add_argument("--report-only", action="store_true", help="only (re)write the report from finished runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the comparison.

    :param argv: command-line arguments (default: ``sys.argv[1:]``)
    :return: exit status (0: every run finished; 1: some failed; 2: bad input)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        runs = build_runs(args)
        check_algos(args.algos)
        check_envs(list(dict.fromkeys(run.env for run in runs)))
        check_out(args.out)
        if args.backend == "ray" and not args.report_only:
            check_ray(args.ray_address)
    except CompareError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    out: Path = args.out
    (out / "compare_command.json").write_text(json.dumps({"argv": argv, "runs": [run.name for run in runs]}, indent=1))

    failed: list[dict[str, Any]] = []
    if not args.report_only:
        from tqdm.auto import tqdm

        todo = [run for run in runs if read_marker(run, out) is None]
        print(f"{len(runs)} runs, {len(runs) - len(todo)} already finished in {out}, {len(todo)} to run ({args.backend})")
        with tqdm(total=len(runs), initial=len(runs) - len(todo), unit="run", desc="compare") as progress:
            if todo:
                try:
                    if args.backend == "ray":
                        results = run_ray(todo, out, args.ray_address, progress)
                    else:
                        results = run_local(todo, out, args.jobs, progress)
                except CompareError as exc:
                    parser.exit(2, f"{parser.prog}: error: {exc}\n")
                failed = [marker for marker in results if marker["returncode"] != 0]
        for marker in failed:
            print(f"FAILED: {marker['name']} (exit {marker['returncode']}), see {out / 'logs' / marker['name'] / 'train.log'}")
    if not args.no_report:
        from sb3_dsdpg import compare_report

        written = compare_report.write_report(out, runs, argv, suite=args.suite, update_cost=not args.no_update_cost)
        print(f"Report: {written}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
