"""rl-zoo3 integration of DSDPG: its place in the zoo's tables, its optuna sampler, and the checks of zoo input.

This module owns everything that lets ``rl_zoo3`` (2.9) train, tune, replay and plot DSDPG without a fork:

- :func:`register` adds ``dsdpg`` to ``rl_zoo3.utils.ALGOS``, ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER`` and
  ``HYPERPARAMS_CONVERTER`` (in place: the zoo reads those dicts at call time, rebinding them would not work);
- :func:`sample_dsdpg_params` / :func:`convert_dsdpg_params`: the ``-optimize`` search space of DSDPG's own arguments;
- :class:`DSDPGExperimentManager`, the zoo's ``ExperimentManager`` with our shipped ``hyperparams/<algo>.yml`` as
  default config, the YAML checks of :func:`check_hyperparams`, ``-i`` continuing the step count, and fixes of two
  zoo bugs (``--trial-id 0`` ignored; a stored trial with ``noise_type: None`` crashing);
- :class:`OneSlotBufferDSDPG`, what ``enjoy``/``record_video`` load (a one-slot replay buffer, as the zoo does for
  its own off-policy algorithms);
- :func:`run_zoo_module` / :func:`redirect_record_video` to run the zoo's ``__main__``-only scripts, and
  :func:`save_zoo_plots` to save the figures of the zoo's plot scripts.

The commands ``python -m sb3_dsdpg.train|enjoy|record_video|zoo`` (:mod:`sb3_dsdpg.tools.zoo_commands`) are built on
this module. It needs the ``zoo`` extra; the hyperparameter files stay package data of ``sb3_dsdpg/hyperparams/``.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import inspect
import runpy
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.noise import NormalActionNoise
from torch import nn

import sb3_dsdpg.envs  # registers the benchmark env IDs
from sb3_dsdpg.dsdpg import DSDPG, WORLD_MODEL_CLASSES
from sb3_dsdpg.tools.extras import needs

with needs("zoo", "sb3_dsdpg's rl-zoo3 integration"):
    import optuna
    import rl_zoo3  # noqa: F401  (applies the zoo's gym patches before anything else of it is imported)
    import yaml
    from rl_zoo3.exp_manager import ExperimentManager
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
    from rl_zoo3.utils import ALGOS, get_class_by_name

ALGO = "dsdpg"
# The shipped zoo files, package data of sb3_dsdpg (``hyperparams/`` at the repository root links there).
HYPERPARAMS_DIR = Path(__file__).resolve().parents[1] / "hyperparams"

# Keys of a zoo YAML entry that the ExperimentManager consumes itself (never passed to the algorithm).
ZOO_KEYS = frozenset(
    {
        "n_timesteps",
        "n_envs",
        "normalize",
        "normalize_kwargs",
        "env_wrapper",
        "vec_env_wrapper",
        "frame_stack",
        "callback",
        "monitor_kwargs",
        "env_kwargs",
        "noise_type",
        "noise_std",
    }
)
# Constructor arguments the zoo sets from its command line: an entry must not set them too.
SET_BY_ZOO = frozenset({"env", "tensorboard_log", "seed", "verbose", "device", "_init_setup_model"})
# Names ``eval`` may use in a string-valued ``policy_kwargs`` / ``world_model_kwargs`` (as the zoo allows).
EVAL_NAMESPACE: dict[str, Any] = {"nn": nn, "th": th, "np": np, "dict": dict}

# DSDPG arguments that fix the shape of what is saved: on ``-i`` the saved model's values are kept.
STRUCTURAL_DSDPG_ARGUMENTS = ("world_model", "world_model_kwargs", "sobolev", "distributional", "sobolev_inputs")

NET_ARCHS = {"small": [64, 64], "medium": [256, 256]}
WORLD_MODEL_ARCHS = {"small": [64, 64], "medium": [256, 256]}


class ZooConfigError(ValueError):
    """A zoo input (env ID, YAML entry, ``-params`` override, stored trial) that cannot work; raised before training."""


# ----------------------------------------------------------------------------------------------------------------------
# Registration
# ----------------------------------------------------------------------------------------------------------------------


class OneSlotBufferDSDPG(DSDPG):
    """
    :class:`DSDPG` as ``enjoy`` and ``record_video`` load it: with a one-slot replay buffer (and without
    ``optimize_memory_usage``) unless told otherwise, as the zoo does for TD3, SAC and TQC. Only for playback.
    """

    @classmethod
    def load(cls, path: Any, env: Any = None, device: th.device | str = "auto", **kwargs: Any) -> DSDPG:  # type: ignore[override]
        kwargs.setdefault("buffer_size", 1)
        kwargs.setdefault("optimize_memory_usage", False)
        return super().load(path, env=env, device=device, **kwargs)


def register(playback: bool = False) -> None:
    """
    Add ``dsdpg`` to rl-zoo3's algorithm, sampler and converter tables (in place; calling it again is harmless).

    :param playback: register :class:`OneSlotBufferDSDPG` (for ``enjoy``/``record_video``) instead of :class:`DSDPG`
    """
    ALGOS[ALGO] = OneSlotBufferDSDPG if playback else DSDPG
    HYPERPARAMS_SAMPLER[ALGO] = sample_dsdpg_params
    HYPERPARAMS_CONVERTER[ALGO] = convert_dsdpg_params


# ----------------------------------------------------------------------------------------------------------------------
# Hyperparameter search
# ----------------------------------------------------------------------------------------------------------------------


def convert_dsdpg_params(params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the raw values of a DSDPG trial (``trial.params``) into hyperparameters of a YAML entry.

    Used by ``--trial-id`` (the zoo merges the result into the entry) and by :func:`sample_dsdpg_params`.
    Action noise stays as ``noise_type``/``noise_std``; ``noise_type: None`` means no exploration noise.

    :param params: sampled values, as stored in the optuna study
    :return: hyperparameters (``gamma``, ``batch_size``, ``policy_kwargs``, ``world_model_kwargs``, ...)
    """
    raw = dict(params)
    hyperparams: dict[str, Any] = {}
    if "one_minus_gamma" in raw:
        hyperparams["gamma"] = 1.0 - raw.pop("one_minus_gamma")
    if "batch_size_pow" in raw:
        hyperparams["batch_size"] = 2 ** raw.pop("batch_size_pow")
    policy_kwargs: dict[str, Any] = {}
    if "net_arch" in raw:
        policy_kwargs["net_arch"] = list(NET_ARCHS[raw.pop("net_arch")])
    if "critic_noise_dim" in raw:
        policy_kwargs["critic_noise_dim"] = raw.pop("critic_noise_dim")
    if policy_kwargs:
        hyperparams["policy_kwargs"] = policy_kwargs
    world_model_kwargs: dict[str, Any] = {}
    # Trials from before the RealNVP choice have no "world_model": they sampled the cVAE.
    realnvp = raw.get("world_model", "cvae") == "realnvp"
    if "world_model_size" in raw:
        arch = WORLD_MODEL_ARCHS[raw.pop("world_model_size")]
        if realnvp:
            world_model_kwargs["hidden_arch"] = list(arch)
        else:
            world_model_kwargs.update(encoder_arch=list(arch), decoder_arch=list(arch), prior_arch=list(arch))
    if "world_model_latent_dim" in raw:
        world_model_kwargs["latent_dim"] = raw.pop("world_model_latent_dim")
    if "world_model_n_couplings" in raw:
        world_model_kwargs["n_couplings"] = raw.pop("world_model_n_couplings")
    if world_model_kwargs:
        hyperparams["world_model_kwargs"] = world_model_kwargs
    her_kwargs = {key: raw.pop(key) for key in ("n_sampled_goal", "goal_selection_strategy") if key in raw}
    if her_kwargs:
        hyperparams["replay_buffer_kwargs"] = her_kwargs
    # learning_rate, tau, train_freq, gradient_steps, n_samples, ..., world_model, sobolev_directions, critic_actions,
    # reward_scale, normalize_samples, world_model_warmup_steps (DSDPG's own values), noise_type, noise_std
    hyperparams.update(raw)
    return hyperparams


