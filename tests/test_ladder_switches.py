"""The switches of the ladder from TD3 to DSDPG (docs/ablations.md): each changes what it says.

- ``sobolev=False, distributional=False`` (R1) is TD3: the same critic loss and the same critic step as SB3's TD3 on
  the same batch and weights.
- ``target_returns="model"`` with ``sobolev=False`` (R3): the return targets are exactly the return part of the
  all-model Sobolev target.
- ``target_returns="real"`` (the hybrid target): its return part is the return-only target on the same batch, and
  its gradient part is the derivative, by finite differences, of the model's target moved onto the real outcome.
- ``reward_fn`` (R6): the shipped reward functions are the envs' rewards, and the target's reward part and its
  gradient come from the function.
"""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from helpers import fd_jacobian, float64_batch, float64_model
from stable_baselines3 import TD3
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch import nn

from sb3_dsdpg import DSDPG
from sb3_dsdpg.envs import known_reward_fn, pendulum_reward
from sb3_dsdpg.targets import discount_not_done, flatten_obs, sobolev_td_targets, unflatten_obs
from sb3_dsdpg.world_models import CVAEWorldModel

GAMMA = 0.5


def _batch(model, batch: int = 16, seed: int = 0, dtype=th.float32) -> ReplayBufferSamples:
    rng = np.random.default_rng(seed)
    obs_dim, action_dim = model.observation_space.shape[0], model.action_space.shape[0]

    def tensor(*shape, low=-1.0, high=1.0):
        return th.as_tensor(rng.uniform(low, high, size=shape), dtype=dtype)

    return ReplayBufferSamples(
        observations=tensor(batch, obs_dim),
        actions=tensor(batch, action_dim, low=-0.8, high=0.8),
        next_observations=tensor(batch, obs_dim),
        dones=th.as_tensor(rng.uniform(size=(batch, 1)) < 0.2, dtype=dtype),
        rewards=tensor(batch, 1, low=-2.0, high=1.0),
    )


# ----------------------------------------------------------------------------------------------------------------------
# R1: DSDPG reduced to TD3
# ----------------------------------------------------------------------------------------------------------------------


def _copy_td3_into(model: DSDPG, td3: TD3) -> None:
    """TD3's actor and critics into DSDPG's (concat critic): the noise inputs' weights set to zero."""
    model.actor.load_state_dict(td3.actor.state_dict())
    model.actor_target.load_state_dict(td3.actor_target.state_dict())
    for ours, theirs in ((model.critic, td3.critic), (model.critic_target, td3.critic_target)):
        for net, q_net in zip(ours.nets, theirs.q_networks, strict=True):
            with th.no_grad():
                for layer, q_layer in zip(
                    [m for m in net if isinstance(m, nn.Linear)], [m for m in q_net if isinstance(m, nn.Linear)], strict=True
                ):
                    layer.weight.zero_()
                    layer.weight[:, : q_layer.weight.shape[1]] = q_layer.weight
                    layer.bias.copy_(q_layer.bias)


def test_td3_rung_takes_the_critic_step_of_sb3_td3():
    common = dict(learning_rate=1e-3, gamma=0.9, target_policy_noise=0.0, seed=0, device="cpu", learning_starts=0)
    td3 = TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[32, 32]), **common)
    model = DSDPG(
        "MlpPolicy",
        "Pendulum-v1",
        sobolev=False,
        distributional=False,
        reward_scale=1.0,
        policy_kwargs=dict(net_arch=[32, 32], critic_architecture="concat", activation_fn=nn.ReLU),
        **common,
    )
    assert model.world_model is None and model.n_samples == 1
    _copy_td3_into(model, td3)
    batch = _batch(model, batch=64)
    losses = []
    for algo in (td3, model):
        algo.replay_buffer.sample = lambda *args, **kwargs: batch  # type: ignore[method-assign]
        algo.set_logger(configure(None, [""]))
        algo.train(gradient_steps=1, batch_size=64)
        losses.append(algo.logger.name_to_value["train/critic_loss"])
    assert losses[0] > 1e-3
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    # The same Adam step: the updated weights agree (the noise inputs' weights stay zero).
    for net, q_net in zip(model.critic.nets, td3.critic.q_networks, strict=True):
        ours = [m for m in net if isinstance(m, nn.Linear)]
        theirs = [m for m in q_net if isinstance(m, nn.Linear)]
        for layer, q_layer in zip(ours, theirs, strict=True):
            width = q_layer.weight.shape[1]
            assert th.allclose(layer.weight[:, :width], q_layer.weight, atol=1e-6)
            assert th.allclose(layer.bias, q_layer.bias, atol=1e-6)
        assert ours[0].weight[:, theirs[0].weight.shape[1] :].abs().max() == 0


