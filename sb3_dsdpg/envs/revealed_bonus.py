"""The 2-D point mass whose bonus is revealed by the first transition (``sb3_dsdpg/PointMassRevealedBonus-v0``): the
paper's Section 6.1 toy (a point mass in the plane with bonus locations on a circle), made Markov, so that the
multimodal return and action-gradient laws at the start state are the fixed point of the distributional Bellman
operator and a critic of the observation can learn them.

This module owns the pure, vectorised transition :func:`revealed_bonus_step` (the env steps with it and the
diagnostics' Monte-Carlo reference, ``sb3_dsdpg.tools.diagnostics.revealed_bonus_reference``, simulates with it),
the env :class:`RevealedBonusPointMassEnv`, and the scripted controller :func:`drive_to_bonus`. The motion, the
bonus shape, the action cost and the picture are those of ``PointMassBonus-v0``
(:mod:`sb3_dsdpg.envs.point_mass`), imported from there. Like the rest of ``sb3_dsdpg.envs`` it imports no torch.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_dsdpg.envs.point_mass import (
    ACTION_COST,
    BONUS_WIDTH,
    MOTION_NOISE,
    STEP_SIZE,
    PointMassBonusEnv,
    bonus_centres,
    check_bonus_env_args,
    draw_point_mass,
    forced_bonus,
    point_mass_reward,
    point_mass_step,
)

VALUE_DROP = 0.75  # bonus k of N is worth 1 - 0.75 k / N


def bonus_values(n_bonus: int) -> np.ndarray:
    """
    Values of the bonuses, ``v_k = 1 - 0.75 k / N`` for ``k = 0 .. N - 1``: distinct, from 1 down to above 0.25.

    :param n_bonus: number of bonuses ``N``
    :return: ``(N,)`` float64
    """
    return 1.0 - VALUE_DROP * np.arange(n_bonus) / n_bonus


def revealed_bonus_step(
    observations: np.ndarray,
    actions: np.ndarray,
    noise: np.ndarray,
    draws: np.ndarray,
    centres: np.ndarray,
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """
    One transition of the revealed-bonus point mass for a batch of observations ``(p, c)`` (the env's ``step`` and
    the diagnostics' rollouts). Where the bonus is not drawn yet (``c == (0, 0)`` exactly) it is revealed,
    ``c' = centres[draws]``; elsewhere ``c' = c``. The point moves as in
    :func:`~sb3_dsdpg.envs.point_mass.point_mass_step` (action clipped to ``[-1, 1]^2``,
    ``p' = clip(p + 0.1 a + 0.05 w, -1, 1)``) and the reward is ``v(c') exp(-||p' - c'||^2 / (2 * 0.1^2)) - 0.01 ||a||^2``
    with the clipped action, ``v(c')`` the value of the centre nearest to ``c'`` (which is ``c'`` itself on the
    env's states; nearest, so that float32-rounded observations find their centre).

    The leading dimensions of all arguments broadcast against each other.

    :param observations: ``(p, c)``, ``(..., 4)``
    :param actions: actions ``a``, ``(..., 2)``
    :param noise: standard normal motion noise ``w``, ``(..., 2)``
    :param draws: index of the bonus revealed where ``c == 0``, ``(...)`` ints in ``[0, N)`` (ignored elsewhere)
    :param centres: bonus centres ``(N, 2)``
    :param values: bonus values ``(N,)``
    :return: next observations ``(..., 4)`` and rewards ``(...)``, float64
    """
    observations = np.asarray(observations, dtype=np.float64)
    actions, noise = np.asarray(actions, dtype=np.float64), np.asarray(noise, dtype=np.float64)
    draws = np.asarray(draws)
    centres, values = np.asarray(centres, dtype=np.float64), np.asarray(values, dtype=np.float64)
    batch = np.broadcast_shapes(observations.shape[:-1], actions.shape[:-1], noise.shape[:-1], draws.shape)
    observations = np.broadcast_to(observations, (*batch, 4))
    positions, revealed = observations[..., :2], observations[..., 2:]
    undrawn = np.all(revealed == 0.0, axis=-1)
    nearest = np.argmin(np.sum((revealed[..., None, :] - centres) ** 2, axis=-1), axis=-1)
    index = np.where(undrawn, np.broadcast_to(draws, batch), nearest)
    next_centres = np.where(undrawn[..., None], centres[index], revealed)
    next_positions, rewards = point_mass_step(positions, actions, noise, next_centres)
    # point_mass_step pays the full bonus; scale it by the centre's value (the action cost stays).
    bonus = point_mass_reward(next_positions, np.zeros(2), next_centres)
    rewards = rewards - (1.0 - values[index]) * bonus
    return np.concatenate([np.broadcast_to(next_positions, (*batch, 2)), next_centres], axis=-1), rewards


def drive_to_bonus(observations: np.ndarray) -> np.ndarray:
    """
    The scripted, near-optimal controller of the revealed-bonus point mass (the tests' and a reference policy):
    the zero action while the bonus is not drawn (``c == (0, 0)``: no direction is better than another, and any move
    costs), then the command ``(c - p) / 0.1`` with its Euclidean norm clipped to 1: straight to the centre at full
    speed, then the action that lands on it up to the motion noise. (Clipping each coordinate instead would drive
    diagonally faster than straight and bend the first action's gradient towards the axes.)

    :param observations: ``(p, c)``, ``(..., 4)``
    :return: actions ``(..., 2)``, float64
    """
    observations = np.asarray(observations, dtype=np.float64)
    positions, revealed = observations[..., :2], observations[..., 2:]
    undrawn = np.all(revealed == 0.0, axis=-1, keepdims=True)
    command = (revealed - positions) / STEP_SIZE
    return np.where(undrawn, 0.0, command / np.maximum(1.0, np.linalg.norm(command, axis=-1, keepdims=True)))


class RevealedBonusPointMassEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    The point mass of ``PointMassBonus-v0`` with the bonus in the observation once drawn. The observation is
    ``(p, c)`` (float32, shape ``(4,)``): the position ``p`` in ``[-1, 1]^2`` and the revealed bonus centre ``c``,
    ``(0, 0)`` while the bonus is not drawn (no centre is at the origin: ``n_bonus`` centres lie evenly on the circle
    of radius 0.7, the first at angle 0, as in v0). Centre ``k`` has its own value ``v_k = 1 - 0.75 k / N``
    (``k = 0 .. N - 1``), so the return modes are distinct.

    Every episode starts at ``p = 0``, ``c = 0``. A step clips the action to ``[-1, 1]^2`` and moves
    ``p' = clip(p + 0.1 a + 0.05 w, -1, 1)``, ``w ~ N(0, I)``; if ``c = 0`` the transition draws ``k`` uniformly and
    sets ``c' = c_k``, otherwise ``c' = c``; the reward is ``v(c') exp(-||p' - c'||^2 / (2 * 0.1^2)) - 0.01 ||a||^2``
    (:func:`revealed_bonus_step`). Transition and reward depend on the observation, the action and fresh noise only:
    the env is Markov in its observation. The first transition is the only one that draws; after it the task is
    deterministic up to the motion noise, and the policy sees where to go.

    Why this design: in v0 the active bonus is hidden for the whole episode, so to a critic of the observation the
    reward is a mixture over the bonuses at every step, and the one-step target ``r + gamma Z(s')`` redraws the bonus
    at every step; the fixed point of the distributional Bellman operator is then not the env's return law, whose
    modes come from a bonus fixed for the episode. Here the bonus is part of the state from the first transition on,
    so the operator's fixed point is the env's return law. That law at the start state is still a mixture with one
    mode per bonus: a policy that drives to the revealed centre (:func:`drive_to_bonus`) arrives after about 7 steps
    and then collects about ``0.8 v_k`` per step
    (``E exp(-||0.05 w||^2 / 0.02) = 0.8``), a mode at a value roughly proportional to ``v_k``. The gradient of the
    return in the first action (taken before the bonus is seen) is a mixture of ``N`` directions: a first move
    towards ``c_k`` shortens the way to it, so for a policy that heads straight for the revealed centre the gradient
    points towards ``c_k``, with a magnitude growing with ``v_k``. Its mean, what a deterministic critic learns,
    cancels by symmetry for equal values and, with these values, leaves a small vector towards the better bonuses.
    More bonuses, more modes.

    The episode never terminates; the registered ID ``sb3_dsdpg/PointMassRevealedBonus-v0`` truncates it after 50 steps
    (``max_episode_steps``), with ``n_bonus=4`` by default. Built directly, the class has no time limit.

    The bonus is drawn from the generator at reset and revealed by the first step (equivalent, since the agent
    cannot see it before), so with the same seed PointMassBonus-v0 and this env draw the same bonus
    index and the same motion noise.
    ``reset(options={"bonus": k})`` forces the bonus the first step reveals (the draw happens anyway, so the motion
    noise is the same whichever bonus is forced). ``info["bonus"]`` is the index revealed so far, ``-1`` before the
    first step.

    :param n_bonus: number of bonus centres, ``>= 1``
    :param render_mode: ``None`` or ``"rgb_array"`` (v0's picture: grey rings at the centres, the revealed one
        filled green, the point in blue)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    bonus_radius = PointMassBonusEnv.bonus_radius
    render_size = PointMassBonusEnv.render_size
    # The module constants that revealed_bonus_step uses, for readers and the rendering (setting them here changes nothing).
    step_size = STEP_SIZE
    motion_noise = MOTION_NOISE
    bonus_width = BONUS_WIDTH
    action_cost = ACTION_COST
    value_drop = VALUE_DROP

    def __init__(self, n_bonus: int = 4, render_mode: str | None = None) -> None:
        self.n_bonus, self.render_mode = check_bonus_env_args(n_bonus, render_mode, self.metadata["render_modes"])
        self.bonus_centres = bonus_centres(self.n_bonus, self.bonus_radius)  # (n_bonus, 2)
        self.bonus_values = bonus_values(self.n_bonus)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.state = np.zeros(4)  # (p, c) in float64; the observation is its float32 copy
        self.bonus = -1  # index revealed so far
        self.pending_bonus = 0  # index the first step reveals

    @property
    def position(self) -> np.ndarray:
        """The point ``p`` (a view of the state)."""
        return self.state[:2]

    def reward(self, position: np.ndarray, action: np.ndarray, bonus: int) -> float:
        """
        Reward of arriving at ``position`` with ``action`` once bonus ``bonus`` is revealed.

        :param position: next position ``p'``
        :param action: action, clipped to ``[-1, 1]^2`` as in the env
        :param bonus: index of the revealed centre
        :return: ``v_k exp(-||p' - c_k||^2 / (2 * 0.1^2)) - 0.01 ||a||^2``
        """
        centre = self.bonus_centres[bonus]
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        bonus_term = point_mass_reward(position, np.zeros(2), centre)
        return float(self.bonus_values[bonus] * bonus_term - self.action_cost * np.sum(action**2))

    def _get_obs(self) -> np.ndarray:
        return self.state.astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """
        Put the point at the origin, hide the bonus, and draw the one the first step reveals.

        :param seed: seed of the env's generator
        :param options: ``{"bonus": k}`` forces the bonus the first step reveals
        :return: observation ``(0, 0, 0, 0)`` and ``{"bonus": -1}``
        """
        super().reset(seed=seed)
        self.pending_bonus = int(self.np_random.integers(self.n_bonus))
        forced = forced_bonus(options, self.n_bonus)
        if forced is not None:
            self.pending_bonus = forced
        self.state = np.zeros(4)
        self.bonus = -1
        return self._get_obs(), {"bonus": self.bonus}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """
        Move the point, reveal the bonus on the first step, and pay the revealed bonus.

        :param action: displacement command in ``[-1, 1]^2`` (clipped to it, and the clipped action is what the
            action cost sees)
        :return: observation, reward, terminated (always ``False``), truncated (``False``, see the time limit),
            ``{"bonus": k}``
        """
        action = np.asarray(action, dtype=np.float64).reshape(2)
        noise = self.np_random.normal(size=2)
        draws = np.asarray(self.pending_bonus)
        self.state, reward = revealed_bonus_step(self.state, action, noise, draws, self.bonus_centres, self.bonus_values)
        self.bonus = self.pending_bonus
        return self._get_obs(), float(reward), False, False, {"bonus": self.bonus}

    def render(self) -> np.ndarray | None:
        """
        Picture of the state (``render_mode="rgb_array"``), v0's: grey rings at the bonus centres (radius = bonus
        width), the revealed one filled green (none before the first step), the point as a blue dot.

        :return: ``(render_size, render_size, 3)`` uint8 image, or ``None`` without a render mode
        """
        if self.render_mode is None:
            gym.logger.warn("RevealedBonusPointMassEnv.render() called without a render_mode; use render_mode='rgb_array'")
            return None
        active = None if self.bonus < 0 else self.bonus
        return draw_point_mass(self.position, self.bonus_centres, active, self.render_size, self.bonus_width)
