"""Directional Sobolev samples (``sobolev_directions=k``): finite-difference checks of the online and target
directional derivatives, exact agreement with the full gradient at the identity directions, the direction
distribution, bad values, short training runs and old saves."""

import numpy as np
import pytest
import torch as th
from helpers import float64_batch, float64_model, model_targets, small_dsdpg, zip_without
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_dsdpg import DSDPG

pytestmark = pytest.mark.usefixtures("float64_observations")

EPS = 1e-6


def _directions(model: DSDPG, batch: int, k: int, seed: int = 0) -> th.Tensor:
    th.manual_seed(seed)
    model.sobolev_directions = k
    return model.sample_directions(batch).double()


def _fd_along(fn, x: th.Tensor, directions: th.Tensor) -> th.Tensor:
    """Central differences of ``fn`` along each row's directions ``(B, k, D)`` -> ``(B, ..., k)``."""
    cols = []
    for j in range(directions.shape[1]):
        step = EPS * directions[:, j]
        cols.append((fn(x + step) - fn(x - step)) / (2 * EPS))
    return th.stack(cols, dim=-1)


@pytest.mark.parametrize("sobolev_inputs", ["action", "state_action"])
@pytest.mark.parametrize("architecture", ["factorized", "concat"])
@pytest.mark.parametrize("env_id, k", [("Pendulum-v1", 1), ("HalfCheetah-v5", 2)])
def test_online_directional_derivatives_match_finite_differences(env_id, k, architecture, sobolev_inputs):
    model = float64_model(env_id, architecture, sobolev_inputs=sobolev_inputs)
    obs, actions = float64_batch(model)
    directions = _directions(model, obs.shape[0], k)
    noise = model.critic.sample_noise(obs.shape[0], 3).double()
    z, grad = model.critic.forward_with_directional_grad(obs, actions, noise, directions, create_graph=False)
    assert grad.shape == (*z.shape, k)
    obs_dim = obs.shape[1]
    with th.no_grad():
        if sobolev_inputs == "action":
            numeric = _fd_along(lambda a: model.critic(obs, a, noise), actions, directions)
        else:
            x = th.cat([obs, actions], dim=-1)
            numeric = _fd_along(lambda v: model.critic(v[:, :obs_dim], v[:, obs_dim:], noise), x, directions)
    assert th.allclose(grad, numeric, atol=1e-6, rtol=1e-5), (grad - numeric).abs().max()
    assert grad.abs().max() > 1e-3


def test_factorized_directional_derivative_is_differentiable_in_parameters():
    model = float64_model("HalfCheetah-v5", "factorized")
    obs, actions = float64_batch(model)
    directions = _directions(model, obs.shape[0], 2)
    noise = model.critic.sample_noise(obs.shape[0], 3).double()
    _, grad = model.critic.forward_with_directional_grad(obs, actions, noise, directions)
    grad.pow(2).sum().backward()
    net = model.critic.nets[0]
    assert net.psi_layers[0].weight.grad.abs().max() > 0 and net.phi[0].weight.grad.abs().max() > 0


