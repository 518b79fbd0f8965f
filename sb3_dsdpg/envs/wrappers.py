"""Noise wrappers of the benchmark environments: multiplicative observation noise and Gaussian dynamics noise.

Both wrappers work on any environment they support (not only on the registered IDs) and draw their noise
from the wrapped environment's own generator (``env.np_random``, which a gymnasium ``Wrapper`` forwards to
the unwrapped env), so ``reset(seed=s)`` makes whole trajectories, noise included, reproducible.
This module imports nothing from the rest of ``sb3_dsdpg``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.pendulum import PendulumEnv

# Wrappers that may sit between GaussianDynamicsNoise and the simulator must leave observations untouched,
# because the wrapper replaces the observation with one recomputed from the simulator's perturbed state.
SUPPORTED_DYNAMICS_ENVS = "MuJoCo environments (gymnasium.envs.mujoco.MujocoEnv, e.g. Ant-v5, Hopper-v5) and Pendulum-v1"


def _is_mujoco_env(env: gym.Env) -> bool:
    """Whether ``env`` (an unwrapped env) is a gymnasium MuJoCo env; imports mujoco only when it is installed."""
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except ImportError:  # mujoco not installed: no env can be a MuJoCo env
        return False
    return isinstance(env, MujocoEnv)


def _product_bounds(low: np.ndarray, high: np.ndarray, factor_low: float, factor_high: float) -> tuple[np.ndarray, np.ndarray]:
    """
    Element-wise bounds of ``x * u`` for ``x`` in ``[low, high]`` and ``u`` in ``[factor_low, factor_high]``.

    The extremes of a product of two intervals are among the four products of their endpoints. ``inf * 0``
    is NaN; it stands for a product whose value is 0 there, and the other endpoint products carry the
    infinite bound when there is one.

    :param low: lower bounds of ``x``
    :param high: upper bounds of ``x``
    :param factor_low: lower bound of ``u``
    :param factor_high: upper bound of ``u``
    :return: lower and upper bounds of ``x * u`` (float64)
    """
    with np.errstate(invalid="ignore"):
        corners = np.stack(
            [
                low.astype(np.float64) * factor_low,
                low.astype(np.float64) * factor_high,
                high.astype(np.float64) * factor_low,
                high.astype(np.float64) * factor_high,
            ]
        )
    corners = np.nan_to_num(corners, nan=0.0, posinf=np.inf, neginf=-np.inf)
    return corners.min(axis=0), corners.max(axis=0)


class MultiplicativeObservationNoise(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """
    Multiply every observation element-wise by ``u ~ U[low, high]``, drawn independently per dimension and per
    step, reset observations included (paper: multiplicative observation noise ``U[0.8, 1.2]``).

    Only the agent's view is noisy: the simulator, rewards and terminations are those of the wrapped env.
    The observation space is widened to hold every noisy observation: a bounded dimension ``[a, b]`` becomes
    the hull of ``[a, b] * [low, high]`` (Pendulum's ``[-8, 8]`` angular velocity becomes ``[-9.6, 9.6]``);
    unbounded dimensions stay unbounded. The noisy observation keeps the observation's dtype.

    The noise is drawn from ``self.np_random``, the wrapped env's generator. Draws advance that generator, so
    after the first episode the env's own random reset states differ from those of the unwrapped env with the
    same seed; the trajectory as a whole is still a function of the seed and the actions.

    :param env: environment with a floating-point ``Box`` observation space
    :param low: lower end of the noise factor's range
    :param high: upper end of the noise factor's range, strictly above ``low``
    """

    def __init__(self, env: gym.Env, low: float = 0.8, high: float = 1.2) -> None:
        low, high = float(low), float(high)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"MultiplicativeObservationNoise needs finite bounds, got low={low}, high={high}")
        if not low < high:
            raise ValueError(f"MultiplicativeObservationNoise needs low < high, got low={low}, high={high}")
        space = env.observation_space
        if not isinstance(space, spaces.Box) or not np.issubdtype(space.dtype, np.floating):
            raise ValueError(
                "MultiplicativeObservationNoise supports floating-point Box observation spaces only, "
                f"got {space} (flatten Dict observations first, e.g. with gymnasium.wrappers.FlattenObservation)"
            )
        gym.utils.RecordConstructorArgs.__init__(self, low=low, high=high)
        gym.ObservationWrapper.__init__(self, env)
        self.low = low
        self.high = high
        new_low, new_high = _product_bounds(space.low, space.high, low, high)
        self.observation_space = spaces.Box(new_low.astype(space.dtype), new_high.astype(space.dtype), dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """
        Multiply ``observation`` by fresh noise factors.

        :param observation: clean observation of the wrapped env
        :return: noisy observation, same shape and dtype
        """
        observation = np.asarray(observation)
        factors = self.np_random.uniform(self.low, self.high, size=observation.shape)
        # Rounding to the (float32) dtype is monotone, so the result stays inside the widened bounds.
        return (observation * factors).astype(observation.dtype, copy=False)


class GaussianDynamicsNoise(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """
    After every environment step add ``N(0, sigma^2)`` to the simulator's velocities and return the observation
    of the perturbed state (paper: additive Gaussian dynamics noise; the placement on velocities is ours).

    Supported environments (anything else raises a ``ValueError`` at construction):

    - MuJoCo envs: the noise goes on every entry of ``qvel`` once per env step (after the env's ``frame_skip``
      simulator substeps), through the model's own setter ``env.unwrapped.set_state(qpos, qvel + noise)``
      (which runs ``mj_forward``); contact forces (``cfrc_ext``, observed by Ant and Humanoid) are refreshed
      with ``mj_rnePostConstraint`` as the env's own step does, and the observation is recomputed with
      ``env.unwrapped._get_obs()``. Derived quantities in the observation (``cinert``, ``cvel``,
      ``qfrc_actuator``, contact forces) therefore describe the perturbed state.
    - Pendulum: the noise goes on the angular velocity ``env.unwrapped.state[1]``, which is then clipped to
      ``[-max_speed, max_speed]`` (``[-8, 8]``), the env's own velocity limit and the bound of its observation
      space, so observations stay inside the space (and ``check_env`` passes); the observation is recomputed
      with ``env.unwrapped._get_obs()``.

    The reward, ``terminated``, ``truncated`` and ``info`` of a step are those the wrapped env returned: they
    were computed before the noise was added (the noise acts on the transition to the next step). Since the
    positions are not perturbed, position-based terminations agree with the perturbed state.

    The noise is drawn from ``self.np_random``, the wrapped env's generator, so ``reset(seed=s)`` makes the
    whole trajectory reproducible. With ``sigma == 0`` the wrapper draws nothing and leaves the state alone, so
    it reproduces the wrapped env exactly (re-running ``mj_forward`` would refresh derived quantities that the
    unwrapped env reports one step late, and consuming draws would change later reset states).

    Because it replaces the observation, every wrapper between this one and the unwrapped env must leave
    observations untouched (``TimeLimit``, ``OrderEnforcing``, ``PassiveEnvChecker``, episode statistics...):
    put observation wrappers (normalisation, frame stacking, observation noise) outside this one.

    :param env: a MuJoCo or Pendulum environment, unwrapped or behind observation-preserving wrappers
    :param sigma: standard deviation of the velocity noise, ``>= 0``
    """

    def __init__(self, env: gym.Env, sigma: float = 0.1) -> None:
        sigma = float(sigma)
        if not (math.isfinite(sigma) and sigma >= 0.0):
            raise ValueError(f"GaussianDynamicsNoise needs a finite sigma >= 0, got sigma={sigma}")
        unwrapped = env.unwrapped
        kind: Literal["mujoco", "pendulum"]
        if isinstance(unwrapped, PendulumEnv):
            kind = "pendulum"
        elif _is_mujoco_env(unwrapped):
            kind = "mujoco"
        else:
            raise ValueError(
                f"GaussianDynamicsNoise cannot perturb the state of {type(unwrapped).__name__}: "
                f"it supports {SUPPORTED_DYNAMICS_ENVS}"
            )
        layer = env
        while isinstance(layer, gym.Wrapper):
            if isinstance(layer, gym.ObservationWrapper) or layer.observation_space != unwrapped.observation_space:
                raise ValueError(
                    f"GaussianDynamicsNoise recomputes observations from the simulator, so it cannot sit outside "
                    f"{type(layer).__name__}, which changes observations: apply that wrapper outside this one"
                )
            layer = layer.env
        gym.utils.RecordConstructorArgs.__init__(self, sigma=sigma)
        gym.Wrapper.__init__(self, env)
        self.sigma = sigma
        self._kind = kind

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """
        Step the wrapped env, then perturb the velocities of the resulting state.

        :param action: action of the wrapped env
        :return: observation of the perturbed state and the wrapped env's reward, terminated, truncated, info
        """
        observation, reward, terminated, truncated, info = self.env.step(action)
        if self.sigma > 0.0:
            observation = self._perturb_mujoco() if self._kind == "mujoco" else self._perturb_pendulum()
        return observation, reward, terminated, truncated, info

    def _perturb_mujoco(self) -> np.ndarray:
        import mujoco

        sim = self.env.unwrapped
        qpos = sim.data.qpos.copy()
        qvel = sim.data.qvel.copy()
        sim.set_state(qpos, qvel + self.np_random.normal(0.0, self.sigma, size=qvel.shape))
        mujoco.mj_rnePostConstraint(sim.model, sim.data)
        return sim._get_obs()

    def _perturb_pendulum(self) -> np.ndarray:
        pendulum = self.env.unwrapped
        theta, theta_dot = pendulum.state
        theta_dot = float(np.clip(theta_dot + self.np_random.normal(0.0, self.sigma), -pendulum.max_speed, pendulum.max_speed))
        pendulum.state = np.array([theta, theta_dot])
        return pendulum._get_obs()
