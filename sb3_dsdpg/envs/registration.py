"""Registration of the benchmark environment IDs (``sb3_dsdpg/<Base>-ObsNoise-v<k>``, ``sb3_dsdpg/<Base>-DynNoise-v<k>``,
``sb3_dsdpg/PointMassBonus-v0``, ``sb3_dsdpg/PointMassRevealedBonus-v0``) with gymnasium, and the entry points that build the
noisy envs.

Registration is idempotent: an ID already in the registry is left alone, so importing or reloading the package
twice neither warns nor fails. This module imports nothing from the rest of ``sb3_dsdpg``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym

from sb3_dsdpg.envs.wrappers import GaussianDynamicsNoise, MultiplicativeObservationNoise

NAMESPACE = "sb3_dsdpg"
BASE_ENV_IDS: tuple[str, ...] = (
    "Ant-v5",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Humanoid-v5",
    "InvertedDoublePendulum-v5",
    "Pendulum-v1",
)
POINT_MASS_ID = f"{NAMESPACE}/PointMassBonus-v0"
REVEALED_BONUS_ID = f"{NAMESPACE}/PointMassRevealedBonus-v0"
POINT_MASS_MAX_EPISODE_STEPS = 50  # both point masses


def noisy_env_id(base_id: str, kind: str) -> str:
    """
    ID of the noisy variant of a base env, e.g. ``"HalfCheetah-v5", "ObsNoise"`` gives ``"sb3_dsdpg/HalfCheetah-ObsNoise-v5"``.

    :param base_id: gymnasium ID with a version, ``<Name>-v<k>``
    :param kind: ``"ObsNoise"`` or ``"DynNoise"``
    :return: the namespaced ID, which keeps the base's version
    """
    name, sep, version = base_id.rpartition("-v")
    if not sep or not version.isdigit():
        raise ValueError(f"Expected a versioned base ID like 'Hopper-v5', got {base_id!r}")
    return f"{NAMESPACE}/{name}-{kind}-v{version}"


def _make_base(base_id: str, kwargs: dict[str, Any]) -> gym.Env:
    """
    Build the base env without the wrappers ``gymnasium.make`` adds (time limit, order enforcing, env checker):
    the outer ``make`` of the registered noisy ID adds them around the noise wrapper, which avoids a double
    ``TimeLimit`` while the time limit stays visible on the registered spec.
    """
    bare_spec = dataclasses.replace(gym.spec(base_id), max_episode_steps=None, order_enforce=False, disable_env_checker=True)
    return gym.make(bare_spec, **kwargs)


def make_obs_noise_env(base_id: str, low: float = 0.8, high: float = 1.2, **kwargs: Any) -> gym.Env:
    """
    Entry point of ``sb3_dsdpg/<Base>-ObsNoise-v<k>``: the base env with :class:`MultiplicativeObservationNoise`.

    :param base_id: gymnasium ID of the base env
    :param low: lower end of the noise factor's range
    :param high: upper end of the noise factor's range
    :param kwargs: passed on to the base env (e.g. ``render_mode``, ``ctrl_cost_weight``)
    :return: the wrapped env (``gymnasium.make`` adds the time limit and checkers around it)
    """
    return MultiplicativeObservationNoise(_make_base(base_id, kwargs), low=low, high=high)


def make_dyn_noise_env(base_id: str, sigma: float = 0.1, **kwargs: Any) -> gym.Env:
    """
    Entry point of ``sb3_dsdpg/<Base>-DynNoise-v<k>``: the base env with :class:`GaussianDynamicsNoise`.

    :param base_id: gymnasium ID of the base env
    :param sigma: standard deviation of the velocity noise
    :param kwargs: passed on to the base env (e.g. ``render_mode``, ``ctrl_cost_weight``)
    :return: the wrapped env (``gymnasium.make`` adds the time limit and checkers around it)
    """
    return GaussianDynamicsNoise(_make_base(base_id, kwargs), sigma=sigma)


def _register_once(env_id: str, **spec: Any) -> bool:
    if env_id in gym.registry:
        return False
    gym.register(env_id, **spec)
    return True


def register_envs() -> list[str]:
    """
    Register every benchmark ID that is not registered yet (bases missing from gymnasium's registry are skipped).

    :return: all IDs of the package present in the registry, see :func:`registered_ids`
    """
    for base_id in BASE_ENV_IDS:
        if base_id not in gym.registry:
            continue
        base_spec = gym.spec(base_id)
        common = dict(max_episode_steps=base_spec.max_episode_steps, reward_threshold=base_spec.reward_threshold)
        _register_once(
            noisy_env_id(base_id, "ObsNoise"),
            entry_point=f"{__name__}:make_obs_noise_env",
            kwargs={"base_id": base_id, "low": 0.8, "high": 1.2},
            **common,
        )
        _register_once(
            noisy_env_id(base_id, "DynNoise"),
            entry_point=f"{__name__}:make_dyn_noise_env",
            kwargs={"base_id": base_id, "sigma": 0.1},
            **common,
        )
    _register_once(
        POINT_MASS_ID,
        entry_point="sb3_dsdpg.envs.point_mass:PointMassBonusEnv",
        max_episode_steps=POINT_MASS_MAX_EPISODE_STEPS,
        kwargs={"n_bonus": 4},
    )
    _register_once(
        REVEALED_BONUS_ID,
        entry_point="sb3_dsdpg.envs.revealed_bonus:RevealedBonusPointMassEnv",
        max_episode_steps=POINT_MASS_MAX_EPISODE_STEPS,
        kwargs={"n_bonus": 4},
    )
    return registered_ids()


def registered_ids() -> list[str]:
    """
    IDs registered by the package: for every base, its ObsNoise then its DynNoise ID, then the hidden-bonus point
    mass (v0), then the revealed-bonus point mass (v1).

    :return: the IDs present in gymnasium's registry, in that order
    """
    candidates = [noisy_env_id(base_id, kind) for base_id in BASE_ENV_IDS for kind in ("ObsNoise", "DynNoise")]
    candidates += [POINT_MASS_ID, REVEALED_BONUS_ID]
    return [env_id for env_id in candidates if env_id in gym.registry]
