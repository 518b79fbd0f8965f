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
protocol (``--eval-freq``, ``--eval-episodes``, ``--n-eval-envs``, deterministic actions) and the same seeds. The
hyperparameters follow one of two protocols (``--protocol``):

- ``matched`` (default for ``--envs`` and the ``cpu-small`` suite): on an env every algorithm gets the same
  :data:`SHARED_KEYS` (learning rate, batch size, gamma, buffer size, learning starts, ``net_arch``, action noise,
  train frequency, gradient steps), from the suite or else from DSDPG's zoo entry for that env; the algorithms differ
  only in their own arguments, which stay as in their zoo entries. Action noise goes to the deterministic-actor
  algorithms only (:data:`DETERMINISTIC_ACTOR_ALGOS`); the stochastic-policy ones explore through their entropy and
  run without action noise, even when their zoo entry sets one. :func:`matched_params` composes the ``-params``.
- ``zoo`` (default for the ``paper`` suite): each algorithm's own zoo entry plus the suite's (or ``--params``)
  overrides, applied to all algorithms alike.
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
PROTOCOLS = ("matched", "zoo")

# The hyperparameters every algorithm of an env gets alike under the matched protocol. ``net_arch`` lives inside
# ``policy_kwargs``; ``noise_type``/``noise_std`` go to the deterministic-actor algorithms only.
SCALAR_SHARED_KEYS = (
    "learning_rate", "batch_size", "gamma", "buffer_size", "learning_starts", "train_freq", "gradient_steps",
)  # fmt: skip
NOISE_KEYS = ("noise_type", "noise_std")
SHARED_KEYS = (*SCALAR_SHARED_KEYS, "net_arch", *NOISE_KEYS)
# Deterministic actors explore with action noise; stochastic policies explore through their entropy (no action noise).
DETERMINISTIC_ACTOR_ALGOS = frozenset({"dsdpg", "td3", "ddpg"})
STOCHASTIC_POLICY_ALGOS = frozenset({"tqc", "sac", "crossq"})
# DSDPG's constructor defaults of the shared keys (sb3_dsdpg/dsdpg.py DSDPG.__init__; net_arch: DSDPGPolicy's
# default in sb3_dsdpg/policies.py; action_noise None): the shared values of keys its zoo entry does not set.
DSDPG_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-4,
    "batch_size": 256,
    "gamma": 0.99,
    "buffer_size": 1_000_000,
    "learning_starts": 1000,
    "train_freq": 1,
    "gradient_steps": 1,
    "net_arch": [256, 256],
    "noise_type": None,
}


class CompareError(ValueError):
    """Bad input of a comparison, found before any run starts."""


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """An env ID with its make-kwargs and its budget in env steps."""

    env_id: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    timesteps: int | None = None
    # Matched-protocol values of this env that override the suite's (e.g. ``(("gamma", 0.99),)``); not part of
    # the env's identity (equality, hash).
    shared: tuple[tuple[str, Any], ...] = dataclasses.field(default=(), compare=False)

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
    """
    A named set of envs with budgets, seeds, evaluation protocol and hyperparameter protocol.

    ``params``: ``-params`` overrides for every algorithm under the zoo protocol. ``shared``: the values of
    :data:`SHARED_KEYS` under the matched protocol (keys left out: DSDPG's zoo entry; per env: ``EnvSpec.shared``).
    ``algo_params``: ``(algo, "key:value")`` overrides of one algorithm's own arguments, under both protocols.
    ``protocol``: the protocol used unless ``--protocol`` says otherwise.
    """

    envs: tuple[EnvSpec, ...]
    seeds: tuple[int, ...]
    eval_freq: int | None
    eval_episodes: int
    params: tuple[str, ...]
    description: str
    algo_params: tuple[tuple[str, str], ...] = ()
    protocol: str = "zoo"
    shared: tuple[tuple[str, Any], ...] = ()


