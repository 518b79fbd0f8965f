"""The parts of the Sobolev target's gradient added for the revealed-bonus toy: the learned reward ``r(s, a, s')``, the
cVAE's Jacobian at a fixed latent, and the actor's exact mean over the critic noise."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from torch.func import jacrev, jvp, vmap

import sb3_dsdpg  # noqa: F401  (registers the envs)
from sb3_dsdpg import DSDPG
from sb3_dsdpg.dsdpg import ACTOR_MEAN_DRAWS
from sb3_dsdpg.tangents import world_model_with_tangents
from sb3_dsdpg.world_models import CVAEWorldModel, RewardModel


def bump_reward(obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor) -> th.Tensor:
    """A toy-like reward: a bump at (0.3, -0.2) in the next position, minus an action cost."""
    centre = th.tensor([0.3, -0.2], dtype=next_obs.dtype)
    return th.exp(-(next_obs - centre).pow(2).sum(-1) / 0.1) - 0.1 * actions.pow(2).sum(-1)


def test_reward_model_learns_the_reward_and_its_action_derivative():
    th.manual_seed(0)
    model = RewardModel(2, 2, net_arch=[64, 64])
    optimizer = th.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(1500):
        obs, actions = th.rand(256, 2) * 2 - 1, th.rand(256, 2) * 2 - 1
        next_obs = obs + 0.3 * actions
        loss, parts = model.loss(obs, actions, next_obs, bump_reward(obs, actions, next_obs))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert parts["mse"] < 0.02  # normalised units: 2% of the reward's variance left
    obs, actions = th.rand(500, 2) * 2 - 1, (th.rand(500, 2) * 2 - 1).requires_grad_(True)
    (learned,) = th.autograd.grad(model(obs, actions, obs + 0.3 * actions).sum(), actions)
    (true,) = th.autograd.grad(bump_reward(obs, actions, obs + 0.3 * actions).sum(), actions)
    cosine = th.nn.functional.cosine_similarity(learned, true).median()
    relative = (learned - true).norm(dim=-1).median() / true.norm(dim=-1).median()
    assert cosine > 0.95 and relative < 0.25, (float(cosine), float(relative))


def test_reward_model_broadcasts_over_draws():
    th.manual_seed(0)
    model = RewardModel(3, 2, net_arch=[16])
    obs, actions, next_obs = th.randn(4, 3), th.randn(4, 2), th.randn(4, 5, 3)
    model.loss(obs, actions, obs + 1, th.randn(4))  # moves the normalisers off the identity
    out = model(obs.unsqueeze(1), actions.unsqueeze(1), next_obs)
    assert out.shape == (4, 5)
    rows = model(obs.repeat_interleave(5, 0), actions.repeat_interleave(5, 0), next_obs.reshape(20, 3))
    assert th.allclose(out.reshape(-1), rows, atol=1e-6)


def test_bad_reward_model_arguments_raise():
    with pytest.raises(ValueError, match="net_arch"):
        RewardModel(2, 2, net_arch=[0])
    with pytest.raises(ValueError, match="positive"):
        RewardModel(0, 2)
    with pytest.raises(ValueError, match="reward_fn must be 'auto', 'learned'"):
        DSDPG("MlpPolicy", "Pendulum-v1", reward_fn="leaned")


def test_reward_fn_auto_resolves_where_a_world_model_is():
    assert DSDPG("MlpPolicy", "Pendulum-v1").reward_fn == "learned"
    assert DSDPG("MlpPolicy", "Pendulum-v1", distributional=False).reward_fn == "learned"  # MAGE gets it too
    returns_only = DSDPG("MlpPolicy", "Pendulum-v1", sobolev=False)
    assert returns_only.reward_fn is None and returns_only.reward_model is None
    assert DSDPG("MlpPolicy", "Pendulum-v1", reward_fn=None).reward_model is None


def test_learned_reward_trains_saves_and_loads(tmp_path):
    model = DSDPG(
        "MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0, world_model_warmup_steps=5,
        policy_kwargs=dict(net_arch=[16]), world_model_kwargs=dict(encoder_arch=[16], decoder_arch=[24], prior_arch=[16]),
    )  # fmt: skip
    assert model.reward_model is not None and model.reward_model.net[0].out_features == 64  # its own default size
    before = [p.detach().clone() for p in model.reward_model.parameters()]
    model.learn(80)
    assert all(not th.equal(a, b) for a, b in zip(before, model.reward_model.parameters(), strict=True))
    assert "train/reward_model_loss" in model.logger.name_to_value
    model.save(tmp_path / "m")
    loaded = DSDPG.load(tmp_path / "m", device="cpu")
    assert loaded.reward_fn == "learned"
    for a, b in zip(model.reward_model.state_dict().values(), loaded.reward_model.state_dict().values(), strict=True):
        assert th.equal(a, b)
    saved, restored = model.reward_model.optimizer.state_dict(), loaded.reward_model.optimizer.state_dict()
    assert saved["state"].keys() == restored["state"].keys()
    assert all(th.equal(saved["state"][k]["exp_avg"], restored["state"][k]["exp_avg"]) for k in saved["state"])


def _cvae(seed: int = 0) -> CVAEWorldModel:
    th.manual_seed(seed)
    model = CVAEWorldModel(3, 2, latent_dim=4, encoder_arch=[16], decoder_arch=[16, 16], prior_arch=[16]).double()
    with th.no_grad():
        for norm in (model.obs_normalizer, model.target_normalizer):
            norm.mean.uniform_(-0.5, 0.5)
            norm.var.uniform_(0.5, 2.0)
    return model


def test_held_latent_is_the_decoders_derivative_at_fixed_eps():
    model = _cvae()
    obs, actions = th.randn(6, 3, dtype=th.float64), th.rand(6, 2, dtype=th.float64) * 2 - 1
    noise = th.randn(6, 1, 4, dtype=th.float64)
    held = model.sample(obs, actions, noise=noise, hold_latent=True)
    free = model.sample(obs, actions, noise=noise)
    assert all(th.equal(a, b) for a, b in zip(held, free, strict=True))  # the same values
    # The latent eps = mu_p + sigma_p * noise at the replay's (s, a), then the decoder alone as a function of a.
    with th.no_grad():
        p_mean, p_log_std = model._gaussian(model.prior, model._condition(obs, actions))
        eps = p_mean + p_log_std.exp() * noise[:, 0]

    def decoded(o: th.Tensor, a: th.Tensor, e: th.Tensor) -> th.Tensor:
        out = model.target_normalizer.denormalize(model.decoder(th.cat([model._condition(o, a), e])))
        return th.cat([o + out[:3], out[3:]])

    def sampled(o: th.Tensor, a: th.Tensor, n: th.Tensor, hold: bool) -> th.Tensor:
        next_obs, reward = model.sample(o[None], a[None], noise=n[None, None], hold_latent=hold)
        return th.cat([next_obs[0, 0], reward[0]])

    expected = vmap(jacrev(decoded, argnums=1))(obs, actions, eps)
    got = vmap(jacrev(lambda o, a, n: sampled(o, a, n, True), argnums=1))(obs, actions, noise[:, 0])
    moving = vmap(jacrev(lambda o, a, n: sampled(o, a, n, False), argnums=1))(obs, actions, noise[:, 0])
    assert th.allclose(got, expected, atol=1e-12)
    assert (moving - expected).abs().max() > 1e-3  # the standardised noise moves eps with the prior: not the same


@pytest.mark.parametrize("hold", [True, False])
def test_hand_written_tangents_hold_the_latent_as_sample_does(hold):
    model = _cvae(1)
    obs, actions = th.randn(5, 3, dtype=th.float64), th.rand(5, 2, dtype=th.float64) * 2 - 1
    noise, tangents = th.randn(5, 2, 4, dtype=th.float64), th.randn(5, 3, 2, dtype=th.float64)
    next_obs, d_next, rewards, d_rewards = world_model_with_tangents(model, obs, actions, None, tangents, noise, hold)
    for j in range(3):
        (ref_next, ref_rewards), (t_next, t_rewards) = jvp(
            lambda a: model.sample(obs, a, noise=noise, hold_latent=hold), (actions,), (tangents[:, j],)
        )
        assert th.allclose(next_obs, ref_next) and th.allclose(rewards, ref_rewards)
        assert th.allclose(d_next[..., j], t_next, atol=1e-12) and th.allclose(d_rewards[..., j], t_rewards, atol=1e-12)


def test_hybrid_latent_switch_reaches_the_target():
    assert not DSDPG("MlpPolicy", "Pendulum-v1").target_options.hold_latent  # "standard" by default
    assert DSDPG("MlpPolicy", "Pendulum-v1", hybrid_latent="fixed").target_options.hold_latent
    with pytest.raises(ValueError, match="hybrid_latent must be one of"):
        DSDPG("MlpPolicy", "Pendulum-v1", hybrid_latent="prior")


def _actor_objective_gradient(model: DSDPG, obs: th.Tensor, noise: th.Tensor) -> th.Tensor:
    """d/da of the critics' mean return at a = pi(s), per row ``(B, A)``."""
    actions = model.actor(obs).detach().requires_grad_(True)
    (grad,) = th.autograd.grad(model.critic.mean_over_samples(obs, actions, noise).sum(), actions)
    return grad


