"""What a comparison sweep is: its runs, suites and protocols, and how a finished run is recognised.

This module owns the vocabulary shared by the sweep runner (:mod:`sb3_dsdpg.tools.compare.sweep`) and the report
(:mod:`sb3_dsdpg.tools.compare.report`), which import it and not each other:

- :class:`EnvSpec` (an env ID with make-kwargs and a budget), :class:`Suite` and the named :data:`SUITES`
  (``cpu-small`` for a 2-core machine; ``noise-sweep``, InvertedDoublePendulum at five noise levels, and
  ``toy-bonus-sweep``, the point mass with 1-8 bonuses, both with DSDPG's variants; ``paper``, the MuJoCo tasks of
  arXiv 2601.20071, Sec. 6, clean and with observation or dynamics noise), and :class:`Run`: one zoo training of an
  algorithm on an env with a seed, its ``python -m sb3_dsdpg.train`` command line, its folder and the configuration
  a finished run must match;
- the named DSDPG variants (:data:`ALGO_VARIANTS`, e.g. ``mage``: DSDPG with ``distributional:False``): a label
  accepted wherever an algorithm is, run as the zoo algorithm with the variant's ``-params`` last
  (:func:`zoo_algorithm`, :func:`variant_params`);
- the two hyperparameter protocols (:data:`PROTOCOLS`): ``matched`` gives every algorithm of an env the same
  :data:`SHARED_KEYS` (learning rate, batch size, gamma, tau, buffer size, learning starts, ``net_arch``, train frequency,
  gradient steps; action noise to :data:`DETERMINISTIC_ACTOR_ALGOS` only, the :data:`STOCHASTIC_POLICY_ALGOS` explore
  through their entropy); ``zoo`` runs each algorithm's own zoo entry plus the sweep's overrides;
- how the zoo resolves a run's hyperparameters (:func:`zoo_entry`, :func:`resolved_hyperparams`), read by the report's
  settings table;
- the completion marker :data:`MARKER` (``compare_run.json``, written only after a training exited cleanly),
  :func:`read_marker` and :func:`evaluation_file`.

Layout of a sweep folder ``DIR``::

    DIR/logs/<algo>__<env-slug>__seed<S>/          # the zoo's -f folder of one run (train.log, compare_run.json)
        <algo>/<EnvName>_1/evaluations.npz        # the zoo's own logs, model and periodic deterministic evaluations
                                                  # (<algo>: the zoo algorithm, dsdpg for a variant such as mage)
    DIR/report/                                   # results.md, results.csv, runs.csv, curves_*.png, aggregate.png, ...

Fairness: every algorithm of an env gets the same env ID and kwargs, the same budget, the same evaluation protocol
(evaluation frequency, episodes, envs, deterministic actions) and the same seeds.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

MARKER = "compare_run.json"
DEFAULT_ALGOS = ("dsdpg", "td3", "tqc")
PAPER_BASES = ("Ant", "HalfCheetah", "Hopper", "Walker2d", "Humanoid", "InvertedDoublePendulum")
PROTOCOLS = ("matched", "zoo")
# Named DSDPG variants (ablations): label -> (zoo algorithm, its extra -params). A label is accepted wherever an
# algorithm is (--algos, --algo-params LABEL:KEY:VALUE, a suite's algos and algo_params) and has its own runs, rows and
# curves; it runs the zoo algorithm's entry (``--algo dsdpg``) and, under the matched protocol, is a deterministic actor
# like it. Its -params come last on the command line, after the protocol's and the overrides (so they win), and are
# part of the run's configuration. Values as the zoo's -params (Python literals: strings quoted, True/False).
ALGO_VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dsdpg-mmd": ("dsdpg", ("loss:'mmd'",)),  # plain MMD on the joint samples (the default loss since 2026-12-08)
    "dsdpg-msmmd": ("dsdpg", ("loss:'msmmd'",)),  # the paper's per-row max-sliced MMD (V-statistic)
    "mage": ("dsdpg", ("distributional:False",)),  # deterministic Sobolev critic, MAGE's loss (one Q per critic)
    "dsdpg-returns": ("dsdpg", ("sobolev:False",)),  # generative critic on returns only, no action gradients
    # Ablations of the toy's located loss (docs/ablations.md): the task's known reward in the target's gradient part,
    # and the gradient part out of the distance (the hybrid target's returns alone: the return-only critic's loss).
    "dsdpg-known-reward": ("dsdpg", ("reward_fn:'known'",)),
    "dsdpg-gw0": ("dsdpg", ("gradient_weight:0.0",)),
    # ... and with no model trained (no world-model steps or warm-up, the cVAE's reward): what is left of DSDPG's path
    "dsdpg-gw0-untrained-models": (
        "dsdpg",
        ("gradient_weight:0.0", "reward_fn:None", "world_model_gradient_steps:0", "world_model_warmup_steps:0"),
    ),
    "dsdpg-auto-scale": ("dsdpg", ("reward_scale:'auto'",)),  # the critic's units as before 2026-12-08
    "dsdpg-per-row-mean": ("dsdpg", ("actor_mean:'per_row'",)),  # the actor's mean as before 2026-12-08
    # The defaults before 2026-12-08, for paired comparisons: max-sliced V-statistic loss, the cVAE's reward, the
    # standardised noise held in the hybrid Jacobian, the actor's mean over 10 draws per row, reward_scale "auto".
    "dsdpg-2026-12-07": (
        "dsdpg",
        (
            "loss:'msmmd'",
            "unbiased_mmd:False",
            "reward_fn:None",
            "hybrid_latent:'standard'",
            "actor_mean:'per_row'",
            "reward_scale:'auto'",
        ),
    ),
}

# The hyperparameters every algorithm of an env gets alike under the matched protocol. ``net_arch`` lives inside
# ``policy_kwargs``; ``noise_type``/``noise_std`` go to the deterministic-actor algorithms only.
SCALAR_SHARED_KEYS = (
    "learning_rate", "batch_size", "gamma", "tau", "buffer_size", "learning_starts", "train_freq", "gradient_steps",
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
    "tau": 0.005,
    "buffer_size": 1_000_000,
    "learning_starts": 1000,
    "train_freq": 1,
    "gradient_steps": 1,
    "net_arch": [256, 256],
    "noise_type": None,
}


class CompareError(ValueError):
    """Bad input of a comparison, found before any run starts."""


def zoo_algorithm(algo: str) -> str:
    """The zoo algorithm (``--algo``) a label of ``--algos`` runs: a variant's, else the label itself."""
    return ALGO_VARIANTS[algo][0] if algo in ALGO_VARIANTS else algo


