"""The RealNVP world model: an exact bijection with the right log-determinant, the cVAE's interface, and it
recovers a known stochastic transition (the setup and tolerances of test_world_model.py's cVAE test)."""

import pytest
import torch as th
from helpers import fit_and_check_linear_gaussian

from sb3_dsdpg.world_models import RealNVPWorldModel


def _random_flow(obs_dim: int = 2, action_dim: int = 1, seed: int = 0) -> RealNVPWorldModel:
    """A float64 flow far from its identity initialisation, with non-trivial normalisation statistics."""
    th.manual_seed(seed)
    flow = RealNVPWorldModel(obs_dim, action_dim, n_couplings=4, hidden_arch=[16, 16]).double()
    with th.no_grad():
        for param in flow.parameters():
            param.add_(0.3 * th.randn_like(param))
        flow.obs_normalizer.mean.uniform_(-0.5, 0.5)
        flow.obs_normalizer.var.uniform_(0.5, 2.0)
        flow.target_normalizer.mean.uniform_(-0.5, 0.5)
        flow.target_normalizer.var.uniform_(0.5, 2.0)
    return flow


def test_inverse_undoes_forward_and_log_dets_cancel():
    flow = _random_flow()
    obs, actions = th.randn(5, 2, dtype=th.float64), th.randn(5, 1, dtype=th.float64)
    base = th.randn(5, 7, 3, dtype=th.float64)
    with th.no_grad():
        x, log_det = flow(base, obs, actions)
        back, inv_log_det = flow.inverse(x, obs, actions)
    assert x.shape == base.shape and log_det.shape == (5, 7)
    assert not th.allclose(x, base, atol=0.1), "the flow must not be (close to) the identity for this check"
    assert th.allclose(back, base, atol=1e-12), (back - base).abs().max()
    assert th.allclose(log_det, -inv_log_det, atol=1e-12)


def test_log_det_equals_numerical_jacobian():
    flow = _random_flow()
    obs, actions = th.randn(3, 2, dtype=th.float64), th.randn(3, 1, dtype=th.float64)
    base = th.randn(3, 1, 3, dtype=th.float64)
    _, log_det = flow(base, obs, actions)
    targets = flow(base, obs, actions)[0].detach()
    _, inv_log_det = flow.inverse(targets, obs, actions)
    for b in range(3):
        jac = th.autograd.functional.jacobian(
            lambda u, b=b: flow(u.reshape(1, 1, 3), obs[b : b + 1], actions[b : b + 1])[0].reshape(3), base[b, 0]
        )
        numeric = th.linalg.slogdet(jac)[1]
        assert abs(numeric - log_det[b, 0]) < 1e-10, (numeric, log_det[b, 0])
        inv_jac = th.autograd.functional.jacobian(
            lambda x, b=b: flow.inverse(x.reshape(1, 1, 3), obs[b : b + 1], actions[b : b + 1])[0].reshape(3), targets[b, 0]
        )
        assert abs(th.linalg.slogdet(inv_jac)[1] - inv_log_det[b, 0]) < 1e-10
        assert abs(numeric) > 0.1  # a non-trivial volume change


def test_log_prob_is_a_normalised_density():
    """The density of (Delta s, r) (2-D for a 1-D observation) integrates to one on a grid covering the samples."""
    flow = _random_flow(obs_dim=1, action_dim=1)
    obs, actions = th.tensor([[0.3]], dtype=th.float64), th.tensor([[-0.2]], dtype=th.float64)
    # (Delta s, r) on a fine 2-D grid around the flow's samples; the density must integrate to 1.
    with th.no_grad():
        next_obs, rewards = flow.sample(obs, actions, 20000)
        lo_s, hi_s = (next_obs[0, :, 0] - obs[0, 0]).quantile(th.tensor([0.0, 1.0], dtype=th.float64))
        lo_r, hi_r = rewards[0].quantile(th.tensor([0.0, 1.0], dtype=th.float64))
        pad_s, pad_r = 0.5 * (hi_s - lo_s), 0.5 * (hi_r - lo_r)
        ds = th.linspace(lo_s - pad_s, hi_s + pad_s, 400, dtype=th.float64)
        rs = th.linspace(lo_r - pad_r, hi_r + pad_r, 400, dtype=th.float64)
        grid_s, grid_r = th.meshgrid(ds, rs, indexing="ij")
        n = grid_s.numel()
        log_p = flow.log_prob(obs.expand(n, -1), actions.expand(n, -1), obs + grid_s.reshape(-1, 1), grid_r.reshape(-1))
        # log_prob is the density of the normalised target: divide by the normaliser's volume change.
        mass = log_p.exp().sum() * (ds[1] - ds[0]) * (rs[1] - rs[0]) / flow.target_normalizer.std.prod()
    assert abs(mass - 1.0) < 0.02, mass


def test_realnvp_recovers_linear_gaussian_mean_and_std():
    th.manual_seed(0)
    model = RealNVPWorldModel(2, 1, n_couplings=2, hidden_arch=[64, 64])
    loss, parts = fit_and_check_linear_gaussian(model, 1500)
    assert set(parts) == {"nll"} and parts["nll"] == pytest.approx(loss.item())


def test_sample_interface_matches_the_cvae():
    model = RealNVPWorldModel(3, 2, hidden_arch=[32])
    assert model.latent_dim == 4  # (Delta s, r): the base draw has the target's size
    obs = th.randn(5, 3, requires_grad=True)
    actions = th.randn(5, 2, requires_grad=True)
    with th.no_grad():
        for param in model.parameters():
            param.add_(0.1 * th.randn_like(param))
    next_obs, rewards = model.sample(obs, actions, n_samples=7)
    assert next_obs.shape == (5, 7, 3) and rewards.shape == (5, 7)
    (next_obs.sum() + rewards.sum()).backward()
    assert obs.grad is not None and actions.grad is not None and actions.grad.abs().sum() > 0
    noise = th.randn(5, 2, model.latent_dim)
    a = model.sample(obs, actions, 2, noise=noise)
    b = model.sample(obs, actions, 2, noise=noise)
    assert th.equal(a[0], b[0]) and th.equal(a[1], b[1])
    # The noise is the base draw: the inverse of a sample gives it back.
    target = th.cat([a[0] - obs.unsqueeze(1), a[1].unsqueeze(-1)], dim=-1)
    base = model.inverse(model.target_normalizer.normalize(target), obs, actions)[0]
    assert th.allclose(base, noise, atol=1e-4)


def test_bad_realnvp_arguments_raise():
    with pytest.raises(ValueError, match="min_std"):
        RealNVPWorldModel(3, 2, min_std=0.0)
    with pytest.raises(ValueError, match="n_couplings"):
        RealNVPWorldModel(3, 2, n_couplings=-1)
    with pytest.raises(ValueError, match="coupling_scale_bound"):
        RealNVPWorldModel(3, 2, coupling_scale_bound=0.0)
