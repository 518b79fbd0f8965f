"""Adam's default options and the foreach Polyak update (sb3_dsdpg.updates): same arithmetic as the slow paths."""

import copy
import json
import zipfile
from collections import defaultdict

import pytest
import torch as th
from helpers import tiny_kwargs
from stable_baselines3.common import utils as sb3_utils

from sb3_dsdpg import DSDPG
from sb3_dsdpg.dsdpg import ACTOR_MEAN_DRAWS
from sb3_dsdpg.updates import default_adam_kwargs, polyak_update

SMALL = tiny_kwargs(learning_starts=32, device="cpu")


def _nets(seed: int) -> tuple[th.nn.Module, th.nn.Module]:
    th.manual_seed(seed)
    net = th.nn.Sequential(th.nn.Linear(3, 5), th.nn.BatchNorm1d(5), th.nn.Linear(5, 2))
    target = copy.deepcopy(net)
    with th.no_grad():
        for param in net.parameters():
            param.add_(th.randn_like(param))
    return net, target


def test_polyak_update_is_bitwise_sb3s():
    net, target = _nets(0)
    reference = copy.deepcopy(target)
    for _ in range(3):
        polyak_update(net.parameters(), target.parameters(), 0.005)
        sb3_utils.polyak_update(net.parameters(), reference.parameters(), 0.005)
    for ours, theirs in zip(target.parameters(), reference.parameters(), strict=True):
        assert th.equal(ours, theirs)
    moved = [not th.equal(a, b) for a, b in zip(target.parameters(), _nets(0)[1].parameters(), strict=True)]
    assert all(moved)  # the update did something


def test_polyak_update_with_tau_one_copies_and_refuses_mismatched_lists():
    net, target = _nets(1)
    polyak_update(net.parameters(), target.parameters(), 1.0)
    assert all(th.equal(a, b) for a, b in zip(net.parameters(), target.parameters(), strict=True))
    polyak_update([], [], 0.5)  # nothing to do (no batch-norm statistics)
    with pytest.raises(ValueError, match="2 parameters against 1"):
        polyak_update(list(net.parameters())[:2], list(target.parameters())[:1], 0.5)


def test_default_adam_is_fused_on_this_cpu_and_follows_the_textbook_adam():
    assert default_adam_kwargs("cpu") == {"fused": True}  # torch 2.13 has a fused CPU Adam
    th.manual_seed(0)
    start = [th.randn(7, 3, dtype=th.float64), th.randn(3, dtype=th.float64)]
    trajectories = []
    for kwargs in ({"foreach": False}, default_adam_kwargs("cpu")):
        params = [th.nn.Parameter(p.clone()) for p in start]
        optimizer = th.optim.Adam(params, lr=1e-2, **kwargs)
        for step in range(20):
            optimizer.zero_grad()
            (params[0].sin().sum() * (step + 1) + params[1].pow(2).sum()).backward()
            optimizer.step()
        trajectories.append(params)
    for slow, fused in zip(*trajectories, strict=True):
        th.testing.assert_close(fused, slow, rtol=1e-12, atol=1e-12)
    assert not th.allclose(trajectories[1][0], start[0])  # it moved


def test_dsdpg_optimizers_are_fused_by_default_and_the_zip_keeps_the_users_policy_kwargs(tmp_path):
    model = DSDPG("MlpPolicy", "Pendulum-v1", **SMALL)
    for optimizer in (model.actor.optimizer, model.critic.optimizer, model.world_model.optimizer):
        assert optimizer.param_groups[0]["fused"] is True
    assert "optimizer_kwargs" not in model.policy_kwargs
    model.learn(40)
    model.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        saved_policy_kwargs = json.loads(archive.read("data"))["policy_kwargs"]
    assert "fused" not in json.dumps(saved_policy_kwargs)
    loaded = DSDPG.load(tmp_path / "model.zip", device="cpu")
    assert loaded.critic.optimizer.param_groups[0]["fused"] is True
    assert loaded.critic.optimizer.state_dict()["state"].keys() == model.critic.optimizer.state_dict()["state"].keys()
    loaded.set_env(model.get_env())
    loaded.learn(20, reset_num_timesteps=False)  # the loaded fused state steps


