"""Full Sobolev samples (``sobolev_inputs="state_action"``): finite-difference checks of the critic's state gradient
and of the target's state gradient through the world model, the switch's errors, short training runs, and (marked
slow) a learning check of each switch on SB3's identity task."""

import csv

import numpy as np
import pytest
import torch as th
from helpers import fd_jacobian, float64_batch, float64_model, model_targets, small_dsdpg
from stable_baselines3.common.envs import IdentityEnvBox
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise

from sb3_dsdpg import DSDPG

pytestmark = pytest.mark.usefixtures("float64_observations")


def _model(env_id: str, architecture: str, world_model: str = "cvae", distributional: bool = True) -> DSDPG:
    return float64_model(env_id, architecture, world_model, distributional, sobolev_inputs="state_action")


# Pendulum: 3 + 1 inputs, so 2 samples take the factorized critic's reverse-mode path and 8 its forward-mode path.
@pytest.mark.parametrize("n_noise", [2, 8])
@pytest.mark.parametrize("architecture", ["factorized", "concat"])
@pytest.mark.parametrize("env_id", ["Pendulum-v1", "HalfCheetah-v5"])
def test_critic_state_gradient_matches_finite_differences(env_id, architecture, n_noise):
    model = _model(env_id, architecture)
    obs, actions = float64_batch(model)
    noise = model.critic.sample_noise(obs.shape[0], n_noise).double()
    z, state_grad, action_grad = model.critic.forward_with_state_action_grad(obs, actions, noise, create_graph=False)
    with th.no_grad():
        numeric = fd_jacobian(lambda s: model.critic(s, actions, noise), obs)
    assert state_grad.shape == (*z.shape, obs.shape[1])
    assert th.allclose(state_grad, numeric, atol=1e-6, rtol=1e-5), (state_grad - numeric).abs().max()
    assert state_grad.abs().max() > 1e-3
    # The action part is the action-only gradient.
    z_a, grad_a = model.critic.forward_with_action_grad(obs, actions, noise, create_graph=False)
    assert th.allclose(z, z_a, atol=1e-12) and th.allclose(action_grad, grad_a, atol=1e-10)


@pytest.mark.parametrize("n_noise", [2, 8])
def test_factorized_state_gradient_is_differentiable_in_parameters(n_noise):
    """Both Jacobian paths are plain tensor operations: a loss on dz/ds reaches psi's and phi's weights."""
    model = _model("Pendulum-v1", "factorized")
    obs, actions = float64_batch(model)
    noise = model.critic.sample_noise(obs.shape[0], n_noise).double()
    _, state_grad, _ = model.critic.forward_with_state_action_grad(obs, actions, noise)
    state_grad.pow(2).sum().backward()
    net = model.critic.nets[0]
    assert net.psi_layers[0].weight.grad is not None and net.psi_layers[0].weight.grad[:, :3].abs().max() > 0
    assert net.phi[0].weight.grad is not None and net.phi[0].weight.grad.abs().max() > 0


@pytest.mark.parametrize(
    "env_id, architecture, world_model, distributional",
    [
        ("Pendulum-v1", "factorized", "cvae", True),
        ("Pendulum-v1", "concat", "cvae", True),
        ("Pendulum-v1", "factorized", "realnvp", True),
        ("Pendulum-v1", "factorized", "cvae", False),
        ("HalfCheetah-v5", "factorized", "cvae", True),
        ("HalfCheetah-v5", "concat", "realnvp", True),
    ],
)
def test_full_sobolev_target_matches_finite_differences(env_id, architecture, world_model, distributional):
    model = _model(env_id, architecture, world_model, distributional)
    obs, actions = float64_batch(model)
    dones = th.tensor([[0.0], [1.0], [0.0], [0.0], [0.0]], dtype=th.float64)

    def targets(s: th.Tensor, a: th.Tensor, inputs: str = "state_action"):
        return model_targets(model, s, a, dones, sobolev_inputs=inputs)

    y, grad = targets(obs, actions)
    obs_dim = obs.shape[1]
    assert y.shape == (5, 2, model.n_samples) and grad.shape == (*y.shape, obs_dim + actions.shape[1])
    numeric_state = fd_jacobian(lambda s: targets(s, actions)[0], obs)
    assert th.allclose(grad[..., :obs_dim], numeric_state, atol=1e-6, rtol=1e-5), (
        (grad[..., :obs_dim] - numeric_state).abs().max()
    )
    assert grad[..., :obs_dim].abs().max() > 1e-3
    # The action part and the samples are those of the action-only target.
    y_a, grad_a = targets(obs, actions, "action")
    assert th.allclose(y, y_a, atol=1e-12) and th.allclose(grad[..., obs_dim:], grad_a, atol=1e-10)
    # The state gradient goes through the world model's next state, not only the reward: critics differ unless terminal.
    assert not th.allclose(grad[0, 0, :, :obs_dim], grad[0, 1, :, :obs_dim])
    assert th.allclose(grad[1, 0, :, :obs_dim], grad[1, 1, :, :obs_dim])