# ----------------------------------------------------------------------------------------------------------------------
# The targets of R3 and of the hybrid
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("float64_observations")
def test_model_return_targets_are_the_return_part_of_the_sobolev_target():
    model = float64_model("Pendulum-v1", "factorized", sobolev=False, target_returns="model")
    assert model.world_model is not None and model._critic_targets == model._model_return_targets
    data = _batch(model, dtype=th.float64)
    th.manual_seed(3)
    y, grads = model._critic_targets(data, GAMMA, None)
    assert grads is None
    th.manual_seed(3)
    networks = (model.world_model, model.actor_target, model.critic_target, model.observation_space)
    y_sobolev, _ = sobolev_td_targets(*networks, data.observations, data.actions, data.dones, GAMMA, model.target_options)
    assert th.allclose(y, y_sobolev, atol=1e-12)
    real, _ = model._return_targets(data, GAMMA)
    assert not th.allclose(y, real, atol=1e-3)  # through the (untrained) model, not the real transition


@pytest.mark.usefixtures("float64_observations")
def test_hybrid_return_part_is_the_return_only_target():
    # A deterministic critic without smoothing noise: both targets are then free of random draws.
    model = float64_model("Pendulum-v1", "factorized", target_returns="real", distributional=False, target_policy_noise=0.0)
    data = _batch(model, dtype=th.float64)
    y, grads = model._critic_targets(data, GAMMA, None)
    real, _ = model._return_targets(data, GAMMA)
    assert grads is not None and grads.abs().max() > 1e-3
    assert th.allclose(y, real, atol=1e-12)
    y_model, _ = model._sobolev_targets(data, GAMMA, None)
    assert not th.allclose(y, y_model, atol=1e-3)


def _straight_through_target(model, data, draws, reward_fn=None, hold_latent=False):
    """
    The model's one-step target of the action, moved onto the real outcome: real values, the model's derivative.
    ``hold_latent``: the cVAE's latent ``eps = mu_p + sigma_p * noise`` at the replay's action is held while the action
    moves (the standard noise that gives it is found again at every action); else the standard noise is held.
    """
    model_noise, smoothing, xi = draws
    space, batch = model.observation_space, data.actions.shape[0]
    flat_obs = flatten_obs(space, data.observations, th.float64)
    real_next, real_rewards = flatten_obs(space, data.next_observations, th.float64), data.rewards.reshape(-1, 1)
    discount = discount_not_done(GAMMA, data.dones, th.float64)
    n_draws = model_noise.shape[1]
    world_model = model.world_model

    def prior(actions):  # mu_p and sigma_p (B, 1, L) of the cVAE at (s, a)
        mean, log_std = world_model._gaussian(world_model.prior, world_model._condition(flat_obs, actions))
        return mean.unsqueeze(1), log_std.exp().unsqueeze(1)

    if hold_latent and isinstance(world_model, CVAEWorldModel):  # a flow has no prior: nothing to hold
        with th.no_grad():
            mean, std = prior(data.actions)
            latent = mean + std * model_noise

        def noise_at(actions):
            mean, std = prior(actions)
            return (latent - mean) / std
    else:

        def noise_at(actions):
            return model_noise

    def outcome(actions):
        next_obs, rewards = world_model.sample(flat_obs, actions, n_draws, noise=noise_at(actions))
        if reward_fn is not None:
            rewards = reward_fn(flat_obs.unsqueeze(1), actions.unsqueeze(1), next_obs).expand(-1, n_draws)
        return next_obs, rewards

    at_data = [value.detach() for value in outcome(data.actions)]

    def target(actions):
        next_obs, rewards = outcome(actions)
        next_obs = next_obs - at_data[0] + real_next.unsqueeze(1)
        rewards = rewards - at_data[1] + real_rewards
        next_obs = unflatten_obs(space, next_obs.reshape(batch * n_draws, -1))
        z = model.critic_target(next_obs, (model.actor_target(next_obs) + smoothing).clamp(-1.0, 1.0), xi)
        z = z.reshape(batch, n_draws, model.critic.n_critics, -1).transpose(1, 2).reshape(batch, model.critic.n_critics, -1)
        r = rewards.unsqueeze(1).unsqueeze(-1).expand(-1, model.critic.n_critics, -1, xi.shape[2]).reshape(z.shape)
        return r + discount * z

    return target