def variant_params(algo: str) -> tuple[str, ...]:
    """The ``-params`` a variant appends to its runs' (none for a plain algorithm)."""
    return ALGO_VARIANTS[algo][1] if algo in ALGO_VARIANTS else ()


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
    ``algo_params``: ``(algo, "key:value")`` overrides of one algorithm's own arguments, under both protocols
    (``algo`` a label of ``--algos``: an entry for ``dsdpg`` does not reach its variants, which need their own).
    ``protocol``: the protocol used unless ``--protocol`` says otherwise. ``algos``: the labels run unless
    ``--algos`` says otherwise. ``dsdpg_defaults`` (matched protocol): DSDPG and its variants run with DSDPG's own
    defaults on every env, whatever the env's zoo entry tunes (:func:`dsdpg_default_params`), so that a sweep over
    noise levels compares one algorithm, not a tuned entry on one level and the defaults on the others.
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
    algos: tuple[str, ...] = DEFAULT_ALGOS
    dsdpg_defaults: bool = False


# Keys of a DSDPG zoo entry that are not DSDPG's own arguments, or that the matched protocol already writes out.
_NOT_OWN_KEYS = frozenset({"n_timesteps", "policy", "normalize", "env_wrapper", "frame_stack", "callback", *SHARED_KEYS})