def test_state_action_needs_flat_box_observations_and_sobolev():
    from stable_baselines3.common.envs import BitFlippingEnv

    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    with pytest.raises(ValueError, match="state_action"):
        DSDPG("MultiInputPolicy", env, sobolev_inputs="state_action", learning_starts=0)
    with pytest.raises(ValueError, match="sobolev=True"):
        DSDPG("MlpPolicy", "Pendulum-v1", sobolev=False, sobolev_inputs="state_action")
    with pytest.raises(ValueError, match="sobolev_inputs"):
        DSDPG("MlpPolicy", "Pendulum-v1", sobolev_inputs="state")


REALNVP_KWARGS = dict(hidden_arch=[32])


SWITCHES = [
    ("realnvp", "action", True),
    ("cvae", "state_action", True),
    ("realnvp", "state_action", True),
    ("cvae", "state_action", False),
]


def _train_and_check(tmp_path, world_model: str, sobolev_inputs: str, distributional: bool, steps: int, **kwargs) -> None:
    """Train on Pendulum-v1, then check the logged keys and values and a save/load round trip."""
    model = small_dsdpg(
        "Pendulum-v1",
        world_model=world_model,
        sobolev_inputs=sobolev_inputs,
        distributional=distributional,
        learning_rate=1e-3,
        seed=0,
        **({"world_model_kwargs": REALNVP_KWARGS} if world_model == "realnvp" else {}),
        **kwargs,
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(steps, log_interval=1)
    assert model._n_updates >= steps - model.learning_starts - 1
    with open(tmp_path / "progress.csv") as file:
        rows = list(csv.DictReader(file))
    columns = set(rows[0])

    def values(key: str) -> np.ndarray:
        return np.array([float(row[key]) for row in rows if row.get(key, "") != ""])

    assert len(values("train/critic_loss")) > 0 and np.isfinite(values("train/critic_loss")).all()
    wm_keys = {"train/world_model_nll"} if world_model == "realnvp" else {"train/world_model_kl", "train/world_model_recon"}
    assert wm_keys | {"train/world_model_loss"} <= columns
    other = {"train/world_model_kl", "train/world_model_recon"} if world_model == "realnvp" else {"train/world_model_nll"}
    assert not other & columns
    assert ("train/state_grad_norm_mean" in columns) == (sobolev_inputs == "state_action")
    if sobolev_inputs == "state_action":
        assert (values("train/state_grad_norm_mean") > 0).all()
    # Saving and loading restores the world model's class and weights.
    model.save(tmp_path / "model.zip")
    loaded = DSDPG.load(tmp_path / "model.zip")
    assert type(loaded.world_model) is type(model.world_model)
    assert loaded.sobolev_inputs == sobolev_inputs
    loaded_state = loaded.world_model.state_dict()
    for name, value in model.world_model.state_dict().items():
        assert th.equal(value, loaded_state[name]), name


@pytest.mark.parametrize("world_model, sobolev_inputs, distributional", SWITCHES)
def test_switches_train_briefly(tmp_path, world_model, sobolev_inputs, distributional):
    _train_and_check(tmp_path, world_model, sobolev_inputs, distributional, 400, learning_starts=200)


@pytest.mark.slow
@pytest.mark.parametrize("world_model, sobolev_inputs, distributional", SWITCHES)
def test_switches_learn_the_identity_task(world_model, sobolev_inputs, distributional):
    """
    SB3's identity check for continuous actions (copy the observation into the action, reward 1 within 0.5, 100 steps
    an episode): an untrained policy scores about 50. Measured with these settings (2026-11-26): every switch scored
    100 after 3,000 steps at seeds 0, 1 and 2, and 75 to 100 after 2,000 steps; the check asks 90 at seed 1.
    """
    model = small_dsdpg(
        IdentityEnvBox(eps=0.5),
        world_model=world_model,
        sobolev_inputs=sobolev_inputs,
        distributional=distributional,
        gamma=0.5,
        learning_rate=1e-3,
        batch_size=64,
        learning_starts=300,
        action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
        seed=1,
        **({"world_model_kwargs": REALNVP_KWARGS} if world_model == "realnvp" else {}),
    )
    untrained = evaluate_policy(model, Monitor(IdentityEnvBox(eps=0.5)), n_eval_episodes=10, deterministic=True)[0]
    model.learn(3000)
    trained = evaluate_policy(model, Monitor(IdentityEnvBox(eps=0.5)), n_eval_episodes=10, deterministic=True)[0]
    assert untrained < 70.0 and trained >= 90.0, (untrained, trained)
