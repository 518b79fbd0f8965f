"""The critic ensemble's fast paths: the stacked evaluation (StackedFactorizedNets) against the critics one by one,
and row_dot, the batched product with a backward of its own."""

import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn
from torch.func import jvp, vmap

from sb3_dsdpg.policies import GenerativeCritic, StackedFactorizedNets, row_dot

OBS_DIM, ACTION_DIM, BATCH, N = 5, 3, 7, 4


def _critic(activation: type[nn.Module], net_arch: list[int], noise_net_arch: list[int], n_critics: int = 3):
    th.manual_seed(0)
    obs_space, action_space = spaces.Box(-1, 1, (OBS_DIM,)), spaces.Box(-1, 1, (ACTION_DIM,))
    critic = GenerativeCritic(
        obs_space, action_space, net_arch, FlattenExtractor(obs_space), OBS_DIM, activation,
        n_critics=n_critics, noise_net_arch=noise_net_arch,
    )  # fmt: skip
    return critic.double()


def _inputs(n_samples: int = N):
    gen = th.Generator().manual_seed(1)
    obs = th.randn(BATCH, OBS_DIM, generator=gen, dtype=th.float64)
    actions = th.randn(BATCH, ACTION_DIM, generator=gen, dtype=th.float64)
    noise = th.randn(BATCH, 3, n_samples, 8, generator=gen, dtype=th.float64)
    return obs, actions, noise, gen


CALLS = {
    "returns": lambda c, o, a, n, g: (c(o, a, n),),
    "action gradient": lambda c, o, a, n, g: c.forward_with_action_grad(o, a, n),
    "directions in the action": lambda c, o, a, n, g: c.forward_with_directional_grad(
        o, a, n, th.randn(BATCH, 2, ACTION_DIM, generator=g, dtype=th.float64)
    ),
    "directions in (s, a)": lambda c, o, a, n, g: c.forward_with_directional_grad(
        o, a, n, th.randn(BATCH, 2, OBS_DIM + ACTION_DIM, generator=g, dtype=th.float64)
    ),
    "state and action gradients": lambda c, o, a, n, g: c.forward_with_state_action_grad(o, a, n),
}


def _outputs_and_parameter_gradients(critic, call, stack: bool, n_samples: int = N):
    critic.stack_critics = stack
    obs, actions, noise, gen = _inputs(n_samples)
    outputs = call(critic, obs, actions, noise, gen)
    # A loss that weighs every output coordinate differently, so that a mix-up of critics or samples shows.
    loss = sum((x * th.linspace(0.5, 1.5, x.numel(), dtype=x.dtype).reshape(x.shape)).sum() for x in outputs)
    return outputs, th.autograd.grad(loss, list(critic.parameters()))


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    "activation, net_arch, noise_net_arch",
    [(nn.ReLU, [16, 16], [32]), (nn.SiLU, [8, 8, 8], [16, 8]), (nn.Tanh, [16], [])],
)
def test_stacked_critics_match_one_by_one(activation, net_arch, noise_net_arch, call):
    critic = _critic(activation, net_arch, noise_net_arch)
    # Enough samples that the state-action gradient takes the forward-mode (stackable) path.
    n_samples = OBS_DIM + ACTION_DIM if call == "state and action gradients" else N
    stacked, stacked_grads = _outputs_and_parameter_gradients(critic, CALLS[call], True, n_samples)
    single, single_grads = _outputs_and_parameter_gradients(critic, CALLS[call], False, n_samples)
    assert [x.shape for x in stacked] == [x.shape for x in single]
    for x, y in zip(stacked, single, strict=True):
        assert (x - y).abs().max() < 1e-12 and y.abs().max() > 1e-3
    for x, y in zip(stacked_grads, single_grads, strict=True):
        assert (x - y).abs().max() < 1e-12
    assert sum(g.abs().sum() for g in single_grads) > 0


def test_stacked_critics_are_used_where_they_apply():
    critic = _critic(nn.ReLU, [16, 16], [32])
    _, _, noise, _ = _inputs()
    assert isinstance(critic.stacked_nets(noise), StackedFactorizedNets)
    assert critic.stacked_nets(noise[:1]) is None  # noise shared across the batch
    # The reverse-mode gradient in (f, a), which the nets pick for fewer samples than inputs, stays one by one.
    assert critic.stacked_nets(noise, with_grad=True, wrt_features=True) is None
    critic.stack_critics = False
    assert critic.stacked_nets(noise) is None
    assert _critic(nn.ReLU, [16, 16], [32], n_critics=1).stacked_nets(noise[:, :1]) is None


