"""Finite-difference checks of every gradient DSDPG claims: the critic's action-gradient samples and the Sobolev target."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from helpers import fd_jacobian, float64_batch, float64_model, model_targets

from sb3_dsdpg import DSDPG
from sb3_dsdpg.policies import JACOBIAN_ACTIVATIONS, _activation_and_derivative
from sb3_dsdpg.targets import flatten_obs, per_row_jacobian

pytestmark = pytest.mark.usefixtures("float64_observations")


def _model(env_id: str, architecture: str, distributional: bool = True) -> DSDPG:
    return float64_model(env_id, architecture, distributional=distributional)


def _batch(model: DSDPG):
    return float64_batch(model, obs_from_space=True)


@pytest.mark.parametrize("architecture", ["factorized", "concat"])
@pytest.mark.parametrize("env_id", ["Pendulum-v1", "HalfCheetah-v5"])
def test_critic_action_gradient_matches_finite_differences(architecture, env_id):
    model = _model(env_id, architecture)
    obs, actions = _batch(model)
    noise = model.critic.sample_noise(obs.shape[0], 3).double()
    z, grad = model.critic.forward_with_action_grad(obs, actions, noise, create_graph=False)
    with th.no_grad():
        numeric = fd_jacobian(lambda a: model.critic(obs, a, noise), actions)
    assert grad.shape == (*z.shape, actions.shape[1])
    assert th.allclose(grad, numeric, atol=1e-6, rtol=1e-5), (grad - numeric).abs().max()
    # The gradient is not trivially zero: the check is meaningful.
    assert grad.abs().max() > 1e-3


@pytest.mark.parametrize("name", JACOBIAN_ACTIVATIONS)
def test_activation_derivative_matches_autograd(name):
    """The hand-written derivative of each supported activation equals autograd's, kinks included (ReLU at 0: 0)."""
    module = getattr(th.nn, name)()
    pre = th.cat([th.linspace(-3.0, 3.0, 61, dtype=th.float64), th.zeros(1, dtype=th.float64)]).requires_grad_(True)
    out, deriv = _activation_and_derivative(module, pre)
    (autograd_deriv,) = th.autograd.grad(module(pre).sum(), pre)
    assert th.allclose(out, module(pre)) and th.allclose(deriv, autograd_deriv, atol=1e-12)
    if name == "ReLU":
        # The 0/1 mask: float, no graph (its derivative is zero almost everywhere), 0 at the kink as autograd has it.
        assert deriv.dtype == pre.dtype and not deriv.requires_grad and deriv[-1] == 0.0
        assert set(deriv.tolist()) == {0.0, 1.0}


def test_factorized_gradient_is_differentiable_in_parameters():
    """Training on the gradient must reach the critic's weights (the Sobolev signal), without double backward."""
    model = _model("Pendulum-v1", "factorized")
    obs, actions = _batch(model)
    noise = model.critic.sample_noise(obs.shape[0], 3).double()
    _, grad = model.critic.forward_with_action_grad(obs, actions, noise)
    grad.pow(2).sum().backward()
    first_layer = model.critic.nets[0].psi_layers[0].weight
    assert first_layer.grad is not None and first_layer.grad.abs().max() > 0


@pytest.mark.parametrize("distributional", [True, False])
@pytest.mark.parametrize("architecture", ["factorized", "concat"])
@pytest.mark.parametrize("env_id", ["Pendulum-v1", "HalfCheetah-v5"])
def test_sobolev_target_gradient_matches_finite_differences(env_id, architecture, distributional):
    model = _model(env_id, architecture, distributional)
    obs, actions = _batch(model)
    dones = th.tensor([[0.0], [1.0], [0.0], [0.0], [0.0]], dtype=th.float64)

    def targets(a: th.Tensor):
        return model_targets(model, obs, a, dones)

    y, grad = targets(actions)
    numeric = fd_jacobian(lambda a: targets(a)[0], actions)
    assert y.shape == (5, 2, model.n_samples)
    assert th.allclose(grad, numeric, atol=1e-6, rtol=1e-5), (grad - numeric).abs().max()
    assert grad.abs().max() > 1e-3
    # A terminal transition keeps only the model reward's gradient: the same for every critic; otherwise they differ.
    assert th.allclose(grad[1, 0], grad[1, 1])
    # (in float64: the learned reward's part, the same for both, can be most of the gradient, so allclose's 1e-5 is
    # too coarse a test of "differ"; round-off is below 1e-12)
    assert (grad[0, 0] - grad[0, 1]).abs().max() > 1e-9


def test_target_gradient_goes_through_the_world_model_reward():
    """With gamma = 0 the target is the model reward: its gradient is the reward head's derivative."""
    model = _model("Pendulum-v1", "factorized")
    obs, actions = _batch(model)
    flat = flatten_obs(model.observation_space, obs, th.float64)
    noise = th.randn(5, 1, model.world_model.latent_dim, dtype=th.float64)
    _, jac = per_row_jacobian(lambda a: model.world_model.sample(flat, a, 1, noise=noise)[1], actions)
    numeric = fd_jacobian(lambda a: model.world_model.sample(flat, a, 1, noise=noise)[1], actions)
    assert th.allclose(jac, numeric, atol=1e-7, rtol=1e-5)


def test_dict_observations_flatten_roundtrip():
    from sb3_dsdpg.targets import unflatten_obs

    space = gym.spaces.Dict({"b": gym.spaces.Box(-1, 1, (2, 2)), "a": gym.spaces.Box(-1, 1, (3,))})
    obs = {key: th.as_tensor(np.stack([sub.sample() for _ in range(4)])) for key, sub in space.spaces.items()}
    flat = flatten_obs(space, obs)
    expected = np.stack([gym.spaces.flatten(space, {k: obs[k][i].numpy() for k in obs}) for i in range(4)])
    assert np.allclose(flat.numpy(), expected)
    back = unflatten_obs(space, flat)
    assert all(th.equal(back[k], obs[k].float()) for k in obs)