@pytest.mark.parametrize(
    "env_id, sobolev_inputs, world_model, distributional",
    [
        ("Pendulum-v1", "action", "cvae", True),
        ("HalfCheetah-v5", "action", "cvae", True),
        ("HalfCheetah-v5", "action", "realnvp", True),
        ("HalfCheetah-v5", "action", "cvae", False),
        ("Pendulum-v1", "state_action", "cvae", True),
        ("HalfCheetah-v5", "state_action", "realnvp", False),
    ],
)
def test_target_directional_derivatives_match_finite_differences(env_id, sobolev_inputs, world_model, distributional):
    model = float64_model(env_id, "factorized", world_model, distributional, sobolev_inputs=sobolev_inputs)
    obs, actions = float64_batch(model)
    dones = th.tensor([[0.0], [1.0], [0.0], [0.0], [0.0]], dtype=th.float64)
    directions = _directions(model, obs.shape[0], 2 if env_id == "HalfCheetah-v5" else 1, seed=1)

    def targets(s: th.Tensor, a: th.Tensor, use_directions: bool = True):
        return model_targets(model, s, a, dones, directions=directions if use_directions else None)

    y, grad = targets(obs, actions)
    assert grad.shape == (*y.shape, directions.shape[1])
    obs_dim = obs.shape[1]
    if sobolev_inputs == "action":
        numeric = _fd_along(lambda a: targets(obs, a)[0], actions, directions)
    else:
        x = th.cat([obs, actions], dim=-1)
        numeric = _fd_along(lambda v: targets(v[:, :obs_dim], v[:, obs_dim:])[0], x, directions)
    assert th.allclose(grad, numeric, atol=1e-6, rtol=1e-5), (grad - numeric).abs().max()
    assert grad.abs().max() > 1e-3
    # The samples are those of the full-gradient target, and the derivatives its projections.
    y_full, grad_full = targets(obs, actions, use_directions=False)
    assert th.allclose(y, y_full, atol=1e-12)
    assert th.allclose(grad, th.einsum("bknd,bjd->bknj", grad_full, directions), atol=1e-10)


def _batch(model: DSDPG, batch: int = 6) -> ReplayBufferSamples:
    obs, actions = float64_batch(model, batch=batch, seed=3)
    rng = np.random.default_rng(4)
    next_obs = obs + 0.1 * th.as_tensor(rng.standard_normal(obs.shape))
    dones = th.zeros(batch, 1, dtype=th.float64)
    dones[1] = 1.0
    rewards = th.as_tensor(rng.standard_normal((batch, 1)))
    return ReplayBufferSamples(obs, actions, next_obs, dones, rewards)


@pytest.mark.parametrize(
    "sobolev_inputs, architecture, loss, distributional",
    [
        ("action", "factorized", "msmmd", True),
        ("action", "concat", "mmd", True),
        ("action", "factorized", "msmmd", False),
        ("state_action", "factorized", "msmmd", True),
        ("state_action", "concat", "mmd", True),
        ("state_action", "factorized", "msmmd", False),
    ],
)
def test_identity_directions_give_the_full_gradient_loss(sobolev_inputs, architecture, loss, distributional):
    """With k = d and the identity directions, the directional variant's loss is the full-gradient variant's."""
    settings = dict(distributional=distributional, sobolev_inputs=sobolev_inputs, loss=loss)
    # The sample normalisation scales dz/ds and dz/da apart for the full gradient only: compare without it there.
    settings["normalize_samples"] = sobolev_inputs == "action"
    full = float64_model("HalfCheetah-v5", architecture, sobolev_directions=None, **settings)
    dim = full._sobolev_dim()
    directional = float64_model("HalfCheetah-v5", architecture, sobolev_directions=dim, **settings)
    directional.policy.load_state_dict(full.policy.state_dict())
    directional.world_model.load_state_dict(full.world_model.state_dict())
    data = _batch(full)
    identity = th.eye(dim, dtype=th.float64).expand(data.actions.shape[0], -1, -1)
    losses = []
    th.set_default_dtype(th.float64)  # the critic noise drawn inside the loss
    try:
        for model, directions in ((full, None), (directional, identity)):
            th.manual_seed(7)
            losses.append(model._critic_loss(data, 0.9, directions)[0])
    finally:
        th.set_default_dtype(th.float32)
    assert losses[0].item() != 0.0
    assert th.allclose(losses[0], losses[1], rtol=1e-10, atol=0), (losses[0] - losses[1]).item()


