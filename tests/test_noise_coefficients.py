"""The factorized critic with per-row noise contracts ``psi`` and its tangents with the coefficients
``w * (1 + phi(xi))`` through ``phi``'s last hidden layer (``FactorizedSampleNet.dot_coefficients``): the same values,
tangents and parameter gradients as forming the coefficients, for every shape of ``phi``, online and in the target."""

import pytest
import torch as th
from torch import nn

from sb3_dsdpg.policies import FactorizedSampleNet
from sb3_dsdpg.tangents import _critic

B, N, S, A, K = 7, 5, 4, 3, 6


def _net(noise_net_arch: list[int]) -> FactorizedSampleNet:
    th.manual_seed(0)
    net = FactorizedSampleNet(S, A, K, [16, 12], noise_net_arch, nn.SiLU).double()
    with th.no_grad():
        for param in net.parameters():
            param.add_(0.3 * th.randn_like(param))  # biases away from zero, so every term counts
    return net


def _explicit(net: FactorizedSampleNet, features, actions, noise, directions):
    """The coefficients formed explicitly: ``z = psi . coef + b`` and ``dz = J_psi . coef`` per sample."""
    psi, jac = net.psi(features, actions, True, directions=directions)
    coef = net.coefficients(noise)  # (B, N, H)
    return th.einsum("bh,bnh->bn", psi, coef) + net.head.bias, th.einsum("bch,bnh->bnc", jac, coef)


@pytest.mark.parametrize("noise_net_arch", [[64], [], [8, 5]])
# psi with 3 tangents (the full gradient), 2 directions, and 5 directions (more tangents than the action has).
@pytest.mark.parametrize("k", [None, 2, 5])
@pytest.mark.parametrize("strided_noise", [False, True])
def test_low_rank_contraction_equals_the_explicit_coefficients(noise_net_arch, k, strided_noise):
    net = _net(noise_net_arch)
    th.manual_seed(1)
    features, actions = th.randn(B, S).double(), th.randn(B, A).double()
    # A critic's slice of the (B, n_critics, N, K) noise is a strided view, as the critics receive it.
    noise = th.randn(B, 2, N, K).double()[:, 1] if strided_noise else th.randn(B, N, K).double()
    directions = None if k is None else th.randn(B, k, A).double()
    z, grad = net(features, actions, noise, with_grad=True, directions=directions)
    z_ref, grad_ref = _explicit(net, features, actions, noise, directions)
    assert z.shape == (B, N) and grad.shape == (B, N, A if k is None else k)
    assert th.allclose(z, z_ref, rtol=1e-12, atol=1e-12) and th.allclose(grad, grad_ref, rtol=1e-12, atol=1e-12)
    assert grad.abs().max() > 1e-2

    weights = th.randn_like(z), th.randn_like(grad)
    params = list(net.parameters())
    got = th.autograd.grad((z * weights[0]).sum() + (grad * weights[1]).sum(), params)
    ref = th.autograd.grad((z_ref * weights[0]).sum() + (grad_ref * weights[1]).sum(), params)
    for (name, _), g, r in zip(net.named_parameters(), got, ref, strict=True):
        assert th.allclose(g, r, rtol=1e-10, atol=1e-12), name
    assert all(g.abs().max() > 0 for g in got)


def test_target_critic_with_per_row_noise_equals_the_explicit_coefficients():
    net = _net([64])
    th.manual_seed(2)
    features, actions, noise = th.randn(B, S).double(), th.randn(B, A).double(), th.randn(B, N, K).double()
    tangents = th.randn(2, B, A).double()  # two tangents of the action, none of the features
    value, tangent = _critic(net, (features, None), (actions, tangents), noise)
    z_ref, grad_ref = _explicit(net, features, actions, noise, tangents.transpose(0, 1))
    assert th.allclose(value, z_ref, rtol=1e-12, atol=1e-12)
    assert th.allclose(tangent, grad_ref.permute(2, 0, 1), rtol=1e-12, atol=1e-12)
