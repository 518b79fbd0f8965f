"""Benchmark environments of sb3_dsdpg: the noise wrappers, the hidden-bonus point mass and its revealed-bonus
variant, their gymnasium IDs, and the known reward functions of the tasks that have one.

Importing this module registers ``sb3_dsdpg/<Base>-ObsNoise-v<k>`` and ``sb3_dsdpg/<Base>-DynNoise-v<k>`` for the
bases Ant-v5, HalfCheetah-v5, Hopper-v5, Walker2d-v5, Humanoid-v5, InvertedDoublePendulum-v5 and Pendulum-v1,
``sb3_dsdpg/PointMassBonus-v0`` (hidden bonus) and ``sb3_dsdpg/PointMassRevealedBonus-v0`` (bonus revealed by the first step)
so rl-zoo3 can use ``--gym-packages sb3_dsdpg.envs``. It is a low-level module: it imports nothing from the rest of
``sb3_dsdpg`` (no torch).
"""

from sb3_dsdpg.envs.point_mass import PointMassBonusEnv
from sb3_dsdpg.envs.registration import (
    BASE_ENV_IDS,
    make_dyn_noise_env,
    make_obs_noise_env,
    noisy_env_id,
    register_envs,
    registered_ids,
)
from sb3_dsdpg.envs.revealed_bonus import RevealedBonusPointMassEnv
from sb3_dsdpg.envs.rewards import known_reward_fn, pendulum_reward, point_mass_reward_fn
from sb3_dsdpg.envs.wrappers import GaussianDynamicsNoise, MultiplicativeObservationNoise

register_envs()

__all__ = [
    "BASE_ENV_IDS",
    "GaussianDynamicsNoise",
    "MultiplicativeObservationNoise",
    "PointMassBonusEnv",
    "RevealedBonusPointMassEnv",
    "known_reward_fn",
    "make_dyn_noise_env",
    "make_obs_noise_env",
    "noisy_env_id",
    "pendulum_reward",
    "point_mass_reward_fn",
    "register_envs",
    "registered_ids",
]