@pytest.mark.parametrize("sobolev_inputs, k", [("action", 1), ("action", 3), ("state_action", 4)])
def test_directions_are_on_the_scaled_sphere_and_keep_the_gradient_norm(sobolev_inputs, k):
    model = DSDPG("MlpPolicy", "HalfCheetah-v5", sobolev_directions=k, sobolev_inputs=sobolev_inputs, device="cpu")
    dim = model._sobolev_dim()
    th.manual_seed(0)
    u = model.sample_directions(20000).double()
    assert u.shape == (20000, k, dim)
    assert th.allclose(u.norm(dim=-1), th.full((20000, k), np.sqrt(dim / k), dtype=th.float64), atol=1e-5)
    # E sum_j (u_j . g)^2 = ||g||^2, so the gradient part weighs what the full gradient weighs.
    g = th.linspace(-1.0, 2.0, dim, dtype=th.float64)
    energy = (u @ g).pow(2).sum(-1).mean()
    assert energy.item() == pytest.approx(g.pow(2).sum().item(), rel=0.03)
    # Fresh directions every call; none with the full gradient.
    assert not th.equal(model.sample_directions(4), model.sample_directions(4))
    model.sobolev_directions = None
    assert model.sample_directions(4) is None


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", "full", True, [1]])
def test_bad_sobolev_directions_raise(value):
    with pytest.raises(ValueError, match="sobolev_directions must be 'auto', None"):
        DSDPG("MlpPolicy", "Pendulum-v1", sobolev_directions=value)


@pytest.mark.parametrize(
    "env_id, kwargs, expected",
    [
        ("Pendulum-v1", {}, None),  # d = 1
        ("sb3_dsdpg/PointMassRevealedBonus-v0", {}, 1),  # d = 2
        ("Hopper-v5", {}, 1),  # d = 3
        ("HalfCheetah-v5", {}, 1),  # d = 6
        ("HalfCheetah-v5", dict(sobolev_inputs="state_action"), None),  # the opt-in to the whole gradient
        ("HalfCheetah-v5", dict(sobolev=False), None),  # no gradient part
    ],
)
def test_auto_directions_resolve_by_the_differentiated_size_and_save_resolved(tmp_path, env_id, kwargs, expected):
    model = DSDPG("MlpPolicy", env_id, **kwargs)  # "auto" is the default
    assert model.sobolev_directions == expected
    assert (model._online_samples == model._online_directional) == (expected is not None)
    model.save(tmp_path / "model.zip")
    assert DSDPG.load(tmp_path / "model.zip").sobolev_directions == expected


def test_too_many_directions_and_return_only_raise():
    with pytest.raises(ValueError, match=r"sobolev_directions must be None or an int in \[1, 6\]"):
        DSDPG("MlpPolicy", "HalfCheetah-v5", sobolev_directions=7)
    DSDPG("MlpPolicy", "HalfCheetah-v5", sobolev_directions=7, sobolev_inputs="state_action")  # 17 + 6 inputs
    with pytest.raises(ValueError, match="sobolev=True"):
        DSDPG("MlpPolicy", "Pendulum-v1", sobolev=False, sobolev_directions=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sobolev_directions=2),
        dict(sobolev_directions=1, loss="mmd", policy_kwargs=dict(net_arch=[32, 32], critic_architecture="concat")),
        dict(sobolev_directions=1, distributional=False),
        dict(sobolev_directions=3, sobolev_inputs="state_action"),
    ],
)
def test_directional_switches_train_and_save(tmp_path, kwargs):
    model = small_dsdpg("sb3_dsdpg/PointMassBonus-v0", learning_starts=100, seed=0, **kwargs)
    model.learn(200)
    assert model._n_updates >= 99
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])
    model.save(tmp_path / "model.zip")
    loaded = DSDPG.load(tmp_path / "model.zip")
    assert loaded.sobolev_directions == kwargs["sobolev_directions"]
    loaded.set_env(model.get_env())
    loaded.learn(40, reset_num_timesteps=False)


def test_saves_from_before_the_argument_load_with_the_full_gradient(tmp_path):
    """A zip written before ``sobolev_directions`` existed trained with the full gradient, and keeps it."""
    model = small_dsdpg("sb3_dsdpg/PointMassBonus-v0", learning_starts=50, seed=0)  # |A| = 2: "auto" is 1 direction
    assert model.sobolev_directions == 1
    model.learn(60)
    model.save(tmp_path / "new.zip")
    zip_without(tmp_path / "new.zip", tmp_path / "old.zip", ("sobolev_directions",))
    loaded = DSDPG.load(tmp_path / "old.zip", env=model.get_env())
    assert loaded.sobolev_directions is None
    loaded.learn(20, reset_num_timesteps=False)
