"""Tests of the benchmark environments (``sb3_dsdpg.envs``): registration, API checks, noise statistics, seeding,
and the hidden-bonus point mass."""

from __future__ import annotations

import ast
import copy
import importlib
import pathlib
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sb3_dsdpg.envs
from sb3_dsdpg.envs import (
    GaussianDynamicsNoise,
    MultiplicativeObservationNoise,
    PointMassBonusEnv,
    registered_ids,
)
from sb3_dsdpg.envs import registration as registration_module
from sb3_dsdpg.envs.point_mass import point_mass_step

BASES = ["Ant-v5", "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Humanoid-v5", "InvertedDoublePendulum-v5", "Pendulum-v1"]
EXPECTED_IDS = [
    f"sb3_dsdpg/{base.rpartition('-v')[0]}-{kind}-v{base.rpartition('-v')[2]}"
    for base in BASES
    for kind in ("ObsNoise", "DynNoise")
] + ["sb3_dsdpg/PointMassBonus-v0", "sb3_dsdpg/PointMassRevealedBonus-v0"]
NOISY_IDS = EXPECTED_IDS[:-2]
POINT_MASS_ID = "sb3_dsdpg/PointMassBonus-v0"

# Warnings the base envs themselves raise under the checkers (unbounded MuJoCo observation spaces, Pendulum's and
# Humanoid's non-normalised action spaces, and checking a wrapped env); anything else is a failure.
ALLOWED_WARNINGS = re.compile(
    r"is different from the unwrapped version|observation space (minimum|maximum) value is -?infinity"
    r"|symmetric and normali[sz]ed"
)

UNIFORM_VARIANCE = 0.4**2 / 12.0


def make_or_skip(env_id: str, **kwargs) -> gym.Env:
    """``gymnasium.make``, skipping the test when the base env cannot be built here (e.g. mujoco missing)."""
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.DependencyNotInstalled, ImportError, OSError) as error:
        pytest.skip(f"{env_id} cannot be built here: {error}")


def base_of(env_id: str) -> str:
    return gym.spec(env_id).kwargs["base_id"]


def random_actions(space: gym.spaces.Box, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(space.dtype)


def rollout(env: gym.Env, actions: np.ndarray, seed: int | None) -> dict[str, list]:
    """Run ``actions``, resetting (unseeded after the first reset) whenever an episode ends."""
    record: dict[str, list] = {"obs": [], "reward": [], "terminated": [], "truncated": []}
    obs, _ = env.reset(seed=seed)
    record["obs"].append(obs)
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(record, (obs, reward, terminated, truncated), strict=True):
            record[key].append(value)
        if terminated or truncated:
            obs, _ = env.reset()
            record["obs"].append(obs)
    return record


def assert_same_rollout(first: dict[str, list], second: dict[str, list]) -> None:
    for key in first:
        assert len(first[key]) == len(second[key]), key
        for a, b in zip(first[key], second[key], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=key)


def rollouts_differ(first: dict[str, list], second: dict[str, list]) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(first["obs"], second["obs"], strict=False))


# ----------------------------------------------------------------------------------------------- registration


def test_registered_ids_are_the_spec_list():
    assert registered_ids() == EXPECTED_IDS
    # gymnasium's registry holds exactly these under the package's namespace, nothing more.
    assert {env_id for env_id in gym.registry if env_id.startswith("sb3_dsdpg/")} == set(EXPECTED_IDS)


@pytest.mark.parametrize("env_id", NOISY_IDS)
def test_noisy_spec_keeps_base_time_limit(env_id):
    spec = gym.spec(env_id)
    assert spec.max_episode_steps == gym.spec(base_of(env_id)).max_episode_steps
    assert isinstance(spec.entry_point, str)  # serialisable spec (SubprocVecEnv, spec.to_json)
    env = make_or_skip(env_id)
    limits = []
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, gym.wrappers.TimeLimit):
            limits.append(layer._max_episode_steps)
        layer = layer.env
    assert limits == [spec.max_episode_steps]  # exactly one TimeLimit
    wrapper = GaussianDynamicsNoise if "DynNoise" in env_id else MultiplicativeObservationNoise
    assert any(isinstance(w, wrapper) for w in _wrapper_chain(env))
    assert env.spec.id == env_id
    env.close()


