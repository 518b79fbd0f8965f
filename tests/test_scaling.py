"""Units: ``reward_scale``, ``normalize_samples`` and the world model's warm-up before the first critic update."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from helpers import zip_without

from sb3_dsdpg import DSDPG

SMALL = dict(
    batch_size=32,
    learning_starts=100,
    n_samples=4,
    learning_rate=1e-3,
    policy_kwargs=dict(net_arch=[16, 16]),
    world_model_kwargs=dict(encoder_arch=[16], decoder_arch=[16], prior_arch=[16]),
    world_model_warmup_steps=20,
)


class ScaledReward(gym.Wrapper):
    def __init__(self, env: gym.Env, factor: float):
        super().__init__(env)
        self.factor = factor

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, self.factor * reward, terminated, truncated, info


def _trained_actor(factor: float, steps: int = 400, **kwargs) -> tuple[DSDPG, th.Tensor]:
    env = ScaledReward(gym.make("Pendulum-v1"), factor)
    model = DSDPG("MlpPolicy", env, seed=3, **{**SMALL, **kwargs})
    model.learn(steps)
    obs = th.as_tensor(np.random.default_rng(0).uniform(-1, 1, (64, 3)), dtype=th.float32)
    with th.no_grad():
        return model, model.actor(obs)


def test_rewards_times_100_leave_a_short_run_unchanged():
    """With the units (reward_scale='auto', normalize_samples=True) the actor learns the same thing."""
    base, actions = _trained_actor(1.0, reward_scale="auto")
    scaled, actions_scaled = _trained_actor(100.0, reward_scale="auto")
    assert scaled.reward_scale == pytest.approx(100 * base.reward_scale, rel=1e-5)
    assert base._n_updates == scaled._n_updates > 100
    # The actor moved (so the comparison is not between two untrained actors) ...
    untrained = DSDPG("MlpPolicy", "Pendulum-v1", seed=3, reward_scale="auto", **SMALL)
    obs = th.as_tensor(np.random.default_rng(0).uniform(-1, 1, (64, 3)), dtype=th.float32)
    with th.no_grad():
        assert (untrained.actor(obs) - actions).abs().max() > 0.05
    # ... and both runs moved it to the same place, within float32 rounding (300 updates: measured 0.002, as far as
    # rewards multiplied by 1 + 1e-6 move it; without the units: 0.9, see the next test).
    assert (actions - actions_scaled).abs().max() < 1e-2
    for key in ("train/critic_loss", "train/world_model_loss", "train/reward_model_loss"):
        assert scaled.logger.name_to_value[key] == pytest.approx(base.logger.name_to_value[key], rel=1e-2, abs=1e-4)


def test_without_the_units_rewards_times_100_change_the_run():
    """The same check fails without them: the test above can fail."""
    off = dict(reward_scale=1.0, normalize_samples=False)
    _, actions = _trained_actor(1.0, **off)
    _, actions_scaled = _trained_actor(100.0, **off)
    assert (actions - actions_scaled).abs().max() > 0.1


def test_auto_reward_scale_is_the_replay_rewards_std():
    model = DSDPG("MlpPolicy", "Pendulum-v1", seed=0, reward_scale="auto", **SMALL)
    model.learn(101)  # learning_starts=100: one update, after 100 stored transitions (101 at the first update)
    buffer = model.replay_buffer
    assert model.reward_scale == pytest.approx(float(np.std(buffer.rewards[: buffer.pos])), rel=1e-6)
    assert model.logger.name_to_value["train/reward_scale"] == model.reward_scale


def test_constant_rewards_give_scale_one_and_a_given_scale_is_kept():
    class Zero(gym.Wrapper):
        def step(self, action):
            obs, _, terminated, truncated, info = self.env.step(action)
            return obs, 0.0, terminated, truncated, info

    model = DSDPG("MlpPolicy", Zero(gym.make("Pendulum-v1")), seed=0, reward_scale="auto", **SMALL)
    model.learn(110)
    assert model.reward_scale == 1.0
    model = DSDPG("MlpPolicy", "Pendulum-v1", seed=0, **{**SMALL, "reward_scale": 7.5})
    model.learn(110)
    assert model.reward_scale == 7.5
    # The default, 1.0: the env's units, kept (and not logged: nothing was found from the replay).
    model = DSDPG("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    assert model.reward_scale == 1.0
    model.learn(110)
    assert model.reward_scale == 1.0 and "train/reward_scale" not in model.logger.name_to_value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(reward_scale=0.0), "reward_scale must be 'auto' or a positive float"),
        (dict(reward_scale="std"), "reward_scale must be 'auto' or a positive float"),
        (dict(reward_scale=float("inf")), "reward_scale must be 'auto' or a positive float"),
        (dict(normalize_samples="yes"), "normalize_samples must be True or False"),
        (dict(world_model_warmup_steps=-1), "world_model_warmup_steps must be 'auto'"),
        (dict(world_model_warmup_steps=2.5), "world_model_warmup_steps must be 'auto'"),
    ],
)
def test_bad_units_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DSDPG("MlpPolicy", "Pendulum-v1", **kwargs)


def test_sample_scale_closed_form():
    """Return coordinate: its std over the batch; the gradient block shares the RMS of its coordinates' stds."""
    model = DSDPG("MlpPolicy", "HalfCheetah-v5", **SMALL)  # |A| = 6: joint samples of 7 coordinates
    gen = th.Generator().manual_seed(0)
    stds = th.tensor([3.0, 0.5, 1.0, 2.0, 0.5, 1.0, 2.0])
    target = th.randn(256, 40, 7, generator=gen) * stds
    scale = model._update_sample_scale(target)
    flat = target.reshape(-1, 7)
    expected_grad = flat[:, 1:].var(dim=0, unbiased=False).mean().sqrt()
    assert scale[0] == pytest.approx(flat[:, 0].std(unbiased=False).item(), rel=1e-5)
    assert th.allclose(scale[1:], expected_grad.expand(6), rtol=1e-5)
    # A second batch moves the running scale by the rate 0.01 towards that batch's scale.
    second = model._update_sample_scale(2 * target)
    assert th.allclose(second, scale + 0.01 * (2 * scale - scale), rtol=1e-5)


