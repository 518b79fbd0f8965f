"""The 2-D point mass with hidden bonus locations (``sb3_dsdpg/PointMassBonus-v0``), the toy task on which the
return and action-gradient distributions at the start state are multimodal, the more so the more bonuses.

The transition and reward are one pure, vectorised function, :func:`point_mass_step`, which the env steps with and
the diagnostics' Monte-Carlo reference (``sb3_dsdpg.tools.diagnostics``) simulates with. This module imports nothing
from the rest of ``sb3_dsdpg``; rendering uses numpy only (:func:`draw_point_mass`, which the revealed-bonus
variant in :mod:`sb3_dsdpg.envs.revealed_bonus` draws with too).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

STEP_SIZE = 0.1  # displacement per unit action
MOTION_NOISE = 0.05  # standard deviation of the Gaussian motion noise
BONUS_WIDTH = 0.1  # standard deviation of the Gaussian bonus around a centre
ACTION_COST = 0.01  # weight of the squared action norm


def point_mass_reward(next_positions: np.ndarray, actions: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """
    Reward of arriving at ``p'`` with action ``a`` while the bonus at ``c`` is active, over the last axis:
    ``exp(-||p' - c||^2 / (2 * 0.1^2)) - 0.01 ||a||^2``. The action is used as given (not clipped).

    :param next_positions: ``p'``, ``(..., 2)``
    :param actions: ``a``, ``(..., 2)``
    :param centres: active bonus centres ``c``, ``(..., 2)`` (broadcast against the positions)
    :return: rewards ``(...)``, float64
    """
    squared_distance = np.sum((np.asarray(next_positions, dtype=np.float64) - centres) ** 2, axis=-1)
    bonus = np.exp(-squared_distance / (2.0 * BONUS_WIDTH**2))
    return bonus - ACTION_COST * np.sum(np.asarray(actions, dtype=np.float64) ** 2, axis=-1)


def point_mass_step(
    positions: np.ndarray, actions: np.ndarray, noise: np.ndarray, centres: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """
    One transition of the point mass for a batch of positions (the env's ``step`` and the diagnostics' rollouts):
    the action is clipped to ``[-1, 1]^2``, ``p' = clip(p + 0.1 a + 0.05 w, -1, 1)``, and the reward is
    :func:`point_mass_reward` of ``p'``, the clipped action and the active centre.

    :param positions: current positions ``p``, ``(..., 2)``
    :param actions: actions ``a``, ``(..., 2)``
    :param noise: standard normal motion noise ``w``, ``(..., 2)``
    :param centres: active bonus centres ``c``, ``(..., 2)`` (broadcast against the positions)
    :return: next positions ``(..., 2)`` and rewards ``(...)``, float64
    """
    actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    displaced = np.asarray(positions, dtype=np.float64) + STEP_SIZE * actions + MOTION_NOISE * np.asarray(noise, np.float64)
    next_positions = np.clip(displaced, -1.0, 1.0)
    return next_positions, point_mass_reward(next_positions, actions, centres)


def draw_point_mass(
    position: np.ndarray, centres: np.ndarray, active: int | None, size: int = 256, width: float = BONUS_WIDTH
) -> np.ndarray:
    """
    Picture of a point-mass state (the envs' ``render``): grey rings at the bonus centres (radius ``width``), the
    active one filled green, the point as a blue dot, on the square ``[-1, 1]^2`` with the y axis up.

    :param position: the point ``p``, ``(2,)``
    :param centres: bonus centres ``(n, 2)``
    :param active: index of the centre to fill, or ``None`` for rings only
    :param size: side of the image in pixels
    :param width: radius of the rings
    :return: ``(size, size, 3)`` uint8 image
    """
    # Pixel centres in world coordinates; the y axis points up in the picture.
    coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x, y = np.meshgrid(coords, coords[::-1])
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    pixel = 2.0 / size
    for index, centre in enumerate(centres):
        distance = np.hypot(x - centre[0], y - centre[1])
        if index == active:
            image[distance <= width] = (60, 170, 60)
        else:
            image[np.abs(distance - width) <= 1.5 * pixel] = (150, 150, 150)
    image[np.hypot(x - position[0], y - position[1]) <= 0.04] = (30, 80, 220)
    return image


def check_bonus_env_args(n_bonus: int, render_mode: str | None, render_modes: list[str]) -> tuple[int, str | None]:
    """The point-mass envs' ``n_bonus`` (a positive integer) and ``render_mode`` (None or one of ``render_modes``)."""
    if isinstance(n_bonus, bool) or int(n_bonus) != n_bonus or n_bonus < 1:
        raise ValueError(f"n_bonus must be a positive integer, got {n_bonus!r}")
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"render_mode must be None or one of {render_modes}, got {render_mode!r}")
    return int(n_bonus), render_mode


def forced_bonus(options: dict[str, Any] | None, n_bonus: int) -> int | None:
    """The bonus index ``reset(options={"bonus": k})`` forces (checked to be in ``[0, n_bonus)``), or None."""
    if options is None or options.get("bonus") is None:
        return None
    bonus = options["bonus"]
    if int(bonus) != bonus or not 0 <= bonus < n_bonus:
        raise ValueError(f"options['bonus'] must be an index in [0, {n_bonus}), got {bonus!r}")
    return int(bonus)


def bonus_centres(n_bonus: int, radius: float) -> np.ndarray:
    """``n_bonus`` centres evenly on the circle of ``radius``, the first at angle 0: ``(n_bonus, 2)``."""
    angles = 2.0 * np.pi * np.arange(n_bonus) / n_bonus
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


class PointMassBonusEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    A point in ``[-1, 1]^2`` starts at the origin and moves by ``p' = clip(p + 0.1 a + 0.05 w, -1, 1)`` with
    ``a`` in ``[-1, 1]^2`` and ``w ~ N(0, I)``. ``n_bonus`` bonus centres lie evenly on the circle of radius 0.7
    (the first at angle 0); at every reset one of them, drawn uniformly, becomes active and is not observed.
    The reward is ``exp(-||p' - c||^2 / (2 * 0.1^2)) - 0.01 ||a||^2`` for the active centre ``c``.

    The observation is the position only. The normalised time step is left out: the task is stationary (the
    best policy drives to one centre and stays there whatever the time), and the 50-step limit is a truncation
    that off-policy learners bootstrap through, as in the MuJoCo benchmarks. Since the active bonus is hidden
    and fixed within an episode, the return from the start state is a mixture with one mode per bonus the
    policy can reach, which is the multimodality the distributional critic is meant to capture.

    The episode never terminates; the registered ID ``sb3_dsdpg/PointMassBonus-v0`` truncates it after 50
    steps (``max_episode_steps``). Built directly, the class has no time limit.

    ``reset(options={"bonus": k})`` forces the active bonus to ``k``; the draw from the generator happens anyway,
    so the motion noise is the same whichever bonus is active. ``info["active_bonus"]`` reports the active
    index for evaluation (the agent does not see it).

    :param n_bonus: number of bonus centres, ``>= 1``
    :param render_mode: ``None`` or ``"rgb_array"`` (a numpy picture of the square, the centres, the active
        one in green and the point in blue)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    bonus_radius = 0.7
    render_size = 256
    # The module constants that point_mass_step uses, for readers and the rendering (setting them here changes nothing).
    step_size = STEP_SIZE
    motion_noise = MOTION_NOISE
    bonus_width = BONUS_WIDTH
    action_cost = ACTION_COST

    def __init__(self, n_bonus: int = 4, render_mode: str | None = None) -> None:
        self.n_bonus, self.render_mode = check_bonus_env_args(n_bonus, render_mode, self.metadata["render_modes"])
        self.bonus_centres = bonus_centres(self.n_bonus, self.bonus_radius)  # (n_bonus, 2)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.position = np.zeros(2)
        self.active_bonus = 0

    def reward(self, position: np.ndarray, action: np.ndarray, bonus: int | None = None) -> float:
        """
        Reward of arriving at ``position`` with ``action``.

        :param position: next position ``p'``
        :param action: action, already clipped to ``[-1, 1]^2``
        :param bonus: index of the active centre, the current episode's by default
        :return: ``exp(-||p' - c||^2 / (2 * 0.1^2)) - 0.01 ||a||^2``
        """
        centre = self.bonus_centres[self.active_bonus if bonus is None else bonus]
        return float(point_mass_reward(position, action, centre))

    def _get_obs(self) -> np.ndarray:
        return self.position.astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """
        Put the point at the origin and draw the active bonus.

        :param seed: seed of the env's generator
        :param options: ``{"bonus": k}`` forces the active bonus
        :return: observation and ``{"active_bonus": k}``
        """
        super().reset(seed=seed)
        self.active_bonus = int(self.np_random.integers(self.n_bonus))
        forced = forced_bonus(options, self.n_bonus)
        if forced is not None:
            self.active_bonus = forced
        self.position = np.zeros(2)
        return self._get_obs(), {"active_bonus": self.active_bonus}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """
        Move the point and pay the bonus of the active centre.

        :param action: displacement command in ``[-1, 1]^2`` (clipped to it, and the clipped action is what the
            action cost sees)
        :return: observation, reward, terminated (always ``False``), truncated (``False``, see the time limit),
            ``{"active_bonus": k}``
        """
        action = np.asarray(action, dtype=np.float64).reshape(2)
        noise = self.np_random.normal(size=2)
        self.position, reward = point_mass_step(self.position, action, noise, self.bonus_centres[self.active_bonus])
        return self._get_obs(), float(reward), False, False, {"active_bonus": self.active_bonus}

    def render(self) -> np.ndarray | None:
        """
        Picture of the state (``render_mode="rgb_array"``): grey rings at the bonus centres (radius = bonus
        width), the active one filled green, the point as a blue dot.

        :return: ``(render_size, render_size, 3)`` uint8 image, or ``None`` without a render mode
        """
        if self.render_mode is None:
            gym.logger.warn("PointMassBonusEnv.render() called without a render_mode; use render_mode='rgb_array'")
            return None
        return draw_point_mass(self.position, self.bonus_centres, self.active_bonus, self.render_size, self.bonus_width)