def test_stacked_critics_train_the_critics_modules():
    """The stacks are made from the critics' own parameters: a step on a loss through them moves every critic."""
    critic = _critic(nn.ReLU, [16, 16], [32])
    optimizer = th.optim.SGD(critic.parameters(), lr=0.1)
    before = [p.detach().clone() for p in critic.parameters()]
    obs, actions, noise, _ = _inputs()
    z, grad = critic.forward_with_action_grad(obs, actions, noise)
    (z.square().mean() + grad.square().mean()).backward()
    optimizer.step()
    moved = [not th.equal(b, p) for b, p in zip(before, critic.parameters(), strict=True)]
    assert all(moved)


def _row_dot_inputs():
    gen = th.Generator().manual_seed(3)
    x = th.randn(4, 5, 6, generator=gen, dtype=th.float64, requires_grad=True)
    y = th.randn(4, 2, 7, generator=gen, dtype=th.float64)[..., 1:].requires_grad_(True)  # a strided slice, as used
    return x, y


def test_row_dot_values_and_first_and_second_derivatives():
    x, y = _row_dot_inputs()
    assert th.equal(row_dot(x, y), th.bmm(x, y.transpose(1, 2)))
    assert th.autograd.gradcheck(row_dot, (x, y))
    assert th.autograd.gradgradcheck(row_dot, (x, y))
    # The gradient of one input only (the actor's backward needs y's): the same as autograd's bmm backward.
    g = th.randn(4, 5, 2, dtype=th.float64)
    (ours,) = th.autograd.grad(row_dot(x, y), y, g)
    (reference,) = th.autograd.grad(th.bmm(x, y.transpose(1, 2)), y, g)
    assert (ours - reference).abs().max() < 1e-14


def test_row_dot_forward_mode_and_vmap():
    x, y = _row_dot_inputs()
    x, y = x.detach(), y.detach()
    x_dot, y_dot = th.randn_like(x), th.randn_like(y)
    value, tangent = jvp(row_dot, (x, y), (x_dot, y_dot))
    assert th.equal(value, row_dot(x, y))
    eps = 1e-6
    finite = (row_dot(x + eps * x_dot, y + eps * y_dot) - row_dot(x - eps * x_dot, y - eps * y_dot)) / (2 * eps)
    assert (tangent - finite).abs().max() < 1e-8 and tangent.abs().max() > 1e-2
    _, x_only = jvp(lambda a: row_dot(a, y), (x,), (x_dot,))
    assert (x_only - th.bmm(x_dot, y.transpose(1, 2))).abs().max() < 1e-14
    stacked = vmap(row_dot)(th.stack([x, 2 * x]), th.stack([y, y]))
    assert (stacked - th.stack([row_dot(x, y), 2 * row_dot(x, y)])).abs().max() < 1e-13
    # Broadcast batches fall back to th.matmul.
    assert th.equal(row_dot(x[:1], y), th.matmul(x[:1], y.transpose(1, 2)))


@pytest.mark.parametrize("stack", [True, False])
def test_mean_over_samples_is_the_mean_of_the_samples(stack):
    """The actor's objective: each critic's mean over its draws, with the gradients of averaging forward()'s samples."""
    critic = _critic(nn.SiLU, [16, 16], [32, 8])
    critic.stack_critics = stack
    obs, actions, noise, _ = _inputs()
    actions.requires_grad_(True)
    weights = th.linspace(0.5, 1.5, BATCH * 3, dtype=th.float64).reshape(BATCH, 3)
    inputs = [actions, *critic.parameters()]
    mean = critic.mean_over_samples(obs, actions, noise)
    reference = critic(obs, actions, noise).mean(dim=-1)
    assert mean.shape == reference.shape == (BATCH, 3)
    assert (mean - reference).abs().max() < 1e-12
    ours = th.autograd.grad((mean * weights).sum(), inputs)
    expected = th.autograd.grad((reference * weights).sum(), inputs)
    for x, y in zip(ours, expected, strict=True):
        assert (x - y).abs().max() < 1e-12
    assert ours[0].abs().max() > 1e-3