def test_state_action_samples_have_a_state_block_and_an_action_block():
    model = DSDPG("MlpPolicy", "Pendulum-v1", sobolev_inputs="state_action", **SMALL)  # S = 3, A = 1
    assert model._coordinate_blocks(5).tolist() == [0, 1, 1, 1, 2]
    directional = DSDPG("MlpPolicy", "Pendulum-v1", sobolev_inputs="state_action", sobolev_directions=2, **SMALL)
    assert directional._coordinate_blocks(3).tolist() == [0, 1, 1]


def test_normalized_distance_is_unit_free():
    """The distribution loss of samples and targets both multiplied by c equals the unscaled one."""
    model = DSDPG("MlpPolicy", "Pendulum-v1", **SMALL)
    gen = th.Generator().manual_seed(1)
    online, target = th.randn(16, 2, 4, 2, generator=gen), th.randn(16, 6, 2, generator=gen)

    def loss(scale: float) -> float:
        model._sample_scale = None
        th.manual_seed(0)  # the max-sliced search's random starting directions
        return model._distribution_loss(scale * online, scale * target).item()

    first = loss(1.0)
    assert loss(100.0) == pytest.approx(first, rel=1e-4)
    model.normalize_samples = False
    assert loss(100.0) != pytest.approx(first, rel=1e-2)


@pytest.mark.parametrize("warmup, expected", [(0, 0), (15, 15), ("auto", 100)])
def test_world_model_warmup_runs_before_the_first_update_only(warmup, expected):
    """Adam's step count of the world model: the warm-up, then one step per update."""
    model = DSDPG("MlpPolicy", "Pendulum-v1", seed=0, **{**SMALL, "world_model_warmup_steps": warmup})
    model.learn(110)  # 10 updates
    steps = model.world_model.optimizer.state_dict()["state"][0]["step"].item()
    assert steps == expected + model._n_updates == expected + 10


def test_units_survive_save_and_load(tmp_path):
    model = DSDPG("MlpPolicy", "Pendulum-v1", seed=0, reward_scale="auto", **SMALL)
    model.learn(120)
    model.save(tmp_path / "model.zip")
    loaded = DSDPG.load(tmp_path / "model.zip")
    assert loaded.reward_scale == model.reward_scale != "auto"
    assert th.equal(loaded._sample_scale, model._sample_scale)
    assert loaded.normalize_samples and loaded.critic_actions == "replay" and loaded.target_returns == "real"


def test_a_zip_of_an_older_version_keeps_its_units(tmp_path):
    """A zip without the new arguments trained with replay actions, raw rewards and raw kernel units, and keeps them."""
    model = DSDPG("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    model.save(tmp_path / "new.zip")
    # An older version had no reward model: its zip holds no reward-model parameters.
    DSDPG("MlpPolicy", "Pendulum-v1", seed=0, reward_fn=None, **SMALL).save(tmp_path / "older.zip")
    new_keys = ("critic_actions", "reward_scale", "normalize_samples", "world_model_warmup_steps", "target_returns")
    zip_without(
        tmp_path / "older.zip",
        tmp_path / "old.zip",
        (*new_keys, "reward_fn", "unbiased_mmd", "hybrid_latent", "actor_mean"),
    )
    old = DSDPG.load(tmp_path / "old.zip")
    assert (old.critic_actions, old.reward_scale, old.normalize_samples, old.world_model_warmup_steps) == (
        "replay",
        1.0,
        False,
        0,
    )
    # ... the world model's reward, the V-statistic, the standardised noise held and the actor's per-row mean ...
    assert (old.reward_fn, old.unbiased_mmd, old.hybrid_latent, old.actor_mean) == (None, False, "standard", "per_row")
    assert old.target_options.reward_fn is None and not old.target_options.hold_latent
    # ... with the world model's returns, SiLU networks (then the default), and the targets bound to match.
    assert old.target_returns == "model" and old._critic_targets == old._sobolev_targets
    assert isinstance(old.actor.mu[1], th.nn.SiLU)
    new = DSDPG.load(tmp_path / "new.zip")
    new_settings = (new.critic_actions, new.reward_scale, new.normalize_samples, new.target_returns)
    assert new_settings == ("replay", 1.0, True, "real")
    # ... and a zip with them keeps the values it was saved with (the learned reward wherever a world model is).
    assert new.reward_fn == "learned" and new.target_options.reward_fn is not None
    for attr in ("loss", "unbiased_mmd", "hybrid_latent", "actor_mean"):
        assert getattr(new, attr) == getattr(model, attr), attr
    assert new.target_options.hold_latent == model.target_options.hold_latent
    assert isinstance(new.actor.mu[1], th.nn.ReLU) and new._critic_targets == new._hybrid_targets