SUITES: dict[str, Suite] = {
    # Budgets for a 2-core machine (see README, "Comparing with TD3 and TQC"), matched protocol: every algorithm gets
    # lr 1e-3, batch 128, gamma 0.98, buffer 2e5, learning_starts 500 (TD3's zoo entry waits 10000 steps, DSDPG's
    # MuJoCo entry 10000: more than these budgets), 64x64 networks, one gradient step per env step, and DSDPG and TD3
    # normal action noise 0.1 (TQC explores through its entropy); DSDPG's world model is 64x64 too. Estimate: on an
    # idle machine an update at these sizes costs about 16 ms (DSDPG), 12 ms (TQC), 3 ms (TD3) with one torch thread;
    # a seed has 3 x 5500 + 2 x 4500 = 25500 updates per algorithm, i.e. about 410 s (DSDPG) + 310 s (TQC) + 80 s
    # (TD3) = 800 s of updates, 5 seeds 4000 s, halved by --jobs 2: about 33 minutes of updates, plus start-up, env
    # steps and evaluations (about 10-20 s per run, 75 runs, halved: 6-12 minutes): roughly 40-45 minutes with
    # --jobs 2 on an idle machine. An estimate, not a measurement (the zoo-protocol sweep of 3 seeds took 59 minutes,
    # before the speed work); a busy machine takes longer.
    # The "zoo" protocol (--protocol zoo) runs the zoo entries with the params below instead, as the first sweep did.
    "cpu-small": Suite(
        envs=(
            EnvSpec("Pendulum-v1", timesteps=6000),
            EnvSpec("sb3_dsdpg/Pendulum-ObsNoise-v1", timesteps=6000),
            EnvSpec("sb3_dsdpg/Pendulum-DynNoise-v1", timesteps=6000),
            EnvSpec("sb3_dsdpg/PointMassBonus-v0", (("n_bonus", 4),), timesteps=5000),
            EnvSpec("sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5", timesteps=5000),
        ),
        seeds=(0, 1, 2, 3, 4),
        eval_freq=1000,
        eval_episodes=10,
        params=("learning_starts:500", 'policy_kwargs:"dict(net_arch=[64, 64])"'),
        algo_params=(
            ("dsdpg", 'world_model_kwargs:"dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])"'),
        ),
        protocol="matched",
        shared=(
            ("learning_rate", 1e-3),
            ("batch_size", 128),
            ("gamma", 0.98),
            ("buffer_size", 200_000),
            ("learning_starts", 500),
            ("net_arch", [64, 64]),
            ("noise_type", "normal"),
            ("noise_std", 0.1),
            ("train_freq", 1),
            ("gradient_steps", 1),
        ),
        description="Pendulum-v1 and its ObsNoise/DynNoise variants, PointMassBonus (n_bonus=4), "
        "InvertedDoublePendulum-DynNoise-v5, 6000 steps on the Pendulums and 5000 on the others, seeds 0-4; matched "
        "protocol: lr 1e-3, batch 128, gamma 0.98, buffer 2e5, learning_starts 500, 64x64 networks (and DSDPG world "
        "model), train_freq 1, gradient_steps 1 and normal action noise 0.1 (DSDPG, TD3) for every algorithm",
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
        protocol="zoo",
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
    protocol: str = "zoo"

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
            "protocol": self.protocol,
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


# ----------------------------------------------------------------------------------------------------------------------
# Hyperparameters of a run
# ----------------------------------------------------------------------------------------------------------------------


def zoo_config_file(algo: str, env_id: str) -> str:
    """
    The hyperparameter file ``python -m sb3_dsdpg.train`` reads for ``algo`` on ``env_id`` (no ``--conf-file``): our
    shipped ``sb3_dsdpg/hyperparams/<algo>.yml`` when it has the env or a default entry, else rl-zoo3's own file.
    """
    from sb3_dsdpg import zoo

    ours = zoo.default_config(algo, env_id)
    if ours:
        return ours
    import rl_zoo3

    root = Path(rl_zoo3.__file__).resolve().parent
    if not (root / "hyperparams").is_dir():  # as rl_zoo3's ExperimentManager: a source checkout keeps them one up
        root = root.parent
    return str(root / "hyperparams" / f"{algo}.yml")


def zoo_entry(algo: str, env_id: str) -> tuple[str, str, dict[str, Any]]:
    """
    The zoo entry ``algo`` gets on ``env_id``: the env's own entry of :func:`zoo_config_file`, else its ``default``.

    :return: file, entry name, entry (a copy)
    """
    from sb3_dsdpg import zoo

    path = zoo_config_file(algo, env_id)
    try:
        entries = zoo.read_entries(path)
    except OSError as exc:
        raise CompareError(f"no hyperparameter file for {algo}: {exc}") from exc
    for name in (env_id, "default"):
        if name in entries:
            return path, name, dict(entries[name])
    raise CompareError(f"{path} has no entry for {env_id!r} and no default entry")


def split_param(item: str, where: str = "-params") -> tuple[str, str]:
    """``key:value`` (as the zoo's ``-params``) into the key and the value's Python text."""
    key, sep, text = item.partition(":")
    if not sep or not key:
        raise CompareError(f"bad {where} item {item!r}: expected key:value")
    return key, text


def evaluate(text: str) -> Any:
    """The value of a ``-params`` text, as the zoo evaluates it (``"dict(...)"`` stays a string, as in the zoo)."""
    from sb3_dsdpg import zoo

    try:
        return eval(text, dict(zoo.EVAL_NAMESPACE))
    except Exception as exc:
        raise CompareError(f"cannot evaluate -params value {text!r}: {type(exc).__name__}: {exc}") from exc


def as_kwargs(value: Any, where: str) -> dict[str, Any]:
    """A ``policy_kwargs`` value (mapping, ``"dict(...)"`` string or None) as a dict."""
    from sb3_dsdpg import zoo

    if value is None:
        return {}
    kwargs = zoo._as_dict(value)
    if kwargs is None:
        raise CompareError(f"{where}: policy_kwargs {value!r} is not a mapping or a 'dict(...)' string")
    return kwargs


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
    from sb3_dsdpg import zoo

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


def resolved_hyperparams(run: Run) -> dict[str, Any]:
    """What the zoo makes of ``run``: its zoo entry with the run's ``-params`` applied (values evaluated)."""
    _, _, hyperparams = zoo_entry(run.algo, run.env.env_id)
    for item in run.params:
        key, text = split_param(item)
        hyperparams[key] = evaluate(text)
    return hyperparams


def build_runs(args: argparse.Namespace) -> list[Run]:
    """Expand the command line into runs (suite values unless overridden), in a stable order."""
    suite = SUITES[args.suite] if args.suite else None
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
    run_params: dict[tuple[EnvSpec, str], tuple[str, ...]] = {}
    for env in envs:
        shared = shared_values(env, suite) if protocol == "matched" else {}
        for algo in args.algos:
            if protocol == "zoo":
                run_params[env, algo] = params + tuple(algo_params.get(algo, ()))
            elif algo in DETERMINISTIC_ACTOR_ALGOS | STOCHASTIC_POLICY_ALGOS:
                run_params[env, algo] = matched_params(algo, env, shared, args.params or (), algo_params.get(algo, ()))
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
            for algo in args.algos:
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


def read_marker(run: Run, out: Path) -> dict[str, Any] | None:
    """The completion record of a finished run with the same configuration, else None."""
    path = run.folder(out) / MARKER
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    config = marker.get("config")
    if isinstance(config, dict) and "protocol" not in config:
        config = {**config, "protocol": "zoo"}  # written before --protocol existed: the zoo protocol
    return marker if config == run.config() else None


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
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="matched: every algorithm gets the same shared hyperparameters on an env (learning rate, batch, gamma, "
        "buffer, learning starts, net_arch, action noise for deterministic actors, train_freq, gradient_steps); zoo: "
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
        check_algos(args.algos)
        runs = build_runs(args)
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
        from sb3_dsdpg import compare_report

        written = compare_report.write_report(out, runs, argv, suite=args.suite, update_cost=not args.no_update_cost)
        print(f"Report: {written}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
