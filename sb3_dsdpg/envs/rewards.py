"""Known reward functions of the shipped tasks, as differentiable functions of torch tensors.

MAGE takes rewards from the task's known function rather than from its learned model; DSDPG's ``reward_fn``
argument does the same in its targets through the world model, which separates the learned reward from the learned
dynamics (the ladder's rung R6 in docs/ablations.md). A reward function here maps flat observations ``s``, actions
``a`` in the policy's ``[-1, 1]`` units and next observations ``s'`` (any leading dimensions, broadcast) to rewards
in the env's units. The functions use tensor methods only, so this module imports no torch (the envs package stays
free of it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from sb3_dsdpg.envs.point_mass import ACTION_COST, BONUS_WIDTH, PointMassBonusEnv
from sb3_dsdpg.envs.revealed_bonus import RevealedBonusPointMassEnv

# Pendulum-v1: max torque 2, so SB3's policy action a in [-1, 1] is the torque u = 2 a.
PENDULUM_MAX_TORQUE = 2.0


def pendulum_reward(obs: Any, actions: Any, next_obs: Any) -> Any:
    """
    Pendulum-v1's reward of the state before the step: ``-(theta^2 + 0.1 thetadot^2 + 0.001 u^2)`` with
    ``theta = atan2(sin, cos)`` in ``[-pi, pi]`` from ``obs = (cos, sin, thetadot)`` and ``u = 2 a`` clipped to
    ``[-2, 2]``. Also the reward of ``sb3_dsdpg/Pendulum-DynNoise-v1``, whose noise acts after the step.
    """
    theta = obs[..., 1].atan2(obs[..., 0])
    torque = (PENDULUM_MAX_TORQUE * actions[..., 0]).clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)
    return -(theta.pow(2) + 0.1 * obs[..., 2].pow(2) + 0.001 * torque.pow(2))


def point_mass_reward_fn(centre: np.ndarray) -> Callable[[Any, Any, Any], Any]:
    """
    The point mass's reward ``exp(-||p' - c||^2 / (2 * 0.1^2)) - 0.01 ||a||^2`` for a known active centre ``c``
    (the one bonus of ``n_bonus=1``), with the action clipped to ``[-1, 1]^2`` as the env does.
    """
    cx, cy = float(centre[0]), float(centre[1])

    def reward(obs: Any, actions: Any, next_obs: Any) -> Any:
        squared = (next_obs[..., 0] - cx).pow(2) + (next_obs[..., 1] - cy).pow(2)
        return (-squared / (2.0 * BONUS_WIDTH**2)).exp() - ACTION_COST * actions.clamp(-1.0, 1.0).pow(2).sum(-1)

    return reward


def revealed_bonus_reward_fn(
    centres: np.ndarray, values: np.ndarray, width: float = BONUS_WIDTH, action_cost: float = ACTION_COST
) -> Callable[[Any, Any, Any], Any]:
    """
    The revealed-bonus point mass's reward ``v(c') exp(-||p' - c'||^2 / (2 * 0.1^2)) - 0.01 ||a||^2`` of the next
    observation ``s' = (p', c')``, with ``v(c')`` the value of the centre nearest to ``c'`` (piecewise constant: no
    derivative in ``c'``) and the action clipped to ``[-1, 1]^2`` as the env does.

    :param centres: the bonus centres ``(N, 2)``; ``values``: their values ``(N,)``
    :param width: the bonus width (0.1); ``action_cost``: the action cost's factor (0.01)
    """
    centres, values = np.asarray(centres, dtype=np.float64), np.asarray(values, dtype=np.float64)

    def reward(obs: Any, actions: Any, next_obs: Any) -> Any:
        position, centre = next_obs[..., :2], next_obs[..., 2:4]
        known = next_obs.new_tensor(centres)
        nearest = (centre.detach().unsqueeze(-2) - known).pow(2).sum(-1).argmin(-1)
        value = next_obs.new_tensor(values)[nearest]
        squared = (position - centre).pow(2).sum(-1)
        return value * (-squared / (2.0 * width**2)).exp() - action_cost * actions.clamp(-1.0, 1.0).pow(2).sum(-1)

    return reward


def known_reward_fn(env: gym.Env | str) -> Callable[[Any, Any, Any], Any]:
    """
    The known reward of a shipped task, for ``DSDPG(reward_fn=...)``: Pendulum-v1 and its noisy versions, the
    point mass with one bonus and the revealed-bonus point mass. A ValueError for any other task, or for the point
    mass with hidden bonuses (its reward depends on the active bonus, which the observation does not show).

    :param env: an env (wrappers allowed) or its registered id
    """
    env_id = env if isinstance(env, str) else (env.unwrapped.spec.id if env.unwrapped.spec else type(env.unwrapped).__name__)
    if "Pendulum" in env_id and "Double" not in env_id:
        if "ObsNoise" in env_id:
            raise ValueError(f"{env_id}: the reward is of the true state, which the noisy observation does not give.")
        return pendulum_reward
    if isinstance(env, gym.Env) and isinstance(env.unwrapped, PointMassBonusEnv):
        point_mass = env.unwrapped
        if point_mass.n_bonus != 1:
            raise ValueError(
                f"PointMassBonus with n_bonus={point_mass.n_bonus}: the active bonus is hidden, so the reward is not a "
                "function of the observation; only n_bonus=1 has a known reward."
            )
        return point_mass_reward_fn(point_mass.bonus_centres[0])
    if isinstance(env, gym.Env) and isinstance(env.unwrapped, RevealedBonusPointMassEnv):
        revealed = env.unwrapped
        return revealed_bonus_reward_fn(
            revealed.bonus_centres, revealed.bonus_values, revealed.bonus_width, revealed.action_cost
        )
    raise ValueError(f"No known reward function for {env_id}: pass your own reward_fn(obs, actions, next_obs).")
