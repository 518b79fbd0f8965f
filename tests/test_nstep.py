"""SB3's n-step replay buffer: a discount per row (``data.discounts``) must scale its own row only, in the Sobolev and
the return-only targets, and DSDPG must train with the buffer."""

import numpy as np
import pytest
import torch as th
from helpers import float64_batch, float64_model, model_targets, tiny_kwargs
from stable_baselines3.common.buffers import NStepReplayBuffer

from sb3_dsdpg import DSDPG
from sb3_dsdpg.targets import TargetOptions, discount_not_done, return_td_targets

pytestmark = pytest.mark.usefixtures("float64_observations")


def test_discount_not_done_is_per_row():
    dones = th.tensor([[0.0], [1.0], [0.0]])
    per_row = discount_not_done(th.tensor([[0.9], [0.5], [0.81]]), dones)
    assert per_row.shape == (3, 1, 1)
    assert th.allclose(per_row.flatten(), th.tensor([0.9, 0.0, 0.81]))
    assert th.allclose(discount_not_done(0.9, dones).flatten(), th.tensor([0.9, 0.0, 0.9]))
    with pytest.raises(ValueError, match="one value per row"):
        discount_not_done(th.ones(2, 1), dones)


@pytest.mark.parametrize("sobolev_inputs", ["action", "state_action"])
def test_sobolev_target_with_per_row_discounts(sobolev_inputs):
    """Row b of the target with discounts (g_b) is row b of the target with the scalar g_b (same draws)."""
    model = float64_model("Pendulum-v1", "factorized", sobolev_inputs=sobolev_inputs)
    model.policy.critic_target.share_noise = False  # noise per row, so that rows are independent draws
    batch = 2  # equal to the number of critics: a wrong broadcast would not fail, it would mix rows
    obs, actions = float64_batch(model, batch=batch)
    dones = th.zeros(batch, 1, dtype=th.float64)
    gammas = th.tensor([[0.9], [0.729]], dtype=th.float64)

    def targets(gamma):
        return model_targets(model, obs, actions, dones, gamma)

    y, grad = targets(gammas)
    assert y.shape == (batch, 2, model.n_samples)
    for b in range(batch):
        y_b, grad_b = targets(gammas[b].item())
        assert th.allclose(y[b], y_b[b]) and th.allclose(grad[b], grad_b[b])
    assert not th.allclose(y[1], targets(0.9)[0][1])


def test_return_target_with_per_row_discounts():
    model = DSDPG("MlpPolicy", "Pendulum-v1", sobolev=False, n_samples=4, policy_kwargs=dict(net_arch=[16]), seed=0)
    obs = float64_batch(model, batch=2)[0].float()
    rewards, dones = th.tensor([[1.0], [2.0]]), th.zeros(2, 1)
    options = TargetOptions(n_samples=4, target_policy_noise=0.0)
    th.manual_seed(0)
    y = return_td_targets(model.actor_target, model.critic_target, obs, rewards, dones, th.tensor([[0.5], [0.25]]), options)
    th.manual_seed(0)
    y_scalar = return_td_targets(model.actor_target, model.critic_target, obs, rewards, dones, 1.0, options)
    assert th.allclose(
        y - rewards.reshape(-1, 1, 1),
        (y_scalar - rewards.reshape(-1, 1, 1)) * th.tensor([0.5, 0.25]).reshape(-1, 1, 1),
    )


@pytest.mark.parametrize("kwargs", [dict(), dict(sobolev_directions=1), dict(distributional=False), dict(sobolev=False)])
def test_dsdpg_trains_with_the_n_step_buffer(kwargs):
    model = DSDPG(
        "MlpPolicy",
        "Pendulum-v1",
        replay_buffer_class=NStepReplayBuffer,
        replay_buffer_kwargs=dict(n_steps=3, gamma=0.98),
        **tiny_kwargs(gamma=0.98, batch_size=2, **kwargs),
    )
    model.learn(120)
    assert model._n_updates >= 69
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])
