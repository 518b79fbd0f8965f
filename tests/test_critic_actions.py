"""``critic_actions``: the critic's batch at the replay's actions or at the current policy's (MAGE's loop)."""

import numpy as np
import pytest
import torch as th
from helpers import float64_batch, float64_model, tiny_kwargs
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_dsdpg import DSDPG

pytestmark = pytest.mark.usefixtures("float64_observations")


def _data(model: DSDPG, batch: int = 6) -> ReplayBufferSamples:
    obs, actions = float64_batch(model, batch=batch, seed=5)
    dones = th.zeros(batch, 1, dtype=th.float64)
    return ReplayBufferSamples(obs, actions, obs + 0.1, dones, th.ones(batch, 1, dtype=th.float64))


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(distributional=False), dict(sobolev_inputs="state_action", sobolev_directions=2)]
)
def test_policy_actions_are_the_actors_at_the_replay_states(kwargs):
    """The loss with critic_actions='policy' is the replay loss of a batch whose actions are pi(s), and differs from it."""
    model = float64_model("HalfCheetah-v5", "factorized", **kwargs)
    data = _data(model)
    directions = None
    if model.sobolev_directions is not None:
        th.manual_seed(0)
        directions = model.sample_directions(6).double()
    th.set_default_dtype(th.float64)  # the critic noise drawn inside the loss
    try:
        losses = {}
        for name, batch, mode in [
            ("policy", data, "policy"),
            ("replay at pi(s)", data._replace(actions=model.actor(data.observations).detach()), "replay"),
            ("replay", data, "replay"),
        ]:
            model.critic_actions = mode
            th.manual_seed(1)
            losses[name] = model._critic_loss(batch, 0.9, directions)[0]
    finally:
        th.set_default_dtype(th.float32)
    assert th.equal(losses["policy"], losses["replay at pi(s)"])
    assert not th.allclose(losses["policy"], losses["replay"])


def test_policy_actions_train_the_critic_only():
    """The actor's output is detached in the critic's batch: the critic loss sends no gradient to the actor."""
    model = float64_model("Pendulum-v1", "factorized", critic_actions="policy")
    model.policy.float()
    model.world_model.float()
    model.reward_model.float()
    data = _data(model)
    loss = model._critic_loss(ReplayBufferSamples(*[t.float() for t in data[:5]]), 0.9)[0]
    loss.backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in model.actor.parameters())
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in model.critic.parameters())


def test_bad_critic_actions_raise():
    with pytest.raises(ValueError, match=r"critic_actions must be one of \('auto', 'replay', 'policy'\)"):
        DSDPG("MlpPolicy", "Pendulum-v1", critic_actions="pi")
    with pytest.raises(ValueError, match="needs target_returns='model'"):  # the policy's actions have no real outcome
        DSDPG("MlpPolicy", "Pendulum-v1", critic_actions="policy", sobolev=False, target_returns="real")
    # Return-only at the policy's actions: next state and reward from the world model.
    model = DSDPG("MlpPolicy", "Pendulum-v1", critic_actions="policy", sobolev=False)
    assert model.target_returns == "model" and model.world_model is not None


def test_auto_critic_actions_are_the_policys_with_the_world_models_returns():
    assert DSDPG("MlpPolicy", "Pendulum-v1").critic_actions == "replay"  # the hybrid target needs real outcomes
    assert DSDPG("MlpPolicy", "Pendulum-v1", target_returns="model").critic_actions == "policy"
    assert DSDPG("MlpPolicy", "Pendulum-v1", sobolev=False).critic_actions == "replay"
    assert DSDPG("MlpPolicy", "Pendulum-v1", critic_actions="replay").critic_actions == "replay"


def test_policy_actions_train_save_and_load(tmp_path):
    model = DSDPG("MlpPolicy", "Pendulum-v1", **tiny_kwargs(critic_actions="policy"))
    model.learn(120)
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])
    model.save(tmp_path / "model.zip")
    loaded = DSDPG.load(tmp_path / "model.zip", env=model.get_env())
    assert loaded.critic_actions == "policy"
    loaded.learn(20, reset_num_timesteps=False)


@pytest.fixture
def float64_default():
    """Critic noise is drawn inside the loss in the default dtype: float64 for the float64 models."""
    th.set_default_dtype(th.float64)
    yield
    th.set_default_dtype(th.float32)


def test_model_target_gap_is_zero_for_an_exact_world_model(monkeypatch, float64_default):
    """With a world model that returns the real transition, the model and real one-step targets coincide."""
    model = float64_model("Pendulum-v1", "factorized", distributional=False, target_policy_noise=0.0)
    data = _data(model)

    def exact(obs, actions, n_samples=1, noise=None):
        n = n_samples if noise is None else noise.shape[1]
        return data.next_observations.unsqueeze(1).expand(-1, n, -1), data.rewards.reshape(-1, 1).expand(
            -1, n
        ) + 0 * actions.sum()

    monkeypatch.setattr(model.world_model, "sample", exact)
    assert model._model_target_gap(data, 0.9) == pytest.approx(0.0, abs=1e-12)
    # A world model off by 1 in the reward moves every target by 1.
    monkeypatch.setattr(
        model.world_model, "sample", lambda o, a, n=1, noise=None: (exact(o, a, n, noise)[0], exact(o, a, n, noise)[1] + 1)
    )
    assert model._model_target_gap(data, 0.9) == pytest.approx(1.0, abs=1e-9)
