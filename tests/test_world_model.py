"""The cVAE world model recovers a known stochastic transition, and its interface behaves as documented."""

import pytest
import torch as th
from helpers import fit_and_check_linear_gaussian

from sb3_dsdpg.world_models import CVAEWorldModel, RunningNormalizer, batch_variance


def test_cvae_recovers_linear_gaussian_mean_and_std():
    th.manual_seed(0)
    model = CVAEWorldModel(2, 1, latent_dim=4, encoder_arch=[64, 64], decoder_arch=[64, 64], prior_arch=[64, 64])
    _, parts = fit_and_check_linear_gaussian(model, 2500)
    assert parts["kl"] > 0.5, "the latent must carry the transition noise (no posterior collapse)"


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
    assert norm.count == 1000
    # The first batch alone: its own statistics, exactly as batch_variance gives them.
    first = RunningNormalizer(4)
    first.update(data[:137])
    mean, var = batch_variance(data[:137])
    assert th.equal(first.mean, mean) and th.equal(first.var, var)
    # std is sqrt(var), floored at eps (a zero or slightly negative variance from round-off).
    first.var.copy_(th.tensor([4.0, 0.0, -1e-9, 1e-12]))
    assert th.allclose(first.std, th.tensor([2.0, 1e-4, 1e-4, 1e-4]), rtol=1e-6, atol=0)


def test_batch_variance_closed_form_and_torch():
    mean, var = batch_variance(th.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]]))
    assert th.equal(mean, th.tensor([2.0, 1.0])) and th.allclose(var, th.tensor([8.0 / 3.0, 0.0]))
    # Two passes keep float32 accurate on a large offset, where E[x^2] - E[x]^2 would cancel.
    data = th.randn(256, 40, generator=th.Generator().manual_seed(0)) * 0.01 + 1000.0
    mean, var = batch_variance(data)
    reference = data.double().var(0, unbiased=False)
    assert th.allclose(mean, data.mean(0)) and th.allclose(var.double(), reference, rtol=1e-3)


def test_bad_world_model_arguments_raise():
    with pytest.raises(ValueError, match="latent_dim"):
        CVAEWorldModel(3, 2, latent_dim=0)
    with pytest.raises(ValueError, match="max_decoder_std"):
        CVAEWorldModel(3, 2, min_decoder_std=0.5, max_decoder_std=0.1)
