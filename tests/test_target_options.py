"""``TargetOptions``, the settings of the TD targets, and the one-step target that training and diagnostics share."""

import dataclasses

import pytest
import torch as th
from helpers import float64_batch, float64_model, model_targets

from sb3_dsdpg import DSDPG
from sb3_dsdpg.targets import TargetOptions, discount_not_done, flatten_obs, one_step_targets

pytestmark = pytest.mark.usefixtures("float64_observations")


def test_defaults_and_per_draw():
    options = TargetOptions(n_samples=6, n_model_draws=3)
    assert (options.target_policy_noise, options.target_noise_clip, options.per_draw) == (0.2, 0.5, 2)
    assert not options.deterministic_critic and options.sobolev_inputs == "action"
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.n_samples = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_samples=0), "positive multiple"),
        (dict(n_samples=4, n_model_draws=3), "n_target_model_draws"),
        (dict(n_samples=4, n_model_draws=0), "n_target_model_draws"),
        (dict(n_samples=4, target_policy_noise=-0.1), "target_policy_noise"),
        (dict(n_samples=4, target_noise_clip=-0.5), "target_noise_clip"),
        (dict(n_samples=4, target_policy_noise=float("nan")), "target_policy_noise"),
        (dict(n_samples=4, sobolev_inputs="state"), "sobolev_inputs"),
    ],
)
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TargetOptions(**kwargs)


def test_the_models_options():
    model = DSDPG("MlpPolicy", "Pendulum-v1", n_samples=6, n_target_model_draws=2, target_policy_noise=0.1, device="cpu")
    # reward_fn="auto": the learned reward model itself (fitted in the critic's units); the latent as hybrid_latent says.
    hold_latent = model.hybrid_latent == "fixed"
    assert model.reward_fn == "learned"
    assert model.target_options == TargetOptions(6, 2, 0.1, 0.5, False, "action", model.reward_model, hold_latent)
    mage = DSDPG(
        "MlpPolicy", "Pendulum-v1", distributional=False, sobolev_inputs="state_action", reward_fn=None,
        hybrid_latent="standard", device="cpu",
    )  # fmt: skip
    assert mage.target_options == TargetOptions(1, 1, 0.2, 0.5, True, "state_action", None, False)
    fixed = DSDPG("MlpPolicy", "Pendulum-v1", n_samples=4, reward_fn=None, hybrid_latent="fixed", device="cpu")
    assert fixed.target_options == TargetOptions(4, 1, 0.2, 0.5, False, "action", None, True)


def test_deterministic_critic_noise_is_zero():
    model = float64_model("Pendulum-v1", "factorized")
    xi = TargetOptions(4, deterministic_critic=True).critic_noise(model.critic_target, 3, 4, th.float64)
    assert xi.dtype == th.float64 and xi.shape[1:] == (2, 4, model.critic_target.noise_dim) and not xi.any()


@pytest.mark.parametrize("reward_fn", ["learned", None])
def test_sobolev_target_samples_are_the_one_step_targets_of_their_draws(reward_fn):
    """The target's samples (hand-written tangent path) are the shared one-step targets at the same draws, with the
    model's reward (the learned one by default, or the world model's)."""
    model = float64_model("Pendulum-v1", "factorized", reward_fn=reward_fn)
    obs, actions = float64_batch(model)
    dones = th.tensor([[0.0], [1.0], [0.0], [0.0], [0.0]], dtype=th.float64)
    y, _ = model_targets(model, obs, actions, dones, 0.9, seed=11)
    options = dataclasses.replace(model.target_options, target_policy_noise=0.2, target_noise_clip=0.5)
    batch, draws = actions.shape[0], options.n_model_draws
    th.manual_seed(11)  # the draws of sobolev_td_targets, in its order
    model_noise = th.randn(batch, draws, model.world_model.latent_dim, dtype=th.float64)
    smoothing = options.smoothing_noise(batch * draws, actions)
    xi = options.critic_noise(model.critic_target, batch * draws, options.per_draw, th.float64)
    networks = (model.world_model, model.actor_target, model.critic_target, model.observation_space)
    flat, discount = flatten_obs(model.observation_space, obs, th.float64), discount_not_done(0.9, dones, th.float64)
    assert (options.reward_fn is None) == (reward_fn is None)
    with th.no_grad():  # all-model target (no real outcome): the latent is not held whatever hybrid_latent says
        expected = one_step_targets(
            *networks, flat, actions, discount, model_noise, smoothing, xi, options.reward_fn, hold_latent=False
        )
    assert y.shape == expected.shape == (batch, 2, model.n_samples)
    assert th.allclose(y, expected, atol=1e-12)


def test_bad_target_noise_raises_at_construction():
    with pytest.raises(ValueError, match="target_noise_clip must be >= 0"):
        DSDPG("MlpPolicy", "Pendulum-v1", target_noise_clip=-0.5)