@pytest.mark.usefixtures("float64_observations")
@pytest.mark.parametrize("world_model", ["cvae", "realnvp"])
@pytest.mark.parametrize("reward_fn", [None, "known", "learned"])
@pytest.mark.parametrize("hybrid_latent", ["fixed", "standard"])
@pytest.mark.parametrize("vmap_fallback", [False, True])
def test_hybrid_gradient_part_by_finite_differences(monkeypatch, world_model, reward_fn, hybrid_latent, vmap_fallback):
    """The hybrid target's gradient part: the FD derivative of the model's target (its own reward, a known reward or
    the learned one; at the held latent or at the held standard noise) moved onto the real outcome."""
    reward_fn = pendulum_reward if reward_fn == "known" else reward_fn
    model = float64_model(
        "Pendulum-v1", "factorized", world_model, target_returns="real", reward_fn=reward_fn, hybrid_latent=hybrid_latent
    )
    assert model.target_options.hold_latent == (hybrid_latent == "fixed")
    assert (model.reward_model is not None) == (reward_fn == "learned")
    model.reward_scale = 2.0  # the known reward enters in the critic's units
    if vmap_fallback:
        import sb3_dsdpg.targets as targets

        def unsupported(*args, **kwargs):
            raise NotImplementedError

        monkeypatch.setattr(targets, "target_with_tangents", unsupported)
    data = _batch(model, batch=6, dtype=th.float64)
    options = dataclasses.replace(model.target_options, target_policy_noise=0.2)
    networks = (model.world_model, model.actor_target, model.critic_target, model.observation_space)
    th.manual_seed(5)
    y, grads = sobolev_td_targets(
        *networks, data.observations, data.actions, data.dones, GAMMA, options,
        real_outcome=(data.next_observations, data.rewards),
    )  # fmt: skip
    # The same draws, in the order sobolev_td_targets makes them.
    th.manual_seed(5)
    flat_obs = flatten_obs(model.observation_space, data.observations, th.float64)
    noise = model.world_model.posterior_noise(flat_obs, data.actions, data.next_observations, data.rewards, 2)
    smoothing = options.smoothing_noise(data.actions.shape[0] * 2, data.actions)
    xi = options.critic_noise(model.critic_target, data.actions.shape[0] * 2, options.per_draw, th.float64)
    # The model's reward (in the critic's units) and latent setting, as the code path takes them (hybrid: real outcome).
    scaled, hold_latent = options.reward_fn, options.hold_latent
    assert (scaled is None) == (reward_fn is None)
    target = _straight_through_target(model, data, (noise, smoothing, xi), scaled, hold_latent)
    with th.no_grad():
        assert th.allclose(y, target(data.actions), atol=1e-10)
        expected = fd_jacobian(target, data.actions)
    assert expected.abs().max() > 1e-3
    assert th.allclose(grads, expected, atol=1e-6), (grads - expected).abs().max()


