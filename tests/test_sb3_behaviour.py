"""DSDPG behaves as an SB3 algorithm: saving, loading, seeding, VecEnvs, Dict observations, HER, callbacks, logging, errors.

Written after the patterns of Stable-Baselines3's own test suite (test_save_load, test_her, test_dict_env, ...).
"""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from helpers import small_dsdpg, small_kwargs
from sb3_contrib import TQC
from stable_baselines3 import TD3, HerReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import BitFlippingEnv, IdentityEnv
from stable_baselines3.common.logger import configure
from stable_baselines3.common.noise import NormalActionNoise

from sb3_dsdpg import DSDPG

LOGGED = (
    "critic_loss",
    "actor_loss",
    "world_model_loss",
    "world_model_kl",
    "world_model_recon",
    "reward_model_loss",
    "return_mean",
    "grad_norm_mean",
    "n_updates",
)


def _small(env="Pendulum-v1", **kwargs) -> DSDPG:
    return small_dsdpg(env, **{"learning_starts": 50, **kwargs})


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(th.equal(a[k], b[k]) for k in a)


def _optimizer_states_equal(a: th.optim.Optimizer, b: th.optim.Optimizer) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if sa["param_groups"] != sb["param_groups"] or sa["state"].keys() != sb["state"].keys():
        return False
    return all(_state_equal(sa["state"][k], sb["state"][k]) for k in sa["state"])


def test_save_load_restores_everything(tmp_path):
    model = _small(seed=0, action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)))
    model.learn(150)
    obs = np.stack([model.observation_space.sample() for _ in range(10)])
    actions_before = model.predict(obs, deterministic=True)[0]
    params_before = model.get_parameters()
    saved = {"policy", "actor.optimizer", "critic.optimizer", "world_model", "world_model.optimizer"}
    assert saved | {"reward_model", "reward_model.optimizer"} <= params_before.keys()  # the learned reward (default)
    model.save(tmp_path / "model.zip")

    loaded = DSDPG.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert np.array_equal(actions_before, loaded.predict(obs, deterministic=True)[0])
    params_after = loaded.get_parameters()
    assert params_before.keys() == params_after.keys()
    for key in ("policy", "world_model", "reward_model"):
        assert _state_equal(params_before[key], params_after[key]), key
    for name in ("actor", "critic", "world_model", "reward_model"):
        assert _optimizer_states_equal(getattr(model, name).optimizer, getattr(loaded, name).optimizer), name
    # The world model's running normalisation statistics are part of its state.
    assert th.equal(model.world_model.obs_normalizer.mean, loaded.world_model.obs_normalizer.mean)
    assert loaded.world_model.obs_normalizer.count > 0
    # Every hyperparameter survives.
    for attr in ("n_samples", "n_target_model_draws", "loss", "kernel_bandwidth", "top_samples_to_drop_per_critic", "sobolev"):
        assert getattr(loaded, attr) == getattr(model, attr)
    for attr in ("unbiased_mmd", "reward_fn", "reward_scale", "hybrid_latent", "actor_mean"):
        assert getattr(loaded, attr) == getattr(model, attr), attr
    assert loaded.critic.architecture == model.critic.architecture == "factorized"
    # And it keeps training.
    loaded.learn(60, reset_num_timesteps=False)
    assert loaded.num_timesteps == model.num_timesteps + 60


def test_set_parameters_roundtrip():
    a, b = _small(seed=1), _small(seed=2)
    obs = np.stack([a.observation_space.sample() for _ in range(5)])
    assert not np.allclose(a.predict(obs, deterministic=True)[0], b.predict(obs, deterministic=True)[0])
    b.set_parameters(a.get_parameters())
    assert np.array_equal(a.predict(obs, deterministic=True)[0], b.predict(obs, deterministic=True)[0])
    assert _state_equal(a.world_model.state_dict(), b.world_model.state_dict())
    assert _state_equal(a.reward_model.state_dict(), b.reward_model.state_dict())


def test_replay_buffer_save_load(tmp_path):
    model = _small(seed=0)
    model.learn(120)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    old = model.replay_buffer
    fresh = _small(seed=0)
    fresh.load_replay_buffer(tmp_path / "buffer.pkl")
    assert fresh.replay_buffer.size() == old.size() == 120
    assert np.array_equal(fresh.replay_buffer.observations, old.observations)
    assert np.array_equal(fresh.replay_buffer.rewards, old.rewards)


@pytest.mark.parametrize("kwargs", [dict(), dict(sobolev=True, distributional=False), dict(sobolev=False)])
def test_same_seed_same_result(kwargs):
    params = []
    for _ in range(2):
        model = _small(seed=3, **kwargs)
        model.learn(100)
        params.append(model.policy.state_dict())
    assert _state_equal(*params)


def test_train_and_eval_mode():
    model = _small(policy_kwargs=dict(net_arch=[16], noise_net_arch=[8]))
    model.policy.set_training_mode(False)
    assert not model.actor.training and not model.critic.training
    model.policy.set_training_mode(True)
    assert model.actor.training and model.critic.training
    assert not model.actor_target.training and not model.critic_target.training