def sample_dsdpg_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Optuna sampler of DSDPG (registered as ``HYPERPARAMS_SAMPLER["dsdpg"]``).

    The TD3 part (gamma, learning rate, batch size, tau, update schedule, exploration noise, network size) follows the
    zoo's TD3 sampler with CPU-sized ranges; the rest is DSDPG's own: ``n_samples``, ``n_target_model_draws``,
    ``top_samples_to_drop_per_critic``, ``kernel_bandwidth``, the critic noise size, the world model (cVAE or RealNVP,
    its size, the cVAE's latent size or the flow's couplings, learning rate and updates per critic update), the
    Sobolev estimator (``sobolev_directions``, searched only when ``|A| > 1``), where the critic learns
    (``critic_actions``), the scale of the loss (``reward_scale``, ``normalize_samples``) and the world model's warm-up.
    Every combination is valid (the draws divide every ``n_samples``, at most 2 of at least 4 samples are dropped,
    and ``sobolev_directions <= |A|``) as long as the entry keeps ``sobolev=True`` and ``sobolev_inputs="action"`` or
    ``"state_action"`` (the defaults); the parameters that only exist for one choice are sampled only for it
    (conditional parameters: ``world_model_latent_dim`` for the cVAE, ``world_model_n_couplings`` for RealNVP).

    :param trial: the optuna trial
    :param n_actions: action dimension (for the exploration noise and the range of ``sobolev_directions``)
    :param n_envs: number of envs (unused: one env step per ``train_freq`` unit, as the zoo)
    :param additional_args: ``using_her_replay_buffer`` and ``her_kwargs``, as the zoo passes them
    :return: keyword arguments for :class:`DSDPG`
    """
    trial.suggest_float("one_minus_gamma", 1e-4, 0.05, log=True)
    trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True)
    batch_size_pow = trial.suggest_int("batch_size_pow", 6, 8)  # 64 .. 256
    trial.suggest_float("tau", 1e-3, 0.02, log=True)
    # Updates per env step (gradient_steps / train_freq) is the largest single factor we measured
    # (docs/compare.md, "Updates per env step": 4 per env step took Pendulum-DynNoise from -436 to -137, at about
    # 4x the wall time; the paper runs 10). Kept within 1/4 .. 4 for cost: at 8 per env step one trial with 256x256
    # networks takes most of an hour on a CPU core, i.e. most of a two-hour study of two workers.
    trial.suggest_categorical("train_freq", [1, 2, 4])
    trial.suggest_categorical("gradient_steps", [1, 2, 4])
    # Exploration as the zoo's TD3 sampler: normal noise (MAGE's sigma 0.1 inside the range) or none.
    noise_type = trial.suggest_categorical("noise_type", ["normal", None])
    noise_std = trial.suggest_float("noise_std", 0.05, 0.5)
    trial.suggest_categorical("net_arch", list(NET_ARCHS))  # 64x64 (quickstart) or 256x256 (MAGE, ours): cost
    trial.suggest_categorical("critic_noise_dim", [4, 8, 16])  # the generative critic's noise size, around ours
    # Nothing below is dropped: no page of docs/ shows one of these not to matter (the ablations at 4,000 and 8,000
    # steps say their gaps are within the seed spread, i.e. unmeasured, not irrelevant).
    trial.suggest_categorical("n_samples", [4, 8, 10, 16])  # around the paper's 10; 16 for cost (pairwise kernels)
    trial.suggest_categorical("n_target_model_draws", [1, 2])  # ours 1; each draw carries its own tangent passes
    trial.suggest_int("top_samples_to_drop_per_critic", 0, 2)  # TQC-style truncation of the paper, ours 1
    # The paper's h = 100, two decades below and one above (with normalize_samples h means the same on every task).
    trial.suggest_float("kernel_bandwidth", 1.0, 1000.0, log=True)
    # World model: the paper's cVAE or its RealNVP ablation. RealNVP is 1.3-1.8x the cost and scored -254 +- 69 vs
    # -197 +- 62 at 8,000 steps on Pendulum-DynNoise (docs/ablations.md), within the seed spread: searched, not dropped.
    world_model = trial.suggest_categorical("world_model", ["cvae", "realnvp"])
    # Hidden widths of the world model's networks (cVAE: encoder, decoder, prior; RealNVP: hidden_arch of every
    # coupling): 64x64, the quickstart's and ablations' size, or 256x256, the default of both models (cost).
    trial.suggest_categorical("world_model_size", list(WORLD_MODEL_ARCHS))
    if world_model == "cvae":
        trial.suggest_categorical("world_model_latent_dim", [4, 8, 16])  # around our default 8
    else:
        # RealNVPWorldModel's default is 4 couplings; 2 is cheaper, 6 more expressive (each costs one MLP pass).
        trial.suggest_categorical("world_model_n_couplings", [2, 4, 6])
    trial.suggest_float("world_model_learning_rate", 1e-4, 3e-3, log=True)  # as the actor and critic's
    trial.suggest_categorical("world_model_gradient_steps", [1, 2])  # ours 1; 2 doubles the world model's cost
    # None: the full gradient, the paper's estimator, |A| tangent passes per draw (plus the return); k: k random
    # directional derivatives (ours), k passes. 1 direction learned as well on Reacher but worse on the point mass
    # (docs/ablations.md), so both stay; k <= 4 for cost, and only when |A| > 1 (with |A| = 1 one direction is the
    # full gradient up to a sign, so the parameter is not sampled and the default None is used).
    if n_actions > 1:
        trial.suggest_categorical("sobolev_directions", [None, *range(1, min(4, n_actions) + 1)])
    # "policy" (MAGE's loop, the default with a world model) removed the seeds that fell apart on two Pendulum tasks,
    # level elsewhere; "replay" is TD3's and was never better (docs/ablations.md, "Where the critic learns"): the
    # evidence is 3-4 seeds on three tasks, measured before the units and warm-up existed, so both stay.
    trial.suggest_categorical("critic_actions", ["policy", "replay"])
    # The scale of the loss: reward_scale "auto" (the replay's reward std) or 1.0 (off), normalize_samples on or off.
    # Measured only all together with the warm-up (docs/ablations.md, "Units and the world model's warm-up": better on
    # Pendulum-DynNoise in 2 of 3 seeds, level elsewhere; "the three switches were not separated"), so each is searched.
    trial.suggest_categorical("reward_scale", ["auto", 1.0])
    trial.suggest_categorical("normalize_samples", [True, False])
    # World-model updates before the first critic update: none, or "auto" (learning_starts, one per transition
    # collected by then); same evidence as the units above. Its cost is paid once.
    trial.suggest_categorical("world_model_warmup_steps", [0, "auto"])

    hyperparams = convert_dsdpg_params(trial.params)
    trial.set_user_attr("gamma", hyperparams["gamma"])
    trial.set_user_attr("batch_size", 2**batch_size_pow)
    # The YAML noise was already turned into an object by the time a trial runs: give the trial's own (or none).
    del hyperparams["noise_type"], hyperparams["noise_std"]
    hyperparams["action_noise"] = (
        NormalActionNoise(mean=np.zeros(n_actions), sigma=noise_std * np.ones(n_actions)) if noise_type == "normal" else None
    )
    if additional_args.get("using_her_replay_buffer"):
        her_kwargs = dict(additional_args.get("her_kwargs", {}))
        her_kwargs["n_sampled_goal"] = trial.suggest_int("n_sampled_goal", 1, 5)
        her_kwargs["goal_selection_strategy"] = trial.suggest_categorical(
            "goal_selection_strategy", ["final", "episode", "future"]
        )
        hyperparams["replay_buffer_kwargs"] = her_kwargs
    return hyperparams


# ----------------------------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------------------------


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_env_id(env_id: str) -> None:
    """
    Fail unless ``env_id`` is in gymnasium's registry (sb3_dsdpg's IDs are registered on import).

    :param env_id: a gymnasium ID, e.g. ``sb3_dsdpg/Pendulum-DynNoise-v1``
    :raises ZooConfigError: naming the ID and the closest registered one
    """
    if env_id in gym.registry:
        return
    ours = sb3_dsdpg.envs.registered_ids()
    raise ZooConfigError(
        f"unknown env ID {env_id!r}: it is not in gymnasium's registry{_did_you_mean(env_id, list(gym.registry))}. "
        f"sb3_dsdpg registers {', '.join(ours)}; other packages' IDs need --gym-packages <module>."
    )


def _accepted_arguments(callable_: Callable) -> set[str] | None:
    """Keyword arguments a class or function accepts, or None when it takes ``**kwargs``."""
    parameters = inspect.signature(callable_).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return {name for name, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL} - {"self"}


def _as_dict(value: Any) -> dict[str, Any] | None:
    """A mapping, or a string the zoo would ``eval`` to one; None if it cannot be read here."""
    if isinstance(value, str):
        try:
            value = eval(value, dict(EVAL_NAMESPACE))
        except Exception:
            return None
    return dict(value) if isinstance(value, dict) else None


def _resolve_policy(algo_class: type, policy: Any) -> type | None:
    if isinstance(policy, type):
        return policy
    if not isinstance(policy, str):
        return None
    if policy in getattr(algo_class, "policy_aliases", {}):
        return algo_class.policy_aliases[policy]
    if "." in policy:
        try:
            return get_class_by_name(policy)
        except (ImportError, AttributeError, ValueError):
            return None
    return None


def check_hyperparams(algo: str, hyperparams: dict[str, Any], where: str, sources: dict[str, str] | None = None) -> None:
    """
    Fail if a zoo hyperparameter entry holds an argument the algorithm (or its policy, or DSDPG's world model)
    does not accept, or one the zoo sets from its command line.

    :param algo: key of the algorithm in ``rl_zoo3.utils.ALGOS`` (``dsdpg``, ``td3``, ``tqc``, ...)
    :param hyperparams: the entry (after ``-params`` overrides), with the zoo's own keys still in it
    :param where: how to name the entry in the message, e.g. ``entry 'Pendulum-v1' of hyperparams/dsdpg.yml``
    :param sources: where a key came from when not from the entry (e.g. ``{"n_sample": "-params"}``)
    :raises ZooConfigError: naming the entry (or override) and the argument, with the closest accepted name
    """
    sources = sources or {}
    if algo == ALGO and ALGO not in ALGOS:
        register()
    algo_class = ALGOS[algo]
    name = algo_class.__name__.replace("OneSlotBuffer", "")

    def origin(key: str) -> str:
        return sources.get(key, where)

    accepted = _accepted_arguments(algo_class.__init__)
    if accepted is not None:
        for key in hyperparams:
            if key in ZOO_KEYS:
                continue
            if key in SET_BY_ZOO:
                raise ZooConfigError(
                    f"{origin(key)}: argument {key!r} is set by the zoo from its command line "
                    "(--seed, --device, -tb, --verbose, --env); remove it from the entry."
                )
            if key not in accepted:
                options = sorted((accepted - SET_BY_ZOO) | ZOO_KEYS)
                raise ZooConfigError(f"{origin(key)}: {name} does not accept argument {key!r}{_did_you_mean(key, options)}.")

    policy = hyperparams.get("policy", "MlpPolicy")
    policy_class = _resolve_policy(algo_class, policy)
    if isinstance(policy, str) and "." not in policy and policy_class is None:
        aliases = sorted(getattr(algo_class, "policy_aliases", {}))
        raise ZooConfigError(f"{origin('policy')}: {name} has no policy {policy!r}; use one of {aliases}.")
    policy_kwargs = _as_dict(hyperparams.get("policy_kwargs", {}))
    if policy_class is not None and policy_kwargs:
        accepted_policy = _accepted_arguments(policy_class.__init__)
        if accepted_policy is not None:
            accepted_policy -= {"observation_space", "action_space", "lr_schedule"}
            for key in policy_kwargs:
                if key not in accepted_policy:
                    raise ZooConfigError(
                        f"{origin('policy_kwargs')}: policy_kwargs of {name} has no argument {key!r}"
                        f"{_did_you_mean(key, sorted(accepted_policy))}."
                    )
    if issubclass(algo_class, DSDPG) and "world_model_kwargs" in hyperparams:
        world_model_kwargs = _as_dict(hyperparams["world_model_kwargs"])
        if world_model_kwargs is None:
            raise ZooConfigError(
                f"{origin('world_model_kwargs')}: world_model_kwargs must be a mapping or a 'dict(...)' string, "
                f"got {hyperparams['world_model_kwargs']!r}."
            )
        world_model = hyperparams.get("world_model", "cvae")
        world_model_class = WORLD_MODEL_CLASSES.get(world_model)  # an unknown kind is refused by DSDPG itself
        accepted_wm = _accepted_arguments(world_model_class.__init__) if world_model_class is not None else None
        if accepted_wm is not None:
            accepted_wm -= {"obs_dim", "action_dim"}
            for key in world_model_kwargs:
                if key not in accepted_wm:
                    raise ZooConfigError(
                        f"{origin('world_model_kwargs')}: world_model_kwargs of DSDPG's {world_model!r} world model "
                        f"has no argument {key!r}{_did_you_mean(key, sorted(accepted_wm))}."
                    )


def read_entries(path: str | Path) -> dict[str, dict[str, Any]]:
    """
    The entries of a zoo hyperparameter file (YAML anchors and merges resolved).

    :param path: a ``.yml`` file
    :return: env ID (or ``default``) to entry
    """
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def default_config(algo: str, env_id: str) -> str | None:
    """
    Our shipped ``hyperparams/<algo>.yml`` if it has an entry for ``env_id`` (or a ``default`` entry), else None
    (the zoo then uses its own file, so ``td3`` on a task we do not ship still gets the zoo's values).

    :param algo: algorithm key
    :param env_id: gymnasium ID
    :return: path of the file, or None
    """
    path = HYPERPARAMS_DIR / f"{algo}.yml"
    if not path.is_file():
        return None
    entries = read_entries(path)
    return str(path) if env_id in entries or "default" in entries else None


# ----------------------------------------------------------------------------------------------------------------------
# Experiment manager
# ----------------------------------------------------------------------------------------------------------------------


class DSDPGExperimentManager(ExperimentManager):
    """
    rl-zoo3's ``ExperimentManager`` as ``python -m sb3_dsdpg.train`` uses it (for every algorithm, not only DSDPG):

    - without ``--conf-file``, the shipped ``sb3_dsdpg/hyperparams/<algo>.yml`` when it has the env (or a default);
    - every entry (with its ``-params`` overrides and a loaded trial) is checked by :func:`check_hyperparams` before
      anything is built, and an error while building the model names the entry;
    - ``-i`` continues the step count (``reset_num_timesteps=False``): logs, checkpoints and ``learning_starts``
      go on from the saved model instead of restarting at 0;
    - ``--trial-id 0`` is applied (the zoo skips it as falsy) and a trial with ``noise_type: None`` trains without
      noise instead of passing ``noise_std`` to the constructor;
    - a trial whose DSDPG losses turn non-finite is pruned, as the zoo prunes NaN errors of its own algorithms.
    """

    def __init__(self, args: argparse.Namespace, algo: str, env_id: str, *pos: Any, config: str | None = None, **kw: Any):
        super().__init__(args, algo, env_id, *pos, config=config or default_config(algo, env_id), **kw)
        if self.trial_id is not None and not (self.storage and self.study_name):
            raise ZooConfigError("--trial-id needs --storage and --study-name (the study the trial is read from).")

    def _entry_name(self) -> str:
        gym_id = self.env_name.gym_id
        if self.config.endswith((".yml", ".yaml")):
            entries = read_entries(self.config)
            if gym_id not in entries:
                return "atari" if self._is_atari else "default"
        return gym_id

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            hyperparams, saved_hyperparams = super().read_hyperparameters()
        except ValueError as exc:
            raise ZooConfigError(str(exc)) from exc
        sources = {key: "-params override" for key in self.custom_hyperparams or {}}
        if self.storage and self.study_name and self.trial_id == 0:
            trial_hyperparams = self.load_trial(self.storage, self.study_name, 0)
            print(f"Applying trial 0 of study {self.study_name!r}: {trial_hyperparams}")
            hyperparams.update(trial_hyperparams)
            hyperparams.update(self.custom_hyperparams or {})
            saved_hyperparams = OrderedDict((key, hyperparams[key]) for key in sorted(hyperparams))
        if self.storage and self.study_name and self.trial_id is not None:
            sources = {
                **{key: f"trial {self.trial_id} of study {self.study_name!r}" for key in self._trial_keys()},
                **sources,
            }
        check_hyperparams(self.algo, hyperparams, f"entry {self._entry_name()!r} of {self.config}", sources)
        return hyperparams, saved_hyperparams

    def _trial_keys(self) -> list[str]:
        try:
            return list(self.load_trial(self.storage, self.study_name, self.trial_id))  # type: ignore[arg-type]
        except Exception:
            return []

    def _preprocess_hyperparams(self, hyperparams: dict[str, Any]) -> tuple:
        if isinstance(hyperparams.get("world_model_kwargs"), str):  # the zoo evaluates policy_kwargs strings only
            hyperparams["world_model_kwargs"] = _as_dict(hyperparams["world_model_kwargs"])
        return super()._preprocess_hyperparams(hyperparams)

    def _preprocess_action_noise(self, hyperparams: dict[str, Any], saved_hyperparams: dict[str, Any], env: Any) -> dict:
        if hyperparams.get("noise_type") is None:
            # ``noise_type: None`` (from a stored trial) means no noise; the zoo would pass noise_std on and crash.
            hyperparams.pop("noise_type", None)
            hyperparams.pop("noise_std", None)
        return super()._preprocess_action_noise(hyperparams, saved_hyperparams, env)

    def setup_experiment(self) -> Any:
        try:
            return super().setup_experiment()
        except ZooConfigError:
            raise
        except (TypeError, ValueError) as exc:
            overrides = f" and -params {sorted(self.custom_hyperparams)}" if self.custom_hyperparams else ""
            raise ZooConfigError(
                f"{self.algo} on {self.env_name.gym_id} with entry {self._entry_name()!r} of {self.config}{overrides}: {exc}"
            ) from exc

    def _load_pretrained_agent(self, hyperparams: dict[str, Any], env: Any) -> Any:
        if issubclass(ALGOS[self.algo], DSDPG):
            # As the zoo drops policy_kwargs, the saved model's structure wins over the entry: its world model's
            # shape and kind, and whether it has one at all (``world_model`` would also overwrite the module, which
            # DSDPG stores under that name while the constructor's string is ``world_model_name``).
            for key in STRUCTURAL_DSDPG_ARGUMENTS:
                hyperparams.pop(key, None)
        return super()._load_pretrained_agent(hyperparams, env)

    def learn(self, model: Any) -> None:
        if not self.continue_training:
            super().learn(model)
            return
        model.learn = functools.partial(model.learn, reset_num_timesteps=False)
        try:
            super().learn(model)
        finally:
            del model.learn

    def objective(self, trial: optuna.Trial) -> float:
        try:
            return super().objective(trial)
        except RuntimeError as exc:
            if "Non-finite" not in str(exc):
                raise
            print(exc)
            raise optuna.TrialPruned() from exc


# ----------------------------------------------------------------------------------------------------------------------
# Running the zoo's scripts
# ----------------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def patched_attribute(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``owner.name`` to ``value`` for the duration of the block."""
    previous = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, previous)


@contextlib.contextmanager
def argv(args: Sequence[str], prog: str) -> Iterator[None]:
    """Run a block with ``sys.argv = [prog, *args]`` (the zoo's scripts parse ``sys.argv``)."""
    previous = sys.argv
    sys.argv = [prog, *args]
    try:
        yield
    finally:
        sys.argv = previous


def run_zoo_module(module: str, args: Sequence[str]) -> None:
    """
    Run one of the zoo's ``__main__``-only scripts (``rl_zoo3.record_video``, ``rl_zoo3.record_training``) in this
    process, so that it sees ``dsdpg`` in the tables.

    :param module: module name
    :param args: its command-line arguments
    """
    with argv(args, module):
        runpy.run_module(module, run_name="__main__", alter_sys=True)


def record_video_command(command: Sequence[str]) -> list[str]:
    """
    ``record_training`` starts ``python -m rl_zoo3.record_video ...``, which knows no ``dsdpg``: the same command
    with this interpreter and ``sb3_dsdpg.record_video``. Other commands are returned unchanged.

    :param command: the argument list given to ``subprocess.call``
    :return: the argument list to run
    """
    command = list(command)
    if len(command) >= 3 and command[1:3] == ["-m", "rl_zoo3.record_video"]:
        return [sys.executable, "-m", "sb3_dsdpg.record_video", *command[3:]]
    return command


@contextlib.contextmanager
def redirect_record_video() -> Iterator[None]:
    """Within the block, ``subprocess.call`` of the zoo's ``record_video`` runs ours (see :func:`record_video_command`)."""
    call = subprocess.call

    def call_ours(command: Any, *args: Any, **kwargs: Any) -> int:
        if isinstance(command, (list, tuple)):
            command = record_video_command(command)
        return call(command, *args, **kwargs)

    with patched_attribute(subprocess, "call", call_ours):
        yield


def save_zoo_plots(script: str, args: Sequence[str], output: str) -> list[str]:
    """
    Run one of the zoo's plot scripts (``all_plots``, ``plot_train``, ``plot_from_file``) headless and save the
    figures it would show: the first to ``output``, further ones beside it as ``<stem>_<i><suffix>``.

    :param script: name of the script in ``rl_zoo3.plots``
    :param args: its command-line arguments
    :param output: picture file (its suffix picks the format)
    :return: the files written
    """
    import matplotlib

    matplotlib.use("Agg")
    import importlib

    from matplotlib import pyplot as plt

    module = importlib.import_module(f"rl_zoo3.plots.{script}")
    written: list[str] = []
    target = Path(output)

    def save_open_figures(*_: Any, **__: Any) -> None:
        for number in plt.get_fignums():
            index = len(written)
            path = target if index == 0 else target.with_name(f"{target.stem}_{index}{target.suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            plt.figure(number).savefig(path, dpi=120, bbox_inches="tight")
            written.append(str(path))
        plt.close("all")

    with patched_attribute(plt, "show", save_open_figures), argv(args, f"rl_zoo3.plots.{script}"):
        getattr(module, script)()
    save_open_figures()
    return written