@pytest.mark.parametrize("world_model", ["cvae", "realnvp"])
def test_posterior_noise_explains_the_real_transition(world_model):
    """RealNVP inverts exactly; the cVAE's encoder, once trained, lands nearer the real outcome than prior draws."""
    from helpers import linear_gaussian_transition

    from sb3_dsdpg.world_models import CVAEWorldModel, RealNVPWorldModel

    th.manual_seed(0)
    gen = th.Generator().manual_seed(0)
    if world_model == "realnvp":
        wm = RealNVPWorldModel(2, 1, hidden_arch=[16])
        with th.no_grad():
            for param in wm.parameters():
                param.add_(0.2 * th.randn_like(param))
    else:
        wm = CVAEWorldModel(2, 1, encoder_arch=[32], decoder_arch=[32], prior_arch=[32])
        optimizer = th.optim.Adam(wm.parameters(), lr=3e-3)
        for _ in range(1500):
            obs, actions = th.rand(128, 2, generator=gen) * 2 - 1, th.rand(128, 1, generator=gen) * 2 - 1
            next_obs, rewards = linear_gaussian_transition(obs, actions, gen)
            loss, _ = wm.loss(obs, actions, next_obs, rewards)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    obs, actions = th.rand(256, 2, generator=gen) * 2 - 1, th.rand(256, 1, generator=gen) * 2 - 1
    next_obs, rewards = linear_gaussian_transition(obs, actions, gen)
    with th.no_grad():
        noise = wm.posterior_noise(obs, actions, next_obs, rewards, 3)
        assert noise.shape == (256, 3, wm.latent_dim)
        post_next, post_rewards = wm.sample(obs, actions, noise=noise)
        prior_next, prior_rewards = wm.sample(obs, actions, 3)
    post_error = (post_next - next_obs.unsqueeze(1)).pow(2).mean() + (post_rewards - rewards.reshape(-1, 1)).pow(2).mean()
    prior_error = (prior_next - next_obs.unsqueeze(1)).pow(2).mean() + (prior_rewards - rewards.reshape(-1, 1)).pow(2).mean()
    if world_model == "realnvp":
        assert post_error < 1e-8
    else:
        assert post_error < 0.3 * prior_error, (post_error, prior_error)