def _wrapper_chain(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def test_point_mass_spec():
    spec = gym.spec(POINT_MASS_ID)
    assert spec.max_episode_steps == 50
    env = gym.make(POINT_MASS_ID)
    env.reset(seed=0)
    steps = 0
    truncated = terminated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
    assert (steps, terminated, truncated) == (50, False, True)


def test_registration_is_idempotent():
    before = registered_ids()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(registration_module)
        importlib.reload(sb3_dsdpg.envs)
        assert registration_module.register_envs() == before
    assert registered_ids() == before


def test_envs_module_imports_nothing_else_from_the_package():
    root = pathlib.Path(sb3_dsdpg.envs.__file__).parent
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("torch"), f"{path.name} imports {name}"
                if name.startswith("sb3_dsdpg"):
                    assert name.startswith("sb3_dsdpg.envs"), f"{path.name} imports {name}"


# ----------------------------------------------------------------------------------------------- API checks


@pytest.mark.parametrize("env_id", EXPECTED_IDS)
def test_check_env(env_id):
    env = make_or_skip(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # MuJoCo's human rendering needs a display; the render check is done on the point mass below.
        gymnasium_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    unexpected = [str(w.message) for w in caught if not ALLOWED_WARNINGS.search(str(w.message))]
    assert not unexpected, unexpected
    env.close()


def test_point_mass_check_env_with_rendering():
    env = gym.make(POINT_MASS_ID, render_mode="rgb_array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env.unwrapped)
        sb3_check_env(env, warn=True, skip_render_check=False)
    assert not [str(w.message) for w in caught], [str(w.message) for w in caught]


# ----------------------------------------------------------------------------------------------- kwargs and validation


def test_noise_level_and_base_kwargs_pass_through():
    env = make_or_skip("sb3_dsdpg/HalfCheetah-DynNoise-v5", sigma=0.3, forward_reward_weight=2.5)
    assert env.get_wrapper_attr("sigma") == 0.3
    assert env.unwrapped._forward_reward_weight == 2.5
    env = gym.make("sb3_dsdpg/Pendulum-ObsNoise-v1", low=0.5, high=2.0, g=9.81)
    assert (env.get_wrapper_attr("low"), env.get_wrapper_attr("high")) == (0.5, 2.0)
    assert env.unwrapped.g == 9.81
    np.testing.assert_allclose(env.observation_space.high, [2.0, 2.0, 16.0])
    np.testing.assert_allclose(env.observation_space.low, [-2.0, -2.0, -16.0])
    env = gym.make("sb3_dsdpg/Pendulum-DynNoise-v1", max_episode_steps=7)
    assert env.spec.max_episode_steps == 7
    env = gym.make(POINT_MASS_ID, n_bonus=3)
    assert env.unwrapped.bonus_centres.shape == (3, 2)


def test_observation_bounds_cover_sign_changes():
    env = gym.make("Pendulum-v1")
    wrapped = MultiplicativeObservationNoise(env, low=-0.5, high=1.5)
    np.testing.assert_allclose(wrapped.observation_space.high, [1.5, 1.5, 12.0])
    np.testing.assert_allclose(wrapped.observation_space.low, [-1.5, -1.5, -12.0])


@pytest.mark.parametrize(("low", "high"), [(1.2, 0.8), (1.0, 1.0), (0.8, np.inf), (np.nan, 1.2)])
def test_obs_noise_rejects_bad_bounds(low, high):
    with pytest.raises(ValueError, match="low"):
        MultiplicativeObservationNoise(gym.make("Pendulum-v1"), low=low, high=high)
    with pytest.raises(ValueError, match="low"):
        gym.make("sb3_dsdpg/Pendulum-ObsNoise-v1", low=low, high=high)


@pytest.mark.parametrize("sigma", [-0.1, np.nan, np.inf])
def test_dyn_noise_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        GaussianDynamicsNoise(gym.make("Pendulum-v1"), sigma=sigma)
    with pytest.raises(ValueError, match="sigma"):
        gym.make("sb3_dsdpg/Pendulum-DynNoise-v1", sigma=sigma)


def test_dyn_noise_rejects_unsupported_envs():
    with pytest.raises(ValueError, match=r"CartPoleEnv.*supports MuJoCo environments.*Pendulum"):
        GaussianDynamicsNoise(gym.make("CartPole-v1"))
    # Observations it would overwrite would skip the inner observation wrapper.
    with pytest.raises(ValueError, match="MultiplicativeObservationNoise"):
        GaussianDynamicsNoise(MultiplicativeObservationNoise(gym.make("Pendulum-v1")))


def test_obs_noise_rejects_non_float_box():
    with pytest.raises(ValueError, match="Box"):
        MultiplicativeObservationNoise(gym.make("FrozenLake-v1"))  # Discrete observations


# ----------------------------------------------------------------------------------------------- noise statistics


def _obs_noise_ratios(env_id: str, n_steps: int) -> tuple[np.ndarray, gym.Env]:
    """Element-wise ratios noisy / clean along one trajectory of the noisy env and its base under the same seed."""
    noisy = make_or_skip(env_id)
    clean = gym.make(base_of(env_id))
    actions = random_actions(clean.action_space, n_steps)
    ratios, noisy_obs = [], []
    obs_noisy, _ = noisy.reset(seed=3)
    obs_clean, _ = clean.reset(seed=3)
    for action in actions:
        noisy_obs.append(obs_noisy)
        mask = np.abs(obs_clean) > 1e-6
        ratios.append(obs_noisy[mask].astype(np.float64) / obs_clean[mask])
        obs_noisy, _, terminated, truncated, _ = noisy.step(action)
        obs_clean, _, terminated_clean, truncated_clean, _ = clean.step(action)
        # The wrapper only touches observations, so within an episode both envs follow the same dynamics.
        assert (terminated, truncated) == (terminated_clean, truncated_clean)
        if terminated or truncated:
            break
    for obs in noisy_obs:
        assert noisy.observation_space.contains(obs)
    return np.concatenate(ratios), noisy


@pytest.mark.parametrize(
    ("env_id", "n_steps"), [("sb3_dsdpg/HalfCheetah-ObsNoise-v5", 1000), ("sb3_dsdpg/Pendulum-ObsNoise-v1", 200)]
)
def test_obs_noise_is_uniform_multiplicative(env_id, n_steps):
    ratios, _ = _obs_noise_ratios(env_id, n_steps)
    n = ratios.size
    assert n > 500
    # Float32 observations (Pendulum) round the product: allow 1e-6 relative slack on the support.
    assert ratios.min() >= 0.8 - 1e-6 and ratios.max() <= 1.2 + 1e-6
    # Mean 1 within 5 standard errors; variance 0.4^2/12 within 5 standard errors of the sample variance
    # (fourth central moment of U[-0.2, 0.2] is 0.4^4/80).
    assert abs(ratios.mean() - 1.0) < 5 * np.sqrt(UNIFORM_VARIANCE / n)
    variance_se = np.sqrt((0.4**4 / 80 - UNIFORM_VARIANCE**2) / n)
    assert abs(ratios.var() - UNIFORM_VARIANCE) < 5 * variance_se
    # Uniform, not e.g. Gaussian with the same variance: a quarter of the mass below 0.9.
    assert abs(np.mean(ratios < 0.9) - 0.25) < 5 * np.sqrt(0.25 * 0.75 / n)


def test_obs_noise_is_independent_across_dimensions():
    env = MultiplicativeObservationNoise(gym.make("HalfCheetah-v5"))
    env.reset(seed=0)
    ones = np.ones(17)
    factors = np.stack([env.observation(ones) for _ in range(2000)])  # (steps, dims)
    correlation = np.corrcoef(factors, rowvar=False)
    off_diagonal = correlation[~np.eye(17, dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.1  # 2000 samples: standard error of a null correlation ~0.022
    assert np.abs(np.corrcoef(factors[:-1, 0], factors[1:, 0])[0, 1]) < 0.1  # fresh draw every step


def _mujoco_velocity_noise(env_id: str, sigma: float, n_steps: int) -> np.ndarray:
    """Velocity differences between the wrapped step and an unperturbed step from the same full simulator state."""
    mujoco = pytest.importorskip("mujoco")
    noisy = make_or_skip(env_id, sigma=sigma)
    clean = gym.make(base_of(env_id)).unwrapped
    sim = noisy.unwrapped
    actions = random_actions(noisy.action_space, n_steps)
    noisy.reset(seed=1)
    clean.reset(seed=1)
    differences = []
    for action in actions:
        mujoco.mj_copyData(clean.data, clean.model, sim.data)
        obs, reward, terminated, _, _ = noisy.step(action)
        obs_clean, reward_clean, terminated_clean, _, _ = clean.step(action)
        np.testing.assert_array_equal(sim.data.qpos, clean.data.qpos)  # positions untouched
        assert reward == reward_clean and terminated == terminated_clean  # computed before the noise
        np.testing.assert_array_equal(obs, sim._get_obs())  # observation of the perturbed state
        assert not np.array_equal(obs, obs_clean)
        differences.append(sim.data.qvel - clean.data.qvel)
        if terminated:
            noisy.reset()
    return np.concatenate(differences)


@pytest.mark.parametrize("sigma", [0.1, 0.3])
def test_mujoco_dynamics_noise_has_configured_std(sigma):
    noise = _mujoco_velocity_noise("sb3_dsdpg/HalfCheetah-DynNoise-v5", sigma, 1000)
    n = noise.size
    assert abs(noise.mean()) < 5 * sigma / np.sqrt(n)
    assert abs(noise.std() - sigma) < 5 * sigma / np.sqrt(2 * n)
    assert abs(np.mean(np.abs(noise) < sigma) - 0.6827) < 5 * np.sqrt(0.6827 * 0.3173 / n)  # Gaussian shape


def test_contact_forces_follow_the_perturbed_state():
    # Ant observes contact forces; they must be recomputed for the perturbed state, like the env's own step does.
    mujoco = pytest.importorskip("mujoco")
    env = make_or_skip("sb3_dsdpg/Ant-DynNoise-v5", sigma=0.5)
    env.reset(seed=0)
    sim = env.unwrapped
    for action in random_actions(env.action_space, 50):
        obs, _, terminated, _, _ = env.step(action)
        forces = sim.data.cfrc_ext.copy()
        mujoco.mj_rnePostConstraint(sim.model, sim.data)
        np.testing.assert_array_equal(forces, sim.data.cfrc_ext)
        np.testing.assert_array_equal(obs, sim._get_obs())
        if terminated:
            env.reset()


def test_pendulum_dynamics_noise_has_configured_std_and_stays_in_bounds():
    sigma = 0.2
    noisy = gym.make("sb3_dsdpg/Pendulum-DynNoise-v1", sigma=sigma)
    clean = gym.make("Pendulum-v1").unwrapped
    pendulum = noisy.unwrapped
    noisy.reset(seed=2)
    clean.reset(seed=2)
    differences = []
    for action in random_actions(noisy.action_space, 4000):
        clean.state = pendulum.state.copy()
        obs, reward, _, truncated, _ = noisy.step(action)
        _, reward_clean, _, _, _ = clean.step(action)
        assert reward == reward_clean
        assert noisy.observation_space.contains(obs)
        np.testing.assert_array_equal(obs, pendulum._get_obs())
        assert pendulum.state[0] == clean.state[0]  # the angle is not perturbed
        if abs(pendulum.state[1]) < pendulum.max_speed and abs(clean.state[1]) < pendulum.max_speed:
            differences.append(pendulum.state[1] - clean.state[1])
        if truncated:
            noisy.reset()
    differences = np.asarray(differences)
    n = differences.size
    assert n > 2000
    assert abs(differences.mean()) < 5 * sigma / np.sqrt(n)
    assert abs(differences.std() - sigma) < 5 * sigma / np.sqrt(2 * n)


def test_pendulum_velocity_is_clipped_to_max_speed():
    env = gym.make("sb3_dsdpg/Pendulum-DynNoise-v1", sigma=5.0)
    env.reset(seed=0)
    speeds = []
    for action in random_actions(env.action_space, 400):
        obs, *_, truncated, _ = env.step(action)
        speeds.append(obs[2])
        if truncated:
            env.reset()
    speeds = np.abs(speeds)
    assert speeds.max() == 8.0  # a sigma this large saturates often, and the clip holds
    assert np.mean(speeds == 8.0) > 0.1


@pytest.mark.parametrize("base", ["Hopper-v5", "Humanoid-v5", "Pendulum-v1"])
def test_zero_sigma_reproduces_base_env(base):
    env_id = f"sb3_dsdpg/{base.rpartition('-v')[0]}-DynNoise-v{base.rpartition('-v')[2]}"
    reference = make_or_skip(base)
    actions = random_actions(reference.action_space, 600)
    expected = rollout(reference, actions, seed=5)
    assert len(expected["obs"]) > 2  # the rollout crosses at least one reset
    assert_same_rollout(rollout(gym.make(env_id, sigma=0.0), actions, seed=5), expected)
    assert rollouts_differ(rollout(gym.make(env_id, sigma=0.1), actions, seed=5), expected)


# ----------------------------------------------------------------------------------------------- seeding


@pytest.mark.parametrize("env_id", EXPECTED_IDS)
def test_same_seed_same_trajectory(env_id):
    first = make_or_skip(env_id)
    second = gym.make(env_id)
    # Long enough to cross resets on Pendulum (200 steps) and the point mass (50 steps).
    actions = random_actions(first.action_space, 450)
    run = rollout(first, actions, seed=11)
    assert_same_rollout(run, rollout(second, actions, seed=11))
    assert rollouts_differ(run, rollout(second, actions, seed=12))


# ----------------------------------------------------------------------------------------------- point mass


def drive_to(env: gym.Env, target: np.ndarray, n_episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns and active bonuses of a proportional controller that drives to ``target`` and stays there."""
    returns, bonuses = [], []
    for _ in range(n_episodes):
        obs, info = env.reset()
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(np.clip((target - obs) / 0.1, -1.0, 1.0))
            total += reward
            done = terminated or truncated
        returns.append(total)
        bonuses.append(info["active_bonus"])
    return np.asarray(returns), np.asarray(bonuses)


@pytest.mark.parametrize("n_bonus", [1, 2, 4, 7])
def test_bonus_centres_are_evenly_on_the_circle(n_bonus):
    env = PointMassBonusEnv(n_bonus=n_bonus)
    centres = env.bonus_centres
    assert centres.shape == (n_bonus, 2)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 0.7)
    angles = np.sort(np.mod(np.arctan2(centres[:, 1], centres[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(np.append(angles, angles[0] + 2 * np.pi)), 2 * np.pi / n_bonus)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert obs.shape == (2,) and env.observation_space.contains(obs)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_point_mass_rejects_bad_n_bonus(bad):
    with pytest.raises(ValueError, match="n_bonus"):
        PointMassBonusEnv(n_bonus=bad)


def test_reward_peaks_at_the_active_centre():
    env = PointMassBonusEnv(n_bonus=4)
    env.reset(seed=0, options={"bonus": 2})
    grid = np.linspace(-1, 1, 201)
    zero = np.zeros(2)
    values = np.array([[env.reward(np.array([x, y]), zero) for x in grid] for y in grid])
    peak = np.unravel_index(values.argmax(), values.shape)
    np.testing.assert_allclose([grid[peak[1]], grid[peak[0]]], env.bonus_centres[2], atol=0.01)
    assert env.reward(env.bonus_centres[2], zero) == pytest.approx(1.0)
    for other in (0, 1, 3):
        assert env.reward(env.bonus_centres[other], zero) < 1e-3
    # Gaussian of width 0.1 and the action cost.
    assert env.reward(env.bonus_centres[2] + [0.1, 0.0], zero) == pytest.approx(np.exp(-0.5))
    assert env.reward(env.bonus_centres[2], np.array([1.0, -1.0])) == pytest.approx(1.0 - 0.02)


def test_point_mass_step_follows_the_dynamics():
    env = PointMassBonusEnv(n_bonus=2)
    env.reset(seed=4, options={"bonus": 0})
    env.position = np.array([0.95, 0.2])
    generator = copy.deepcopy(env.np_random)
    action = np.array([2.0, -0.5])  # clipped to [1, -0.5]
    obs, reward, terminated, truncated, info = env.step(action)
    expected = np.clip(np.array([0.95, 0.2]) + 0.1 * np.array([1.0, -0.5]) + 0.05 * generator.normal(size=2), -1, 1)
    np.testing.assert_allclose(env.position, expected)
    np.testing.assert_allclose(obs, expected.astype(np.float32))
    assert reward == pytest.approx(np.exp(-np.sum((expected - [0.7, 0.0]) ** 2) / 0.02) - 0.01 * 1.25)
    assert (terminated, truncated, info) == (False, False, {"active_bonus": 0})


def test_point_mass_step_matches_hand_computed_transitions():
    """Three transitions in one batch, worked out by hand: a plain move, clipped action and position, near a centre."""
    positions = np.array([[0.0, 0.0], [0.95, -0.98], [0.05, 0.6]])
    actions = np.array([[1.0, 0.0], [2.0, -0.5], [-0.5, 1.0]])  # the second is clipped to (1, -0.5)
    noise = np.array([[0.0, 0.0], [1.0, -1.0], [0.0, 0.2]])
    centres = np.array([[0.7, 0.0], [0.7, 0.0], [0.0, 0.7]])
    next_positions, rewards = point_mass_step(positions, actions, noise, centres)
    # (0.1, 0); (clip(0.95 + 0.1 + 0.05), clip(-0.98 - 0.05 - 0.05)) = (1, -1); (0.05 - 0.05, 0.6 + 0.1 + 0.01).
    np.testing.assert_allclose(next_positions, [[0.1, 0.0], [1.0, -1.0], [0.0, 0.71]], rtol=0, atol=1e-15)
    # exp(-||p' - c||^2 / 0.02) - 0.01 ||a||^2 with ||p' - c||^2 = 0.36, 0.09 + 1 and 0.01^2.
    expected = [np.exp(-18.0) - 0.01, np.exp(-54.5) - 0.0125, np.exp(-0.005) - 0.0125]
    np.testing.assert_allclose(rewards, expected, rtol=1e-12, atol=1e-15)
    # One row at a time, with a single centre broadcast: the same numbers.
    for row in range(3):
        position, reward = point_mass_step(positions[row], actions[row], noise[row], centres[row])
        np.testing.assert_array_equal(position, next_positions[row])
        assert reward == rewards[row]


def test_active_bonus_is_not_observed():
    actions = random_actions(gym.make(POINT_MASS_ID).action_space, 50, seed=3)
    runs = {}
    for bonus in (0, 1):
        env = gym.make(POINT_MASS_ID, n_bonus=2)
        obs, _ = env.reset(seed=9, options={"bonus": bonus})
        trajectory, rewards = [obs], []
        for action in actions:
            obs, reward, *_ = env.step(action)
            trajectory.append(obs)
            rewards.append(reward)
        runs[bonus] = (np.array(trajectory), np.array(rewards))
    # Same observations whichever bonus is active, while the rewards tell them apart.
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert not np.array_equal(runs[0][1], runs[1][1])
    assert gym.make(POINT_MASS_ID).observation_space.shape == (2,)


def test_active_bonus_is_uniform():
    env = gym.make(POINT_MASS_ID, n_bonus=4)
    env.reset(seed=0)
    counts = np.bincount([env.reset()[1]["active_bonus"] for _ in range(4000)], minlength=4)
    assert counts.size == 4
    np.testing.assert_allclose(counts / 4000, 0.25, atol=5 * np.sqrt(0.25 * 0.75 / 4000))


@pytest.mark.parametrize("n_bonus", [1, 2, 4])
def test_returns_of_a_fixed_policy_are_multimodal(n_bonus):
    env = gym.make(POINT_MASS_ID, n_bonus=n_bonus)
    env.reset(seed=n_bonus)
    target = env.unwrapped.bonus_centres[0]
    returns, bonuses = drive_to(env, target, 240)
    ordered = np.sort(returns)
    gaps = np.diff(ordered)
    hits = returns > 10.0
    # A hit sits on the bonus for ~43 of 50 steps at ~0.8 reward each; a miss only pays the action cost.
    np.testing.assert_array_equal(hits, bonuses == 0)
    if n_bonus == 1:
        assert hits.all()
        assert gaps.max() < 5.0  # one cluster
        assert ordered[-1] - ordered[0] < 15.0
    else:
        assert 0 < hits.sum() < returns.size  # both modes populated
        assert gaps.max() > 25.0  # separated by a wide empty gap
        assert returns[~hits].max() < 1.0 and returns[hits].min() > 20.0
        assert abs(hits.mean() - 1 / n_bonus) < 5 * np.sqrt((1 / n_bonus) * (1 - 1 / n_bonus) / returns.size)


def test_render_draws_point_and_active_centre():
    env = gym.make(POINT_MASS_ID, n_bonus=4, render_mode="rgb_array")
    env.reset(seed=0, options={"bonus": 1})
    env.unwrapped.position = np.array([-0.5, -0.5])
    image = env.render()
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8

    def pixel(x: float, y: float) -> np.ndarray:
        return image[int((1 - y) / 2 * 256), int((x + 1) / 2 * 256)]

    centres = env.unwrapped.bonus_centres
    np.testing.assert_array_equal(pixel(*centres[1]), (60, 170, 60))  # active: filled green
    np.testing.assert_array_equal(pixel(*centres[0]), (255, 255, 255))  # inactive: ring only
    np.testing.assert_array_equal(pixel(centres[0][0] + 0.1, centres[0][1]), (150, 150, 150))
    np.testing.assert_array_equal(pixel(-0.5, -0.5), (30, 80, 220))  # the point
    with pytest.warns(UserWarning, match="render_mode"):
        assert PointMassBonusEnv().render() is None
