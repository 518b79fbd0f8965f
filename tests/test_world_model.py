"""The cVAE world model recovers a known stochastic transition, and its interface behaves as documented."""

import pytest
import torch as th

from sb3_dsdpg.world_models import CVAEWorldModel, RunningNormalizer

NOISE_STD = th.tensor([0.05, 0.2, 0.1])  # of (Delta s_0, Delta s_1, r)


def _transition(obs: th.Tensor, actions: th.Tensor, gen: th.Generator) -> tuple[th.Tensor, th.Tensor]:
    """Linear-Gaussian dynamics: s' = s + A s + B a + noise, r = c.s + d a + noise."""
    mean_delta = th.stack([0.1 * obs[:, 1] + 0.3 * actions[:, 0], -0.2 * obs[:, 0] + 0.1 * actions[:, 0]], dim=-1)
    mean_reward = obs[:, 0] - 0.5 * actions[:, 0]
    noise = th.randn(obs.shape[0], 3, generator=gen) * NOISE_STD
    return obs + mean_delta + noise[:, :2], mean_reward + noise[:, 2]


def test_cvae_recovers_linear_gaussian_mean_and_std():
    th.manual_seed(0)
    gen = th.Generator().manual_seed(0)
    model = CVAEWorldModel(2, 1, latent_dim=4, encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])
    optimizer = th.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(2500):
        obs = th.rand(256, 2, generator=gen) * 2 - 1
        actions = th.rand(256, 1, generator=gen) * 2 - 1
        next_obs, rewards = _transition(obs, actions, gen)
        loss, parts = model.loss(obs, actions, next_obs, rewards)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert parts["kl"] > 0.5, "the latent must carry the transition noise (no posterior collapse)"
    test_obs = th.tensor([[0.5, -0.5], [-0.8, 0.2], [0.0, 0.9]])
    test_actions = th.tensor([[0.7], [-0.3], [0.0]])
    with th.no_grad():
        next_obs, rewards = model.sample(test_obs, test_actions, n_samples=4000)
    samples = th.cat([next_obs - test_obs.unsqueeze(1), rewards.unsqueeze(-1)], dim=-1)  # (3, 4000, 3)
    expected_mean = th.stack(
        [
            0.1 * test_obs[:, 1] + 0.3 * test_actions[:, 0],
            -0.2 * test_obs[:, 0] + 0.1 * test_actions[:, 0],
            test_obs[:, 0] - 0.5 * test_actions[:, 0],
        ],
        dim=-1,
    )
    # Tolerances: mean within 0.04 (a fifth of the largest noise std), std within 30 % of the truth.
    assert (samples.mean(1) - expected_mean).abs().max() < 0.04, samples.mean(1) - expected_mean
    ratio = samples.std(1) / NOISE_STD
    assert ((ratio > 0.7) & (ratio < 1.3)).all(), ratio


def test_sample_shapes_and_differentiability():
    model = CVAEWorldModel(3, 2)
    obs = th.randn(5, 3, requires_grad=True)
    actions = th.randn(5, 2, requires_grad=True)
    next_obs, rewards = model.sample(obs, actions, n_samples=7)
    assert next_obs.shape == (5, 7, 3) and rewards.shape == (5, 7)
    (next_obs.sum() + rewards.sum()).backward()
    assert obs.grad is not None and actions.grad is not None and actions.grad.abs().sum() > 0
    # Fixed noise gives the same samples.
    noise = th.randn(5, 2, model.latent_dim)
    a = model.sample(obs, actions, 2, noise=noise)[0]
    b = model.sample(obs, actions, 2, noise=noise)[0]
    assert th.equal(a, b)


def test_running_normalizer_matches_batch_statistics():
    data = th.randn(1000, 4) * th.tensor([1.0, 2.0, 3.0, 0.5]) + 3.0
    norm = RunningNormalizer(4)
    for chunk in data.split(137):
        norm.update(chunk)
    assert th.allclose(norm.mean, data.mean(0), atol=1e-4)
    assert th.allclose(norm.var, data.var(0, unbiased=False), rtol=1e-4)


def test_bad_world_model_arguments_raise():
    with pytest.raises(ValueError, match="latent_dim"):
        CVAEWorldModel(3, 2, latent_dim=0)
    with pytest.raises(ValueError, match="max_decoder_std"):
        CVAEWorldModel(3, 2, min_decoder_std=0.5, max_decoder_std=0.1)
