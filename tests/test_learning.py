"""Learning checks on Pendulum-v1 with fixed seeds (marked slow; CI runs them with ``-m slow``).

Settings: the quickstart's (64x64 networks and world model, batch 128, lr 1e-3, gamma 0.98, normal action noise
0.1, learning_starts 1000), i.e. smaller networks and batch than the defaults.
"""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.envs import IdentityEnvBox
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise

from sb3_dsdpg import DSDPG

PENDULUM = dict(
    learning_rate=1e-3,
    gamma=0.98,
    batch_size=128,
    learning_starts=1000,
    buffer_size=200_000,
    action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
    policy_kwargs=dict(net_arch=[64, 64]),
    world_model_kwargs=dict(encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64]),
)


def _best_eval_return(timesteps: int, stop_at: float, seed: int = 0, **kwargs) -> tuple[float, float]:
    """Train with an evaluation every 2,000 steps (5 episodes); return the best evaluation and a random policy's."""
    model = DSDPG("MlpPolicy", "Pendulum-v1", seed=seed, **{**PENDULUM, **kwargs})
    eval_env = Monitor(gym.make("Pendulum-v1"))
    random_return = evaluate_policy(model, eval_env, n_eval_episodes=5, deterministic=True)[0]
    callback = EvalCallback(
        eval_env,
        eval_freq=2000,
        n_eval_episodes=5,
        callback_on_new_best=StopTrainingOnRewardThreshold(stop_at, verbose=0),
        verbose=0,
    )
    model.learn(timesteps, callback=callback)
    return float(callback.best_mean_reward), float(random_return)


@pytest.mark.slow
def test_dsdpg_solves_pendulum():
    best, random_return = _best_eval_return(20_000, stop_at=-200.0)
    assert best >= -300.0, (best, random_return)


@pytest.mark.slow
@pytest.mark.parametrize("switch", [dict(sobolev=True, distributional=False), dict(sobolev=False, distributional=True)])
def test_baseline_switches_learn_pendulum(switch):
    best, random_return = _best_eval_return(10_000, stop_at=-400.0, **switch)
    # A random (untrained) policy scores about -1200 to -1500 here.
    assert best > random_return + 300.0, (best, random_return)
    assert best > -900.0, (best, random_return)


@pytest.mark.slow
def test_identity_env_box():
    """SB3's identity check for continuous actions: copy the observation into the action (reward 1 within 0.5)."""
    model = DSDPG(
        "MlpPolicy",
        IdentityEnvBox(eps=0.5),
        gamma=0.5,
        learning_rate=1e-3,
        batch_size=64,
        learning_starts=300,
        action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
        policy_kwargs=dict(net_arch=[64, 64]),
        world_model_kwargs=dict(encoder_arch=[64], decoder_arch=[64, 64], prior_arch=[64]),
        seed=1,
    )
    model.learn(3000)
    mean_reward, _ = evaluate_policy(model, Monitor(IdentityEnvBox(eps=0.5)), n_eval_episodes=10, deterministic=True)
    assert mean_reward >= 90.0  # out of 100


@pytest.mark.slow
@pytest.mark.parametrize("switch", [dict(), dict(sobolev=False)])
def test_finds_the_bonus_of_the_one_bonus_point_mass(switch):
    """The ladder's first task (docs/ablations.md): the default and the return-only rung drive to the one bonus and stay
    (about 35 per episode when found, 0-2 when not) with the quickstart's settings, 10,000 steps, on at least 2 of
    seeds 0-2. A seed's outcome is bimodal: float round-off alone moved the return-only rung's seed 0 from 35.5 to 1.5
    (2026-12-03, the same function computed in another order), so one seed cannot carry the check."""
    scores = []
    for seed in range(3):
        env = gym.make("sb3_dsdpg/PointMassBonus-v0", n_bonus=1)
        noise = NormalActionNoise(np.zeros(2), 0.1 * np.ones(2))
        model = DSDPG("MlpPolicy", env, seed=seed, **{**PENDULUM, "action_noise": noise}, **switch)
        model.learn(10_000)
        eval_env = Monitor(gym.make("sb3_dsdpg/PointMassBonus-v0", n_bonus=1))
        eval_env.reset(seed=10_000)
        scores.append(evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)[0])
        if sum(score >= 20.0 for score in scores) >= 2:
            return
    assert sum(score >= 20.0 for score in scores) >= 2, scores