@pytest.mark.parametrize("n_critics", [1, 2])
def test_shared_noise_mean_is_the_mean_of_the_samples(n_critics):
    model = DSDPG(
        "MlpPolicy", gym.make("sb3_dsdpg/PointMassRevealedBonus-v0", n_bonus=4), seed=0, device="cpu",
        policy_kwargs=dict(net_arch=[32, 32], n_critics=n_critics, share_critic_noise=False),
    )  # fmt: skip
    model.policy.double()
    obs = th.rand(7, model.observation_space.shape[0], dtype=th.float64)
    actions = (th.rand(7, 2, dtype=th.float64) * 2 - 1).requires_grad_(True)
    noise = th.randn(1, n_critics, 300, model.critic.noise_dim, dtype=th.float64)
    mean = model.critic.mean_over_samples(obs, actions, noise)
    samples = model.critic(obs, actions, noise.expand(7, -1, -1, -1)).mean(-1)
    assert mean.shape == (7, n_critics) and th.allclose(mean, samples, atol=1e-10)
    (got,) = th.autograd.grad(mean.sum(), actions)
    (expected,) = th.autograd.grad(samples.sum(), actions)
    assert th.allclose(got, expected, atol=1e-10)


def test_exact_actor_mean_reads_the_critic_better_than_ten_draws_per_row():
    env = gym.make("sb3_dsdpg/PointMassRevealedBonus-v0", n_bonus=4)
    model = DSDPG("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=dict(net_arch=[64, 64], share_critic_noise=False))
    th.manual_seed(1)
    with th.no_grad():  # a critic whose samples spread: phi's weights larger than at initialisation
        for net in model.critic.nets:
            for layer in net.phi:
                if isinstance(layer, th.nn.Linear):
                    layer.weight.mul_(3.0)
    obs = th.as_tensor(np.stack([env.observation_space.sample() for _ in range(64)]))
    k, dim = model.critic.n_critics, model.critic.noise_dim
    reference = _actor_objective_gradient(model, obs, th.randn(1, k, 100_000, dim))
    exact = _actor_objective_gradient(model, obs, th.randn(1, k, ACTOR_MEAN_DRAWS, dim))
    per_row = _actor_objective_gradient(model, obs, model.critic.sample_noise(64, model.n_samples))

    def error(grad: th.Tensor) -> float:
        return float(((grad - reference).norm(dim=-1) / reference.norm(dim=-1)).median())

    assert error(exact) < 0.5 * error(per_row), (error(exact), error(per_row))
    assert error(exact) < 0.1