def test_users_optimizer_kwargs_win():
    kwargs = dict(SMALL, policy_kwargs=dict(SMALL["policy_kwargs"], optimizer_kwargs=dict(foreach=True, eps=1e-5)))
    model = DSDPG("MlpPolicy", "Pendulum-v1", **kwargs)
    group = model.critic.optimizer.param_groups[0]
    assert group["foreach"] is True and not group["fused"] and group["eps"] == 1e-5
    sgd = DSDPG("MlpPolicy", "Pendulum-v1", **dict(SMALL, policy_kwargs=dict(optimizer_class=th.optim.SGD)))
    assert isinstance(sgd.critic.optimizer, th.optim.SGD)


@pytest.mark.parametrize("actor_mean", ["exact", "per_row"])
@pytest.mark.parametrize("architecture", ["factorized", "concat"])
def test_actor_step_backpropagates_into_the_actor_only_with_the_full_backwards_gradient(architecture, actor_mean):
    """
    The actor's step runs its backward into the actor's parameters only: the gradient equals a full backward's to the
    bit, and the critic gets no gradient from the actor's loss (TD3's full backward fills it, for nothing). With
    ``actor_mean="exact"`` the factorized critic's samples are those of ACTOR_MEAN_DRAWS draws shared by the batch.
    """
    policy_kwargs = {"critic_architecture": architecture}
    model = DSDPG("MlpPolicy", "Pendulum-v1", **{**SMALL, "policy_kwargs": policy_kwargs, "actor_mean": actor_mean})
    model.learn(48)
    data = model._sample_batch(16)
    model.critic.optimizer.zero_grad()
    model.actor.optimizer.step = lambda: None  # keep the parameters, read the gradient
    th.manual_seed(3)
    model._actor_step(data, defaultdict(list))
    assert all(param.grad is None for param in model.critic.parameters())
    model.actor.optimizer.zero_grad()
    th.manual_seed(3)
    obs = data.observations
    if actor_mean == "exact" and architecture == "factorized":
        # The draws the actor step takes, shared by the rows; its objective, the mean of the noise features' mean, is
        # the mean of forward()'s samples at those draws up to float round-off.
        noise = th.randn(1, model.critic.n_critics, ACTOR_MEAN_DRAWS, model.critic.noise_dim)
        loss = -model.critic.mean_over_samples(obs, model.actor(obs), noise).mean()
        samples = model.critic(obs, model.actor(obs), noise.expand(16, -1, -1, -1))
        assert th.allclose(-loss, samples.mean(), rtol=1e-5, atol=1e-6)
    else:
        noise = model.critic.sample_noise(16, model.n_samples)
        loss = -model.critic(obs, model.actor(obs), noise).mean()
    loss.backward()  # the full backward, as TD3's
    actor_grads = [param.grad for param in model.actor.parameters()]
    assert all(grad is not None and grad.abs().sum() > 0 for grad in actor_grads)
    assert any(param.grad is not None for param in model.critic.parameters())
    model.actor.optimizer.zero_grad()
    th.manual_seed(3)
    model._actor_step(data, defaultdict(list))
    assert all(th.equal(param.grad, grad) for param, grad in zip(model.actor.parameters(), actor_grads, strict=True))


def test_a_frozen_actor_is_left_alone_by_the_actor_step():
    model = DSDPG("MlpPolicy", "Pendulum-v1", **SMALL)
    model.learn(40)
    for param in model.actor.parameters():
        param.requires_grad_(False)
    before = [param.clone() for param in model.actor.parameters()]
    model._actor_step(model._sample_batch(16), defaultdict(list))
    assert all(th.equal(a, b) for a, b in zip(before, model.actor.parameters(), strict=True))