def test_training_mode_reaches_every_module_and_custom_train_methods():
    """The flags are set as nn.Module.train sets them, a replaced actor is seen, and an overridden train() is called."""
    model = _small(policy_kwargs=dict(net_arch=[16], noise_net_arch=[8]))

    def modules():
        return [*model.policy.actor.modules(), *model.policy.critic.modules()]

    for mode in (False, True, False):
        model.policy.set_training_mode(mode)
        assert all(module.training is mode for module in modules())
        assert model.policy.training is mode

    class Recorder(th.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = []

        def train(self, mode=True):
            self.calls.append(mode)
            return super().train(mode)

    actor = copy.deepcopy(model.policy.actor)
    actor.recorder = Recorder()
    model.policy.actor = actor
    model.policy.set_training_mode(True)
    assert actor.recorder.calls == [True] and all(module.training for module in modules())
    model.policy.set_training_mode(False)
    assert actor.recorder.calls == [True, False] and not any(module.training for module in modules())
    assert not model.actor_target.training and not model.critic_target.training


def test_multi_env_callbacks_progress_bar_tensorboard_and_logged_keys(tmp_path):
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = _small(env, train_freq=(2, "step"), gradient_steps=3, tensorboard_log=str(tmp_path), seed=0)
    model.set_logger(configure(str(tmp_path / "log"), ["csv", "tensorboard"]))

    class Count(BaseCallback):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def _on_step(self) -> bool:
            self.calls += 1
            return True

    callback = Count()
    # Pendulum episodes last 200 steps: with 2 envs the first dump (log_interval=1) comes at 400 steps.
    model.learn(420, callback=callback, progress_bar=True, log_interval=1)
    assert callback.calls == 210  # one call per VecEnv step of 2 envs
    assert model.num_timesteps == 420
    header = (tmp_path / "log" / "progress.csv").read_text().splitlines()[0].split(",")
    for key in LOGGED:
        assert f"train/{key}" in header, key
    assert any(path.name.startswith("events.out.tfevents") for path in (tmp_path / "log").iterdir())
    # gradient_steps=3 every 2 VecEnv steps after learning_starts
    assert model._n_updates > 0 and model._n_updates % 3 == 0


def test_learning_starts_delays_training():
    model = _small(learning_starts=100)
    model.learn(80)
    assert model._n_updates == 0
    model.learn(40, reset_num_timesteps=False)
    assert model._n_updates > 0


class DictPendulum(gym.ObservationWrapper):
    """Pendulum with a Dict observation: (cos, sin) and the angular velocity as separate keys."""

    def __init__(self):
        super().__init__(gym.make("Pendulum-v1"))
        self.observation_space = gym.spaces.Dict(
            {"angle": gym.spaces.Box(-1.0, 1.0, (2,), np.float32), "velocity": gym.spaces.Box(-8.0, 8.0, (1,), np.float32)}
        )

    def observation(self, obs):
        return {"angle": obs[:2], "velocity": obs[2:]}


def test_dict_observations_with_multi_input_policy(tmp_path):
    model = DSDPG("MultiInputPolicy", DictPendulum(), **small_kwargs(learning_starts=50, seed=0))
    model.learn(120)
    assert model.world_model.obs_dim == 3
    obs = model.env.reset()
    action, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "dict.zip")
    loaded = DSDPG.load(tmp_path / "dict.zip")
    assert np.array_equal(action, loaded.predict(obs, deterministic=True)[0])


def test_her_on_goal_env():
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    model = DSDPG(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
        **small_kwargs(learning_starts=40, seed=0),
    )
    model.learn(150)
    assert model._n_updates > 0
    assert model.world_model.obs_dim == 12


def test_non_box_action_space_refused_like_td3_and_tqc():
    messages = []
    for algo in (TD3, TQC, DSDPG):
        with pytest.raises(AssertionError) as info:
            algo("MlpPolicy", IdentityEnv(2))
        messages.append(str(info.value))
    assert messages[0] == messages[1] == messages[2]
    assert "Box" in messages[2]


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(n_samples=1), "n_samples"),
        (dict(n_samples=4, top_samples_to_drop_per_critic=4), "top_samples_to_drop_per_critic"),
        (dict(kernel_bandwidth=0.0), "kernel_bandwidth"),
        (dict(kernel_bandwidth=-3.0), "kernel_bandwidth"),
        (dict(loss="wasserstein"), "loss"),
        (dict(kernel="laplace"), "kernel"),
        (dict(world_model="diffusion"), "world_model"),
        (dict(sobolev_inputs="state"), "sobolev_inputs"),
        (dict(n_samples=4, n_target_model_draws=3), "n_target_model_draws"),
    ],
)
def test_bad_hyperparameters_raise_at_construction(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        DSDPG("MlpPolicy", "Pendulum-v1", **kwargs)


def test_unknown_critic_architecture_and_image_observations_raise():
    with pytest.raises(ValueError, match="critic_architecture"):
        DSDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(critic_architecture="transformer"))

    class ImageEnv(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (36, 36, 3), np.uint8)
        action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    with pytest.raises(ValueError, match="image observations"):
        DSDPG("MlpPolicy", ImageEnv())


