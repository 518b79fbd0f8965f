"""Running a comparison sweep: ``python -m sb3_dsdpg.compare`` compares DSDPG with TD3 and TQC on the same tasks.

This module owns the running of a sweep (what a sweep *is*, its runs, suites, protocols and DSDPG variants, is
:mod:`sb3_dsdpg.tools.compare.runs`): it expands ``--algos x --envs x --seeds`` (or a named ``--suite``; ``--algos``
takes zoo algorithms and the variants of :data:`~sb3_dsdpg.tools.compare.runs.ALGO_VARIANTS`) into runs
(:func:`build_runs`; under the ``matched`` protocol :func:`shared_values` and :func:`matched_params` compose each
algorithm's ``-params``), checks the input before anything starts (algorithms, env IDs and kwargs, the output folder,
Ray, the ``zoo`` extra), runs every run as an ordinary zoo training (``python -m sb3_dsdpg.train ... --num-threads 1``,
one subprocess per run) locally with ``--jobs K`` workers (:func:`run_local`) or as one-CPU Ray tasks on a running
cluster (``--backend ray``, :func:`run_ray`), skips the runs that already finished in ``--out`` (their completion
marker), and then writes the report with :mod:`sb3_dsdpg.tools.compare.report`.

Protocols (``--protocol``):

- ``matched`` (default for ``--envs`` and the CPU suites): on an env every algorithm gets the same shared
  hyperparameters, from the suite or else from DSDPG's zoo entry for that env; the algorithms differ only in their
  own arguments, which stay as in their zoo entries (a DSDPG variant: DSDPG's entry with the variant's arguments).
  Action noise goes to the deterministic-actor algorithms (and DSDPG's variants) only; the
  stochastic-policy ones explore through their entropy and run without action noise, even when their zoo entry sets
  one.
- ``zoo`` (default for the ``paper`` suite): each algorithm's own zoo entry plus the suite's (or ``--params``)
  overrides, applied to all algorithms alike.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
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

from sb3_dsdpg.tools.compare.runs import (
    ALGO_VARIANTS,
    DEFAULT_ALGOS,
    DETERMINISTIC_ACTOR_ALGOS,
    DSDPG_DEFAULTS,
    MARKER,
    NOISE_KEYS,
    PROTOCOLS,
    SCALAR_SHARED_KEYS,
    STOCHASTIC_POLICY_ALGOS,
    SUITES,
    CompareError,
    EnvSpec,
    Run,
    Suite,
    as_kwargs,
    dsdpg_default_params,
    evaluate,
    evaluation_file,
    parse_env,
    read_marker,
    split_param,
    variant_params,
    zoo_algorithm,
    zoo_entry,
)
from sb3_dsdpg.tools.extras import require

# What the sweep and its report import: checked before any run starts, so that a long sweep does not fail at its end.
ZOO_EXTRA_MODULES = ("rl_zoo3", "optuna", "yaml", "sb3_contrib", "matplotlib", "scipy", "rliable")


# ----------------------------------------------------------------------------------------------------------------------
# Input
# ----------------------------------------------------------------------------------------------------------------------


def known_algos() -> list[str]:
    """The zoo's algorithms plus ``dsdpg`` (the variants of :data:`ALGO_VARIANTS` are not among them)."""
    from sb3_dsdpg.tools import zoo

    zoo.register()
    return sorted(zoo.ALGOS)


def check_algos(algos: Sequence[str]) -> None:
    """Fail on a label of ``--algos`` that is neither a zoo algorithm nor a variant, naming the known ones."""
    known = known_algos()
    for algo in algos:
        if algo not in known and algo not in ALGO_VARIANTS:
            raise CompareError(
                f"unknown algorithm {algo!r}: choose from {', '.join(known)}, or a DSDPG variant: {', '.join(ALGO_VARIANTS)}"
            )


def selected_algos(args: argparse.Namespace) -> list[str]:
    """The labels of the sweep: ``--algos``, else the suite's, else :data:`DEFAULT_ALGOS`."""
    if args.algos:
        return list(args.algos)
    return list(SUITES[args.suite].algos if args.suite else DEFAULT_ALGOS)


def check_envs(envs: Sequence[EnvSpec]) -> None:
    """Fail on an unregistered ID or kwargs the env does not accept (each env is made and closed once)."""
    import gymnasium as gym

    from sb3_dsdpg.tools import zoo

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


# ----------------------------------------------------------------------------------------------------------------------
# Hyperparameters of a run
# ----------------------------------------------------------------------------------------------------------------------