# ----------------------------------------------------------------------------------------------------------------------
# R6: the known reward functions
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("Pendulum-v1", {}),
        ("sb3_dsdpg/Pendulum-DynNoise-v1", {}),
        ("sb3_dsdpg/PointMassBonus-v0", {"n_bonus": 1}),
        ("sb3_dsdpg/PointMassRevealedBonus-v0", {"n_bonus": 4}),
        ("sb3_dsdpg/PointMassRevealedBonus-v0", {"n_bonus": 3}),
    ],
)
def test_known_reward_is_the_env_reward(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    reward_fn = known_reward_fn(env)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(60):
        action = env.action_space.sample()
        next_obs, reward, *_ = env.step(action)
        scaled = th.as_tensor(action / env.action_space.high, dtype=th.float64)[None]
        value = reward_fn(th.as_tensor(obs, dtype=th.float64)[None], scaled, th.as_tensor(next_obs, dtype=th.float64)[None])
        assert value.item() == pytest.approx(reward, abs=1e-5)
        obs = next_obs


@pytest.mark.parametrize(
    "env_id, kwargs, match",
    [
        ("sb3_dsdpg/PointMassBonus-v0", {"n_bonus": 4}, "hidden"),
        ("sb3_dsdpg/Pendulum-ObsNoise-v1", {}, "noisy observation"),
        ("MountainCarContinuous-v0", {}, "No known reward"),
    ],
)
def test_known_reward_refuses_tasks_without_one(env_id, kwargs, match):
    with pytest.raises(ValueError, match=match):
        known_reward_fn(gym.make(env_id, **kwargs))


def test_revealed_bonus_reward_gradient_by_finite_differences():
    """The revealed toy's known reward: its derivative in the next position and the action is the FD one."""
    reward_fn = known_reward_fn(gym.make("sb3_dsdpg/PointMassRevealedBonus-v0", n_bonus=4))
    rng = np.random.default_rng(0)
    centres = th.as_tensor([[0.7, 0.0], [0.0, 0.7], [-0.7, 0.0], [0.0, -0.7]], dtype=th.float64)[rng.integers(0, 4, 8)]
    position = centres + th.as_tensor(rng.normal(0.0, 0.1, (8, 2)))
    actions = th.as_tensor(rng.uniform(-0.9, 0.9, (8, 2)))
    obs = th.zeros(8, 4, dtype=th.float64)

    def reward(x):  # x = (p', a): the inputs the Sobolev target differentiates through
        return reward_fn(obs, x[:, 2:], th.cat([x[:, :2], centres], dim=-1)).unsqueeze(-1)

    inputs = th.cat([position, actions], dim=-1).requires_grad_(True)
    (grad,) = th.autograd.grad(reward(inputs).sum(), inputs)
    with th.no_grad():
        expected = fd_jacobian(reward, inputs.detach())[:, 0]
    assert th.allclose(grad, expected, atol=1e-6)
    assert grad[:, :2].abs().max() > 0.1  # the bonus's slope is there to check


def test_reward_fn_known_is_found_from_the_env_saved_as_a_string_and_refused_early(tmp_path):
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    env_id = "sb3_dsdpg/PointMassRevealedBonus-v0"
    small = dict(policy_kwargs=dict(net_arch=[8]), world_model_kwargs=dict(encoder_arch=[8], decoder_arch=[8], prior_arch=[8]))
    model = DSDPG("MlpPolicy", gym.make(env_id, n_bonus=2), reward_fn="known", learning_starts=50, batch_size=16, **small)
    model.learn(80)
    obs = th.rand(5, 4, dtype=th.float64)
    actions, next_obs = th.rand(5, 2, dtype=th.float64), th.rand(5, 4, dtype=th.float64)
    expected = known_reward_fn(gym.make(env_id, n_bonus=2))(obs, actions, next_obs) / model.reward_scale
    assert th.allclose(model._scaled_reward_fn(obs, actions, next_obs), expected)
    model.save(tmp_path / "model.zip")
    loaded = DSDPG.load(tmp_path / "model.zip", env=gym.make(env_id, n_bonus=2))
    assert loaded.reward_fn == "known"
    assert th.allclose(loaded._scaled_reward_fn(obs, actions, next_obs), expected)
    with pytest.raises(ValueError, match="reward_fn='known': No known reward"):
        DSDPG("MlpPolicy", "MountainCarContinuous-v0", reward_fn="known")
    with pytest.raises(ValueError, match="VecNormalize"):
        DSDPG("MlpPolicy", VecNormalize(DummyVecEnv([lambda: gym.make(env_id)])), reward_fn="known")


@pytest.mark.usefixtures("float64_observations")
def test_reward_fn_gives_the_reward_part_of_the_target():
    """All-model target with a known reward: ``y - gamma z`` is the function at the model's next state, ``dy/da`` by FD."""
    model = float64_model("Pendulum-v1", "factorized", reward_fn=pendulum_reward, distributional=False)
    model.reward_scale = 1.0
    obs, actions = float64_batch(model, batch=6)
    dones = th.zeros(6, 1, dtype=th.float64)
    th.manual_seed(0)
    y, grads = sobolev_td_targets(
        model.world_model, model.actor_target, model.critic_target, model.observation_space, obs, actions, dones, 0.0,
        dataclasses.replace(model.target_options, target_policy_noise=0.0),
    )  # fmt: skip
    th.manual_seed(0)
    noise = th.randn(6, 1, model.world_model.latent_dim, dtype=th.float64)

    def reward(act):
        next_obs, _ = model.world_model.sample(obs, act, noise=noise)
        return pendulum_reward(obs.unsqueeze(1), act.unsqueeze(1), next_obs)  # (B, 1)

    with th.no_grad():
        assert th.allclose(y[:, :, 0], reward(actions).expand(-1, 2), atol=1e-12)  # gamma = 0: the reward alone
        expected = fd_jacobian(reward, actions)[:, 0]
    assert th.allclose(grads[:, 0, 0], expected, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target_returns="both"), "target_returns must be one of"),
        (dict(target_returns="real", critic_actions="policy"), "critic_actions='policy' needs target_returns='model'"),
        (dict(sobolev=False, reward_fn=pendulum_reward), "reward_fn replaces the world model's reward"),
        (dict(reward_fn="pendulum"), "reward_fn must be 'auto', 'learned', 'known', None or a callable"),
        (dict(gradient_weight=-1.0), "gradient_weight must be a float >= 0"),
        (dict(sobolev=False, critic_actions="policy", target_returns="real"), "needs target_returns='model'"),
    ],
)
def test_bad_switch_combinations_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DSDPG("MlpPolicy", "Pendulum-v1", **kwargs)