def dsdpg_default_params(entry: dict[str, Any]) -> tuple[str, ...]:
    """
    ``-params`` that put back DSDPG's constructor defaults over what a zoo ``entry`` sets of DSDPG's own arguments:
    each such key at its default, and the entry's ``policy_kwargs`` keys other than ``net_arch`` at the policy's
    defaults (merged key by key by the matched protocol).
    """
    import inspect

    from sb3_dsdpg import DSDPG
    from sb3_dsdpg.policies import DSDPGPolicy

    algo_defaults = {name: p.default for name, p in inspect.signature(DSDPG.__init__).parameters.items()}
    policy_defaults = {name: p.default for name, p in inspect.signature(DSDPGPolicy.__init__).parameters.items()}
    params = [
        f"{key}:{algo_defaults[key]!r}"
        for key in entry
        if key not in _NOT_OWN_KEYS and key != "policy_kwargs" and key in algo_defaults
    ]
    kwargs = as_kwargs(entry.get("policy_kwargs"), "a zoo entry")
    pinned = {key: policy_defaults[key] for key in kwargs if key != "net_arch" and key in policy_defaults}
    if pinned:
        params.append("policy_kwargs:dict(" + ", ".join(f"{k}={_default_text(v)}" for k, v in pinned.items()) + ")")
    return tuple(params)


def _default_text(value: Any) -> str:
    """A policy default as the zoo's namespace writes it (``nn.ReLU`` for an activation class)."""
    if isinstance(value, type) and value.__module__.startswith("torch.nn"):
        return f"nn.{value.__name__}"
    return repr(value)


# The matched values of the CPU suites (cpu-small, noise-sweep, toy-bonus-sweep; reasons and cost: cpu-small's comment).
SMALL_SHARED: tuple[tuple[str, Any], ...] = (
    ("learning_rate", 1e-3),
    ("batch_size", 128),
    ("gamma", 0.98),
    ("tau", 0.005),
    ("buffer_size", 200_000),
    ("learning_starts", 500),
    ("net_arch", [64, 64]),
    ("noise_type", "normal"),
    ("noise_std", 0.1),
    ("train_freq", 1),
    ("gradient_steps", 1),
)
# Their -params under the zoo protocol (as the first cpu-small sweep ran).
SMALL_ZOO_PARAMS = ("learning_starts:500", 'policy_kwargs:"dict(net_arch=[64, 64])"')
# DSDPG's world model at 64x64 too, for DSDPG and each of its variants (a suite's algo_params reach only the labels
# they name; a label not among --algos is left out).
SMALL_ALGO_PARAMS: tuple[tuple[str, str], ...] = tuple(
    (algo, 'world_model_kwargs:"dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])"')
    for algo in ("dsdpg", *ALGO_VARIANTS)
    if zoo_algorithm(algo) == "dsdpg"
)
# The sweeps of the paper's experiments write out the critic noise drawn per batch row (share_critic_noise=False),
# the setting the ladder (docs/ablations.md) found ahead on InvertedDoublePendulum-DynNoise at R2 and R4.
SWEEP_ALGO_PARAMS: tuple[tuple[str, str], ...] = SMALL_ALGO_PARAMS + tuple(
    (algo, 'policy_kwargs:"dict(share_critic_noise=False)"') for algo, _ in SMALL_ALGO_PARAMS
)
SMALL_DESCRIPTION = (
    "matched protocol: lr 1e-3, batch 128, gamma 0.98, tau 0.005, buffer 2e5, learning_starts 500, 64x64 networks "
    "(and DSDPG world model), train_freq 1, gradient_steps 1 and normal action noise 0.1 (deterministic actors) for "
    "every algorithm"
)
IDP_DYN_NOISE = "sb3_dsdpg/InvertedDoublePendulum-DynNoise-v5"
IDP_OBS_NOISE = "sb3_dsdpg/InvertedDoublePendulum-ObsNoise-v5"