def _expression(value: Any) -> str:
    """Python text that evaluates (in the zoo's namespace) back to ``value``."""
    import torch as th

    if isinstance(value, type):
        for prefix, module in (("th.nn", th.nn), ("th.optim", th.optim)):
            if getattr(module, value.__name__, None) is value:
                return f"{prefix}.{value.__name__}"
        raise CompareError(f"cannot write {value!r} into -params")
    if isinstance(value, dict):
        if all(isinstance(key, str) and key.isidentifier() for key in value):
            return "dict(" + ", ".join(f"{key}={_expression(item)}" for key, item in value.items()) + ")"
        return "{" + ", ".join(f"{key!r}: {_expression(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_expression(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(f"{_expression(item)}, " for item in value).rstrip(" ") + ")"
    return repr(value)


def policy_kwargs_param(kwargs: dict[str, Any]) -> str:
    """The ``policy_kwargs:"dict(...)"`` item of ``-params`` for ``kwargs`` (checked to evaluate back to them)."""
    from sb3_dsdpg.tools import zoo

    text = _expression(kwargs)
    if eval(text, dict(zoo.EVAL_NAMESPACE)) != kwargs:
        raise CompareError(f"cannot write policy_kwargs {kwargs!r} into -params")
    return "policy_kwargs:" + (f'"{text}"' if '"' not in text and "\\" not in text else repr(text))


def shared_values(env: EnvSpec, suite: Suite | None) -> dict[str, Any]:
    """
    The matched-protocol values of :data:`SHARED_KEYS` on ``env`` (before ``--params``): DSDPG's constructor
    defaults, replaced by what DSDPG's zoo entry for the env sets, then by the suite's ``shared`` and the env's own.
    """
    _, _, entry = zoo_entry("dsdpg", env.env_id)
    values = dict(DSDPG_DEFAULTS)
    values.update({key: entry[key] for key in (*SCALAR_SHARED_KEYS, *NOISE_KEYS) if key in entry})
    net_arch = as_kwargs(entry.get("policy_kwargs"), f"dsdpg entry of {env.env_id}").get("net_arch")
    if net_arch is not None:
        values["net_arch"] = net_arch
    if suite is not None:
        values.update(suite.shared)
        same = [spec for spec in suite.envs if (spec.env_id, spec.kwargs) == (env.env_id, env.kwargs)]
        values.update(same[0].shared if same else ())
    values.update(env.shared)
    if values.get("noise_type") is None:
        values.pop("noise_std", None)
    return values


def matched_params(
    algo: str, env: EnvSpec, shared: dict[str, Any], common: Sequence[str] = (), own: Sequence[str] = ()
) -> tuple[str, ...]:
    """
    The ``-params`` of ``algo`` on ``env`` under the matched protocol: the shared values, each of them written out
    (so that the algorithm's own zoo entry cannot differ), ``net_arch`` put into the algorithm's own ``policy_kwargs``
    (its other keys kept), action noise for deterministic-actor algorithms only (a stochastic-policy algorithm gets
    ``noise_type:None`` if its zoo entry sets a noise, else nothing), then the overrides.

    :param algo: the algorithm
    :param env: the env
    :param shared: :func:`shared_values` of the env
    :param common: ``key:value`` overrides for every algorithm (``--params``): a shared key replaces its shared value,
        ``policy_kwargs`` is merged key by key into the algorithm's, noise keys reach deterministic actors only
    :param own: ``key:value`` overrides of this algorithm (the suite's ``algo_params``, then ``--algo-params``):
        replace, ``policy_kwargs`` merged key by key, noise keys apply whatever the algorithm
    :return: the ``-params`` items
    """
    path, name, entry = zoo_entry(algo, env.env_id)
    deterministic = algo in DETERMINISTIC_ACTOR_ALGOS
    scalars = {key: repr(shared[key]) for key in SCALAR_SHARED_KEYS if key in shared}
    policy_kwargs = as_kwargs(entry.get("policy_kwargs"), f"entry {name!r} of {path}")
    net_arch = shared["net_arch"]  # a list, or dict(pi=[...], qf=[...])
    policy_kwargs["net_arch"] = list(net_arch) if isinstance(net_arch, (list, tuple)) else dict(net_arch)
    noise = {key: repr(shared[key]) for key in NOISE_KEYS if key in shared} if deterministic else {}
    others: dict[str, str] = {}
    for scope, items in (("--params", common), ("--algo-params", own)):
        for item in items:
            key, text = split_param(item, scope)
            if key == "policy_kwargs":
                policy_kwargs.update(as_kwargs(evaluate(text), f"{scope} {item}"))
            elif key in NOISE_KEYS:
                if deterministic or scope == "--algo-params":
                    noise[key] = text
            elif key in SCALAR_SHARED_KEYS:
                scalars[key] = text
            else:
                others[key] = text
    if "noise_type" not in noise or evaluate(noise["noise_type"]) is None:
        # No action noise: say so only where the zoo entry would otherwise add its own.
        noise = {"noise_type": "None"} if entry.get("noise_type") is not None else {}
    return (
        *(f"{key}:{text}" for key, text in scalars.items()),
        policy_kwargs_param(policy_kwargs),
        *(f"{key}:{text}" for key, text in noise.items()),
        *(f"{key}:{text}" for key, text in others.items()),
    )