@pytest.mark.parametrize(
    "kwargs, targets, critic_actions, world_model",
    [
        (dict(sobolev=False, distributional=False), "_return_targets", "replay", False),
        (dict(sobolev=False), "_return_targets", "replay", False),
        (dict(sobolev=False, target_returns="model"), "_model_return_targets", "replay", True),
        (dict(target_returns="real"), "_hybrid_targets", "replay", True),
        (dict(target_returns="model"), "_sobolev_targets", "policy", True),
    ],
)
def test_auto_settings_follow_the_switches(tmp_path, kwargs, targets, critic_actions, world_model):
    model = DSDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), device="cpu", **kwargs)
    assert model._critic_targets == getattr(model, targets)
    assert model.critic_actions == critic_actions and (model.world_model is not None) == world_model
    # reward_fn="auto": the learned reward wherever a world model is
    assert model.reward_fn == ("learned" if world_model else None) and (model.reward_model is not None) == world_model
    model.save(tmp_path / "model.zip")
    loaded = DSDPG.load(tmp_path / "model.zip", device="cpu")
    assert loaded._critic_targets == getattr(loaded, targets) and loaded.target_returns == model.target_returns
    assert loaded.reward_fn == model.reward_fn and (loaded.reward_model is not None) == world_model


@pytest.mark.usefixtures("float64_observations")
def test_gradient_weight_scales_the_gradient_part_in_the_kernel():
    """0 leaves the returns alone: the hybrid's loss is then the return-only loss on the same samples; 1 is unchanged."""
    model = float64_model("Pendulum-v1", "factorized", target_returns="real", normalize_samples=False)
    online = th.randn(6, 2, 4, 2, dtype=th.float64, generator=th.Generator().manual_seed(0))
    target = th.randn(6, 7, 2, dtype=th.float64, generator=th.Generator().manual_seed(1))
    th.manual_seed(0)
    joint = model._distribution_loss(online, target)
    model.gradient_weight = 0.0
    th.manual_seed(0)
    returns_only = model._distribution_loss(online[..., :1], target[..., :1])
    th.manual_seed(0)
    assert model._distribution_loss(online, target).item() == pytest.approx(returns_only.item(), rel=1e-10)
    assert joint.item() != pytest.approx(returns_only.item(), rel=1e-3)
    model.gradient_weight = 0.5  # half the gradient part: the loss of samples whose gradient part was halved
    th.manual_seed(0)
    half = model._distribution_loss(online, target)
    model.gradient_weight = 1.0
    scale = th.tensor([1.0, 0.5], dtype=th.float64)
    th.manual_seed(0)
    assert half.item() == pytest.approx(model._distribution_loss(online * scale, target * scale).item(), rel=1e-10)


def test_critic_noise_is_drawn_per_batch_row_by_default_and_shared_on_request(tmp_path):
    """``share_critic_noise``: fresh draws per row by default (the ladder's double-pendulum fix), one set per update
    with ``True``; the loss of a batch of identical rows then differs between rows only without sharing."""
    shared = DSDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8], share_critic_noise=True), device="cpu")
    fresh = DSDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), device="cpu")
    assert shared.critic.share_noise and shared.critic_target.share_noise
    assert not fresh.critic.share_noise and not fresh.critic_target.share_noise
    assert shared.critic.sample_noise(5, 3).shape == (1, 2, 3, 8)
    assert fresh.critic.sample_noise(5, 3).shape == (5, 2, 3, 8)
    obs, act = th.zeros(4, 3), th.zeros(4, 1)
    with th.no_grad():
        same = shared.critic(obs, act, shared.critic.sample_noise(4, 3))
        differ = fresh.critic(obs, act, fresh.critic.sample_noise(4, 3))
    assert th.equal(same[0], same[3]) and not th.allclose(differ[0], differ[3])
    shared.save(tmp_path / "shared.zip")
    assert DSDPG.load(tmp_path / "shared.zip", device="cpu").critic.share_noise