class NanReward(gym.Wrapper):
    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, float("nan"), terminated, truncated, info


@pytest.mark.parametrize(
    "kwargs, which",
    [
        (dict(), "world-model loss.*at world-model warm-up step 1"),
        (dict(world_model_warmup_steps=0), "world-model loss.*at update 1"),
        # The learned reward (the default), with the world model left alone so that its loss is checked first.
        (dict(world_model_warmup_steps=0, world_model_gradient_steps=0), "reward-model loss.*at update 1"),
        (dict(sobolev=False), "critic loss.*at update 1"),
    ],
)
def test_non_finite_loss_stops_training(kwargs, which):
    model = _small(NanReward(gym.make("Pendulum-v1")), learning_starts=20, **kwargs)
    with pytest.raises(RuntimeError, match=f"Non-finite {which}"):
        model.learn(40)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size must be a positive int"),
        (dict(batch_size=-3), "batch_size must be a positive int"),
        (dict(gamma=1.5), r"gamma must be a discount factor in \[0, 1\]"),
        (dict(gamma=-0.1), r"gamma must be a discount factor in \[0, 1\]"),
        (dict(policy_kwargs=dict(net_arch=[])), "critic_architecture='concat'"),
        # Inputs a new user tries that TD3 takes silently or fails on deep inside (2026-12-03 probe).
        (dict(tau=2.0), r"tau must be a number in \[0.0, 1.0\]"),
        (dict(tau=-0.1), r"tau must be a number in \[0.0, 1.0\]"),
        (dict(buffer_size=0), "buffer_size must be an int >= 1"),
        (dict(learning_starts=-5), r"learning_starts must be a number in \[0, inf\)"),
        (dict(gradient_steps=1.5), "gradient_steps must be an int >= -1"),
        (dict(n_samples="10"), "n_samples must be an int >= 1"),
        (dict(n_samples=2.5), "n_samples must be an int >= 1"),
        (dict(n_target_model_draws=0), "n_target_model_draws must be an int >= 1"),
        (dict(top_samples_to_drop_per_critic=-1), "top_samples_to_drop_per_critic must be an int >= 0"),
        (dict(n_slice_steps=1.5), "n_slice_steps must be an int >= 0"),
        (dict(n_slice_candidates="a"), "n_slice_candidates must be an int >= 0"),
        (dict(policy_delay=0.5), "policy_delay must be an int >= 1"),
        (dict(world_model_gradient_steps=1.5), "world_model_gradient_steps must be an int >= 0"),
        (dict(distributional=False, huber_delta=0.0), r"huber_delta must be a number in \(0.0, inf\)"),
        (dict(distributional=False, mage_gradient_weight=-1.0), "mage_gradient_weight must be a number"),
        (dict(distributional=False, mage_gradient_weight=float("inf")), r"mage_gradient_weight must be .*\[0.0, inf\)"),
        (dict(learning_starts=float("nan")), "learning_starts must be a number"),
        (dict(action_noise=NormalActionNoise(np.zeros(3), np.ones(3))), r"action_noise has shape \(3,\), the action"),
        (dict(policy_kwargs=dict(net_arch=[-1])), "net_arch must list positive layer widths"),
        (dict(policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8, 0]))), "net_arch must list positive layer widths"),
        (dict(policy_kwargs=dict(noise_net_arch=[0])), "noise_net_arch must list positive layer widths"),
    ],
)
def test_inputs_that_used_to_fail_deep_inside_are_refused_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DSDPG("MlpPolicy", "Pendulum-v1", **kwargs)


def test_empty_net_arch_works_with_the_concat_critic():
    model = DSDPG(
        "MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[], critic_architecture="concat"),
        learning_starts=50, batch_size=16, n_samples=4, seed=0,
    )  # fmt: skip
    model.learn(80)
    assert model.critic.nets[0][0].in_features == 3 + 1 + model.critic.noise_dim and len(model.critic.nets[0]) == 1


@pytest.mark.parametrize("algo", [TD3, TQC])
def test_loading_another_algorithms_zip_names_it(tmp_path, algo):
    algo("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(tmp_path / "other.zip")
    with pytest.raises(ValueError, match=rf"saved by {algo.__module__.rsplit('.', 1)[0]}.*not by DSDPG"):
        DSDPG.load(tmp_path / "other.zip")
    with open(tmp_path / "other.zip", "rb") as stream, pytest.raises(ValueError, match="not by DSDPG"):
        DSDPG.load(stream)


def test_a_float_learning_starts_works_as_in_td3():
    """TD3 takes ``learning_starts=1e2``; so does DSDPG, whose world-model warm-up counts that many steps."""
    model = _small(gym.make("Pendulum-v1"), learning_starts=40.0)
    steps = model._world_model_step
    calls: list[str] = []
    model._world_model_step = lambda data, logs, n_steps=None, where="": (
        calls.append(where) or steps(data, logs, n_steps, where)
    )
    model.learn(60)
    assert model.num_timesteps == 60 and model._n_updates > 0
    assert sum(where.startswith("world-model warm-up") for where in calls) == 40