def unshared_algo_params(args: argparse.Namespace) -> list[str]:
    """
    Notes on ``--algo-params`` of a zoo algorithm (e.g. ``dsdpg:n_samples:4``) whose key a selected variant of it
    does not get (``--algo-params`` apply to the label they name only): printed by :func:`main`, not an error.
    """
    algos = selected_algos(args)
    given: dict[str, set[str]] = {}
    for item in args.algo_params or []:
        algo, _, value = item.partition(":")
        given.setdefault(algo, set()).add(value.partition(":")[0])
    notes = []
    for algo in algos:
        base = zoo_algorithm(algo)
        missing = sorted(given.get(base, set()) - given.get(algo, set())) if algo != base else []
        if missing:
            notes.append(
                f"note: --algo-params for {base} do not reach its variant {algo} ({', '.join(missing)}): "
                f"give them as {algo}:KEY:VALUE too if the variant should differ from {base} only by "
                f"{' '.join(variant_params(algo))}"
            )
    return notes


def build_runs(args: argparse.Namespace) -> list[Run]:
    """
    Expand the command line into runs (suite values unless overridden), in a stable order.

    A DSDPG variant gets ``--algo-params`` given for its own label only (not those for ``dsdpg``), and none that sets
    a key of its definition. Its protocol params are those of its zoo algorithm; its own come last (:class:`Run`).
    """
    suite = SUITES[args.suite] if args.suite else None
    algos = selected_algos(args)
    check_algos(algos)
    if args.envs:
        envs = [parse_env(text) for text in args.envs]
    elif suite:
        envs = list(suite.envs)
    else:
        raise CompareError("give --envs or --suite")
    protocol = getattr(args, "protocol", None) or (suite.protocol if suite else "matched")
    if protocol not in PROTOCOLS:
        raise CompareError(f"unknown protocol {protocol!r}: choose from {', '.join(PROTOCOLS)}")
    seeds = args.seeds if args.seeds is not None else (list(suite.seeds) if suite else [0, 1, 2])
    params = tuple(args.params) if args.params is not None else (suite.params if suite else ())
    algo_params: dict[str, list[str]] = {}
    if suite and (protocol == "matched" or (args.params is None and args.algo_params is None)):
        for algo, value in suite.algo_params:
            if algo in algos:
                algo_params.setdefault(algo, []).append(value)
    for item in args.algo_params or []:
        algo, sep, value = item.partition(":")
        if not sep or ":" not in value:
            raise CompareError(f"bad --algo-params {item!r}: expected ALGO:key:value")
        algo_params.setdefault(algo, []).append(value)
    for algo, values in algo_params.items():
        if algo not in algos:
            raise CompareError(f"--algo-params for {algo!r}, which is not among --algos {algos}")
        fixed = {split_param(item)[0] for item in variant_params(algo)}
        for value in values:
            if split_param(value, "--algo-params")[0] in fixed:
                raise CompareError(
                    f"--algo-params {algo}:{value} sets what the variant {algo!r} is defined by "
                    f"({' '.join(variant_params(algo))}): use another label or the zoo algorithm"
                )
    dsdpg_at_defaults = (suite is not None and suite.dsdpg_defaults) or args.dsdpg_defaults
    run_params: dict[tuple[EnvSpec, str], tuple[str, ...]] = {}
    for env in envs:
        shared = shared_values(env, suite) if protocol == "matched" else {}
        for algo in algos:
            base = zoo_algorithm(algo)
            if protocol == "zoo":
                run_params[env, algo] = params + tuple(algo_params.get(algo, ()))
            elif base in DETERMINISTIC_ACTOR_ALGOS | STOCHASTIC_POLICY_ALGOS:
                own = tuple(algo_params.get(algo, ()))
                if dsdpg_at_defaults and base == "dsdpg":
                    own = dsdpg_default_params(zoo_entry("dsdpg", env.env_id)[2]) + own  # then the suite's, --algo-params
                run_params[env, algo] = matched_params(base, env, shared, args.params or (), own)
            else:
                known = ", ".join(sorted(DETERMINISTIC_ACTOR_ALGOS | STOCHASTIC_POLICY_ALGOS))
                raise CompareError(
                    f"the matched protocol shares off-policy hyperparameters between {known}; {algo!r} is not one "
                    "of them: use --protocol zoo"
                )
    runs = []
    # Seed-major order: an interrupted sweep has whole seeds of every (algo, env), which the aggregate can use.
    for seed in seeds:
        for env in envs:
            timesteps = args.timesteps or env.timesteps
            if not timesteps:
                raise CompareError(f"no budget for {env.label}: give --timesteps")
            eval_freq = args.eval_freq or (suite.eval_freq if suite and suite.eval_freq else max(1, timesteps // 10))
            eval_episodes = args.eval_episodes or (suite.eval_episodes if suite else 10)
            for algo in algos:
                runs.append(
                    Run(algo, env, seed, timesteps, eval_freq, eval_episodes, args.n_eval_envs,
                        run_params[env, algo], protocol)
                )  # fmt: skip
    if len({run.name for run in runs}) != len(runs):
        raise CompareError("the same (algo, env, seed) is listed twice")
    return runs


# ----------------------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------------------


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
    parser.add_argument(
        "--algos",
        nargs="+",
        help=f"zoo algorithms and DSDPG variants ({', '.join(ALGO_VARIANTS)}; default: the suite's, else "
        f"{' '.join(DEFAULT_ALGOS)})",
    )
    parser.add_argument("--envs", nargs="+", help="env IDs, with make-kwargs as ID:key=value,key=value")
    parser.add_argument("--suite", choices=sorted(SUITES), help="named set of envs, budgets, seeds and overrides")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="matched: every algorithm gets the same shared hyperparameters on an env (learning rate, batch, gamma, "
        "tau, buffer, learning starts, net_arch, action noise for deterministic actors, train_freq, gradient_steps); zoo: "
        "each algorithm's own zoo entry (default: the suite's, matched without a suite)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds, paired across algorithms (default: suite's or 0 1 2)")
    parser.add_argument("--timesteps", "-n", type=int, help="env steps per run (default: the suite's per-env budget)")
    parser.add_argument("--out", required=True, type=Path, help="sweep folder (logs/ and report/)")
    parser.add_argument("--jobs", type=int, default=1, help="local runs at once (one CPU each)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", help="Ray cluster address (host:port or 'auto'; default: start a local Ray)")
    parser.add_argument("--eval-freq", type=int, help="env steps between evaluations (default: suite's or n/10)")
    parser.add_argument("--eval-episodes", type=int, help="deterministic episodes per evaluation (default: suite's or 10)")
    parser.add_argument("--n-eval-envs", type=int, default=1, help="evaluation envs")
    parser.add_argument(
        "--params",
        nargs="*",
        help="zoo -params overrides for every algorithm (zoo protocol: instead of the suite's; matched: on top of the "
        "shared values, policy_kwargs merged into each algorithm's, noise keys for deterministic actors only)",
    )
    parser.add_argument(
        "--algo-params",
        nargs="+",
        metavar="ALGO:KEY:VALUE",
        help="-params overrides for one algorithm or variant (dsdpg's do not reach its variants: give e.g. mage:KEY:VALUE)",
    )
    parser.add_argument("--no-update-cost", action="store_true", help="leave the update-cost benchmark out of the report")
    parser.add_argument(
        "--dsdpg-defaults",
        action="store_true",
        help="matched protocol: DSDPG and its variants at DSDPG's own defaults on every env, over what a tuned zoo entry "
        "sets (as the noise-sweep suite does)",
    )
    parser.add_argument("--no-report", action="store_true", help="only run")
    parser.add_argument("--report-only", action="store_true", help="only (re)write the report from finished runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the comparison.

    :param argv: command-line arguments (default: ``sys.argv[1:]``)
    :return: exit status (0: every run finished; 1: some failed; 2: bad input)
    :raises MissingExtraError: when a package of the ``zoo`` extra is missing (the entry point exits with status 2)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    args = parser.parse_args(argv)
    require("zoo", parser.prog, ZOO_EXTRA_MODULES)
    try:
        runs = build_runs(args)
        for note in unshared_algo_params(args):
            print(note, file=sys.stderr)
        check_envs(list(dict.fromkeys(run.env for run in runs)))
        check_out(args.out)
        if args.backend == "ray" and not args.report_only:
            check_ray(args.ray_address)
    except CompareError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    out: Path = args.out
    protocol = runs[0].protocol if runs else None
    (out / "compare_command.json").write_text(
        json.dumps({"argv": argv, "protocol": protocol, "runs": [run.name for run in runs]}, indent=1)
    )

    failed: list[dict[str, Any]] = []
    if not args.report_only:
        from tqdm.auto import tqdm

        todo = [run for run in runs if read_marker(run, out) is None]
        print(
            f"{len(runs)} runs ({protocol} protocol), {len(runs) - len(todo)} already finished in {out}, "
            f"{len(todo)} to run ({args.backend})"
        )
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
        from sb3_dsdpg.tools.compare import report

        written = report.write_report(out, runs, argv, suite=args.suite, update_cost=not args.no_update_cost)
        print(f"Report: {written}")
    return 1 if failed else 0