SUITES: dict[str, Suite] = {
    # Budgets for a 2-core machine (see README, "Comparing with TD3 and TQC"), matched protocol: every algorithm gets
    # lr 1e-3, batch 128, gamma 0.98, tau 0.005, buffer 2e5, learning_starts 500 (TD3's zoo entry waits 10000 steps,
    # DSDPG's MuJoCo entry 10000: more than these budgets), 64x64 networks, one gradient step per env step, and DSDPG and TD3
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
        params=SMALL_ZOO_PARAMS,
        algo_params=SMALL_ALGO_PARAMS,
        protocol="matched",
        shared=SMALL_SHARED,
        description="Pendulum-v1 and its ObsNoise/DynNoise variants, PointMassBonus (n_bonus=4), "
        "InvertedDoublePendulum-DynNoise-v5, 6000 steps on the Pendulums and 5000 on the others, seeds 0-4; "
        + SMALL_DESCRIPTION,
    ),
    # DSDPG and two of its ablations beside TD3 and TQC as the noise grows, on one task: InvertedDoublePendulum clean,
    # with dynamics noise at the registered sigma 0.1 and at 0.2, with observation noise at the registered
    # U(0.8, 1.2) and at twice its half-width, U(0.6, 1.4) (the levels written out, so that the report names them).
    # The cpu-small settings; 5 envs x 5 algorithms x 3 seeds = 75 runs of 6000 steps. DSDPG and its variants run with
    # DSDPG's defaults on every level (dsdpg_defaults: the tuned DynNoise entry's own values are put back).
    "noise-sweep": Suite(
        envs=(
            EnvSpec("InvertedDoublePendulum-v5", timesteps=6000),
            EnvSpec(IDP_DYN_NOISE, (("sigma", 0.1),), timesteps=6000),
            EnvSpec(IDP_DYN_NOISE, (("sigma", 0.2),), timesteps=6000),
            EnvSpec(IDP_OBS_NOISE, (("low", 0.8), ("high", 1.2)), timesteps=6000),
            EnvSpec(IDP_OBS_NOISE, (("low", 0.6), ("high", 1.4)), timesteps=6000),
        ),
        seeds=(0, 1, 2),
        eval_freq=1000,
        eval_episodes=10,
        params=SMALL_ZOO_PARAMS,
        algo_params=SWEEP_ALGO_PARAMS,
        protocol="matched",
        shared=SMALL_SHARED,
        algos=("dsdpg", "mage", "dsdpg-returns", "td3", "tqc"),
        dsdpg_defaults=True,
        description="InvertedDoublePendulum-v5, its DynNoise at sigma 0.1 and 0.2 and its ObsNoise at U(0.8, 1.2) and "
        "U(0.6, 1.4), 6000 steps, seeds 0-2, dsdpg, mage, dsdpg-returns, td3, tqc; " + SMALL_DESCRIPTION,
    ),
    # The point mass's hidden bonus as its law gets more modes (n_bonus 1, 2, 4, 8), with DSDPG's variants and SAC as a
    # reference; the cpu-small settings; 4 envs x 7 algorithms x 5 seeds = 140 runs of 10000 steps. No zoo entry names
    # this ID: DSDPG and TD3/TQC get the default entries of dsdpg.yml and rl-zoo3's td3.yml/tqc.yml under the shared
    # values.
    "toy-bonus-sweep": Suite(
        envs=tuple(EnvSpec("sb3_dsdpg/PointMassRevealedBonus-v0", (("n_bonus", n),), timesteps=10_000) for n in (1, 2, 4, 8)),
        seeds=(0, 1, 2, 3, 4),
        eval_freq=2000,
        eval_episodes=20,
        params=SMALL_ZOO_PARAMS,
        algo_params=SWEEP_ALGO_PARAMS,
        protocol="matched",
        shared=SMALL_SHARED,
        algos=("dsdpg", "dsdpg-msmmd", "mage", "dsdpg-returns", "td3", "tqc", "sac"),
        description="sb3_dsdpg/PointMassRevealedBonus-v0 with n_bonus 1, 2, 4, 8, 10000 steps, seeds 0-4, dsdpg, "
        "dsdpg-msmmd, mage, dsdpg-returns, td3, tqc, sac; " + SMALL_DESCRIPTION,
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
    """
    One zoo training: an algorithm on an env with a seed, and everything that makes it reproducible.

    ``algo`` is the label of ``--algos`` (a zoo algorithm or a variant of :data:`ALGO_VARIANTS`); ``params`` the
    protocol's ``-params``, to which a variant's own are appended (:attr:`zoo_params`).
    """

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

    @property
    def zoo_algo(self) -> str:
        """The zoo algorithm the run trains (``dsdpg`` for a variant)."""
        return zoo_algorithm(self.algo)

    @property
    def zoo_params(self) -> tuple[str, ...]:
        """The run's ``-params``: the protocol's, then the variant's (last, so they win)."""
        return (*self.params, *variant_params(self.algo))

    def folder(self, out: Path) -> Path:
        """The run's ``-f`` log folder."""
        return out / "logs" / self.name

    def command(self, out: Path) -> list[str]:
        """The ``python -m sb3_dsdpg.train`` command line of this run."""
        command = [
            sys.executable, "-m", "sb3_dsdpg.train",
            "--algo", self.zoo_algo, "--env", self.env.env_id, "--seed", str(self.seed),
            "-n", str(self.timesteps), "-f", str(self.folder(out)),
            "--eval-freq", str(self.eval_freq), "--eval-episodes", str(self.eval_episodes),
            "--n-eval-envs", str(self.n_eval_envs), "--num-threads", "1", "--verbose", "0",
        ]  # fmt: skip
        if self.env.kwargs:
            command += ["--env-kwargs", *(f"{key}:{value!r}" for key, value in self.env.kwargs)]
        if self.zoo_params:
            command += ["-params", *self.zoo_params]
        return command

    def config(self) -> dict[str, Any]:
        """What must match for a finished run to be reused (a variant's: also its zoo algorithm and -params)."""
        config = {
            "algo": self.algo,
            "env_id": self.env.env_id,
            "env_kwargs": dict(self.env.kwargs),
            "seed": self.seed,
            "timesteps": self.timesteps,
            "eval_freq": self.eval_freq,
            "eval_episodes": self.eval_episodes,
            "n_eval_envs": self.n_eval_envs,
            "protocol": self.protocol,
            "params": list(self.zoo_params),
        }
        if self.algo in ALGO_VARIANTS:  # plain algorithms keep the keys of markers written before the variants
            config["zoo_algo"] = self.zoo_algo
        return config


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


# ----------------------------------------------------------------------------------------------------------------------
# Hyperparameters of a run (as the zoo resolves them)
# ----------------------------------------------------------------------------------------------------------------------


def zoo_config_file(algo: str, env_id: str) -> str:
    """
    The hyperparameter file ``python -m sb3_dsdpg.train`` reads for ``algo`` on ``env_id`` (no ``--conf-file``): our
    shipped ``sb3_dsdpg/hyperparams/<algo>.yml`` when it has the env or a default entry, else rl-zoo3's own file.
    """
    from sb3_dsdpg.tools import zoo

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
    from sb3_dsdpg.tools import zoo

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
    from sb3_dsdpg.tools import zoo

    try:
        return eval(text, dict(zoo.EVAL_NAMESPACE))
    except Exception as exc:
        raise CompareError(f"cannot evaluate -params value {text!r}: {type(exc).__name__}: {exc}") from exc


def as_kwargs(value: Any, where: str) -> dict[str, Any]:
    """A ``policy_kwargs`` value (mapping, ``"dict(...)"`` string or None) as a dict."""
    from sb3_dsdpg.tools import zoo

    if value is None:
        return {}
    kwargs = zoo._as_dict(value)
    if kwargs is None:
        raise CompareError(f"{where}: policy_kwargs {value!r} is not a mapping or a 'dict(...)' string")
    return kwargs


def resolved_hyperparams(run: Run) -> dict[str, Any]:
    """What the zoo makes of ``run``: its zoo entry with the run's ``-params`` applied (values evaluated)."""
    _, _, hyperparams = zoo_entry(run.zoo_algo, run.env.env_id)
    for item in run.zoo_params:
        key, text = split_param(item)
        hyperparams[key] = evaluate(text)
    return hyperparams


# ----------------------------------------------------------------------------------------------------------------------
# Finished runs
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
