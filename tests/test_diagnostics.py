"""Gradient diagnostics: the Monte-Carlo reference reproduces the point-mass env and its finite differences are
right, the model-target gradients match forward-mode derivatives, and the callback and the command write figures."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.utils import seeding
from helpers import small_dsdpg
from stable_baselines3.common import policies as sb3_policies
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sb3_dsdpg import DSDPG
from sb3_dsdpg.envs.point_mass import PointMassBonusEnv
from sb3_dsdpg.targets import flatten_obs, per_row_jacobian
from sb3_dsdpg.tools.diagnostics import (
    GradientDiagnosticsCallback,
    diagnose,
    main,
    model_target_samples,
    one_step_targets,
    plot_diagnostics,
    point_mass_reference,
    point_mass_returns,
)


def _point_mass_model(gamma: float = 0.95) -> DSDPG:
    model = small_dsdpg(gym.make("sb3_dsdpg/PointMassBonus-v0"), gamma=gamma, seed=0)
    with th.no_grad():  # a policy that moves, so the returns depend on it
        model.actor.mu[-2].bias.copy_(th.tensor([1.0, 0.3]))
    return model


def test_monte_carlo_rollouts_reproduce_the_env():
    """With the env's own draws (replayed from its seed), the simulated return equals the episode's discounted return."""
    model = _point_mass_model()
    env = gym.make("sb3_dsdpg/PointMassBonus-v0", n_bonus=4)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        total, t, done = 0.0, 0, False
        actions = []
        while not done:
            action = model.predict(obs, deterministic=True)[0]
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += model.gamma**t * reward
            t, done = t + 1, terminated or truncated
        rng, _ = seeding.np_random(seed)
        assert rng.integers(4) == info["active_bonus"]  # the reset's draw, then one normal pair per step
        noise = th.as_tensor(np.stack([rng.normal(size=2) for _ in range(t)]))
        centre = th.as_tensor(env.unwrapped.bonus_centres[info["active_bonus"]])
        simulated = point_mass_returns(model, th.zeros(2), th.as_tensor(actions[0]), centre, noise)
        assert t == 50 and abs(simulated.item() - total) < 1e-4 * (1 + abs(total)), (simulated.item(), total)


def test_monte_carlo_gradient_matches_the_one_step_closed_form():
    """
    Horizon 1: G = b - 0.01 |a|^2 with b = exp(-|p' - c|^2 / (2 w^2)) and p' = p + 0.1 a + 0.05 noise, so per sample
    |dG/da + 0.02 a| = 0.1 b |p' - c| / w^2 = 0.1 b sqrt(-2 w^2 log b) / w^2, a check that needs no draw.
    """
    model = _point_mass_model()
    env = PointMassBonusEnv(n_bonus=4)
    states = np.array([[0.6, 0.0], [0.0, 0.55]])
    returns, grads = point_mass_reference(model, env, states, n_rollouts=400, horizon=1, seed=3)
    actions = model.predict(states.astype(np.float32), deterministic=True)[0].astype(np.float64)
    bonus = returns + 0.01 * (actions**2).sum(-1, keepdims=True)  # (B, R)
    near = bonus > 1e-6  # far from the active centre, b is lost in the subtraction's rounding
    assert near.sum() > 100
    expected = 0.1 * bonus[near] * np.sqrt(-2 * env.bonus_width**2 * np.log(bonus[near])) / env.bonus_width**2
    measured = np.linalg.norm(grads + 0.02 * actions[:, None], axis=-1)[near]
    assert np.allclose(measured, expected, rtol=1e-4, atol=1e-6), np.abs(measured - expected).max()
    assert expected.max() > 0.3  # near a bonus the gradient is large (at most 0.1 exp(-1/2) / w): not vacuous
    # The gradient's direction points to the active centre: it is a random variable across rollouts.
    assert grads.std(axis=1).min() > 0.1


def test_model_target_gradients_match_forward_mode(monkeypatch):
    monkeypatch.setattr(sb3_policies, "preprocess_obs", lambda obs, space, normalize_images=True: obs)
    model = small_dsdpg("Pendulum-v1", seed=0)
    model.policy.double()
    model.world_model.double()
    model.reward_model.double()
    states = np.random.default_rng(0).uniform(-1, 1, (3, 3))
    actions = np.array([[0.3], [-0.5], [0.8]])
    n = 5
    noise = (
        th.randn(3 * n, 1, model.world_model.latent_dim, dtype=th.float64),
        0.1 * th.randn(3 * n, 1, dtype=th.float64),
        th.randn(3 * n, 2, 1, model.critic.noise_dim, dtype=th.float64),
    )
    y, grads = model_target_samples(model, states, actions, n_samples=n, fd_eps=1e-6, noise=noise)
    flat = flatten_obs(model.observation_space, th.as_tensor(states)).repeat_interleave(n, dim=0)
    act = th.as_tensor(actions).repeat_interleave(n, dim=0)
    with th.no_grad():
        value, jac = per_row_jacobian(lambda a: one_step_targets(model, flat, a, *noise), act)  # (3 n, K), (3 n, K, 1)
    assert y.shape == (3, 2 * n) and grads.shape == (3, 2 * n, 1)
    assert np.allclose(y, value.reshape(3, -1).numpy(), atol=1e-12)
    assert np.allclose(grads, jac.reshape(3, -1, 1).numpy(), atol=1e-6, rtol=1e-5)
    assert np.abs(grads).max() > 1e-3


def test_diagnose_and_plot_have_every_source():
    model = _point_mass_model()
    diagnostics = diagnose(model, np.zeros((2, 2)), PointMassBonusEnv(4), n_samples=16, n_rollouts=50, horizon=20)
    assert len(diagnostics) == 2
    for diag in diagnostics:
        assert set(diag.returns) == set(diag.grads) == {"critic", "model", "reference"}
        assert diag.returns["critic"].shape == (2 * 16,) and diag.grads["critic"].shape == (2 * 16, 2)
        assert diag.grads["reference"].shape == (50, 2)
        json.dumps(diag.summary())
    fig = plot_diagnostics(diagnostics, "t")
    assert len(fig.axes) == 4 and len(fig.axes[1].collections) == 6  # 3 sources: samples and mean each


def _tensorboard_tags(log_dir) -> dict:
    events = sorted(log_dir.rglob("events.out.tfevents.*"))
    assert events, "no tensorboard event file"
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    return accumulator.Tags()


@pytest.mark.parametrize("env_id", ["sb3_dsdpg/PointMassBonus-v0", "Pendulum-v1"])
def test_callback_logs_figures_to_tensorboard(tmp_path, env_id):
    model = small_dsdpg(env_id, learning_starts=100, tensorboard_log=str(tmp_path), seed=0)
    callback = GradientDiagnosticsCallback(log_freq=100, n_samples=16, n_rollouts=50, horizon=20)
    model.learn(300, callback=callback)
    assert callback.n_figures == 2  # at steps 200 and 300, not before training starts
    tags = _tensorboard_tags(tmp_path)
    assert "diagnostics/gradients" in tags["images"]
    assert "diagnostics/gradients_grad_error" in tags["scalars"]
    if env_id == "Pendulum-v1":
        assert callback.states.shape == (2, 3)  # the first stored observations
    else:
        assert np.array_equal(callback.states, np.zeros((1, 2)))


def test_command_saves_png_and_summary(tmp_path):
    model = _point_mass_model()
    model.save(tmp_path / "pm.zip")
    out = tmp_path / "out"
    args = ["--model", str(tmp_path / "pm.zip"), "--env", "sb3_dsdpg/PointMassBonus-v0", "--out", str(out)]
    main([*args, "--n-samples", "16", "--n-rollouts", "50", "--horizon", "10", "--n-states", "2"])
    assert (out / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "diagnostics.json").read_text())
    assert len(summary) == 2 and {"critic", "model", "reference"} <= set(summary[0])
