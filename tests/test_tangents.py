"""Hand-written tangents of the Sobolev target (sb3_dsdpg.tangents) against forward-mode autograd (vmap of jvp) on the
same target function: values and directional derivatives, for random per-row directions and the identity basis."""

import pytest
import torch as th
from helpers import float64_batch, float64_model, model_targets
from torch.func import jvp, vmap

from sb3_dsdpg import DSDPG
from sb3_dsdpg.tangents import check_tangent_support, target_with_tangents, world_model_with_tangents
from sb3_dsdpg.targets import per_row_jacobian, unflatten_obs

pytestmark = pytest.mark.usefixtures("float64_observations")

GAMMA = 0.5
DONES = th.tensor([[0.0], [1.0], [0.0], [0.0], [0.0]], dtype=th.float64)


def _draws(model, batch: int, seed: int = 7):
    """The random inputs of one target: world-model noise, clipped smoothing noise and critic noise."""
    gen = th.Generator().manual_seed(seed)
    n_draws, action_dim = model.n_target_model_draws, model.action_space.shape[0]
    model_noise = th.randn(batch, n_draws, model.world_model.latent_dim, generator=gen, dtype=th.float64)
    smoothing = (th.randn(batch * n_draws, action_dim, generator=gen, dtype=th.float64) * 0.6).clamp(-0.5, 0.5)
    th.manual_seed(seed)
    xi = model.critic_target.sample_noise(batch * n_draws, model.n_samples // n_draws).double()
    return model_noise, smoothing, xi


def _in_sample_order(rewards, z, batch: int, n_critics: int, per_draw: int) -> th.Tensor:
    """``r + gamma (1 - done) z`` as ``(B, K, M * P, ...)``, the layout of sobolev_td_targets."""
    n_draws, rest = rewards.shape[1], rewards.shape[2:]
    r = rewards.unsqueeze(1).unsqueeze(3).expand(batch, n_critics, n_draws, per_draw, *rest)
    z = z.reshape(batch, n_draws, n_critics, per_draw, *rest).transpose(1, 2)
    not_done = (1.0 - DONES).reshape(batch, 1, 1, *[1] * len(rest))
    return r.reshape(batch, n_critics, -1, *rest) + GAMMA * not_done * z.reshape(batch, n_critics, -1, *rest)


def _reference_fn(model, flat_obs, model_noise, smoothing, xi, wrt_obs: bool):
    """The target function of sobolev_td_targets, of the action or of the flat (s, a)."""
    batch, obs_dim = flat_obs.shape
    n_draws = model_noise.shape[1]

    def target_fn(x: th.Tensor) -> th.Tensor:
        obs, act = (x[:, :obs_dim], x[:, obs_dim:]) if wrt_obs else (flat_obs, x)
        next_obs, rewards = model.world_model.sample(obs, act, n_draws, noise=model_noise)
        next_obs = unflatten_obs(model.observation_space, next_obs.reshape(batch * n_draws, -1))
        next_actions = (model.actor_target(next_obs) + smoothing).clamp(-1.0, 1.0)
        z = model.critic_target(next_obs, next_actions, xi)
        return _in_sample_order(rewards, z, batch, model.critic_target.n_critics, xi.shape[2])

    return target_fn


def _jvp_along(fn, x: th.Tensor, basis: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """per_row_jacobian's vmap(jvp) with a given tangent basis ``(k, B, D)``: value and derivatives ``(B, ..., k)``."""
    value, tangents = vmap(lambda t: jvp(fn, (x,), (t,)), out_dims=(None, 0))(basis)
    return value, tangents.movedim(0, -1)


def _hand(model, flat_obs, actions, tangent_obs, tangent_act, draws, reward_fn=None, hold_latent=False):
    r, dr, z, dz = target_with_tangents(
        model.world_model,
        model.actor_target,
        model.critic_target,
        flat_obs,
        actions,
        tangent_obs,
        tangent_act,
        *draws,
        reward_fn=reward_fn,
        hold_latent=hold_latent,
    )
    n_critics, per_draw = model.critic_target.n_critics, draws[2].shape[2]
    batch = flat_obs.shape[0]
    return _in_sample_order(r, z, batch, n_critics, per_draw), _in_sample_order(dr, dz, batch, n_critics, per_draw)


CASES = [
    ("Pendulum-v1", "factorized", "cvae"),
    ("HalfCheetah-v5", "factorized", "cvae"),
    ("Pendulum-v1", "concat", "cvae"),
    ("HalfCheetah-v5", "factorized", "realnvp"),
    ("Pendulum-v1", "concat", "realnvp"),
]


def _setup(env_id, architecture, world_model, share_noise: bool = True, **kwargs):
    model = float64_model(env_id, architecture, world_model, **kwargs)
    model.critic_target.share_noise = share_noise  # False: critic noise (B * M, K, P, d), one draw set per row
    with th.no_grad():  # exercise the clip of the target action and of the prior's log-std, not only their insides
        model.actor_target.mu[-2].bias.add_(0.8)
        if world_model == "cvae":
            model.world_model.prior[-1].bias[model.world_model.latent_dim :].fill_(2.99)
    obs, actions = float64_batch(model)
    return model, obs.reshape(obs.shape[0], -1), actions


@pytest.mark.parametrize("wrt_obs", [False, True])
@pytest.mark.parametrize("n_directions", [1, 2, "identity"])
@pytest.mark.parametrize("env_id, architecture, world_model", CASES)
def test_tangents_match_vmap_jvp(env_id, architecture, world_model, n_directions, wrt_obs):
    model, flat_obs, actions = _setup(env_id, architecture, world_model)
    batch, obs_dim = flat_obs.shape
    draws = _draws(model, batch)
    x = th.cat([flat_obs, actions], dim=-1) if wrt_obs else actions
    if n_directions == "identity":
        basis = th.eye(x.shape[1], dtype=th.float64).unsqueeze(1).expand(-1, batch, -1)
    else:
        basis = th.randn(n_directions, batch, x.shape[1], generator=th.Generator().manual_seed(1), dtype=th.float64)
    fn = _reference_fn(model, flat_obs, *draws, wrt_obs=wrt_obs)
    with th.no_grad():
        y_ref, g_ref = _jvp_along(fn, x, basis)
        if n_directions == "identity":  # the package's own per_row_jacobian agrees with the helper above
            y_id, g_id = per_row_jacobian(fn, x)
            assert th.equal(y_id, y_ref) and th.equal(g_id, g_ref)
    tangents = basis.transpose(0, 1)  # (B, k, D)
    tangent_obs, tangent_act = (tangents[..., :obs_dim], tangents[..., obs_dim:]) if wrt_obs else (None, tangents)
    y, g = _hand(model, flat_obs, actions, tangent_obs, tangent_act, draws)
    assert y.shape == y_ref.shape and g.shape == g_ref.shape == (*y.shape, basis.shape[0])
    assert (y - y_ref).abs().max() < 1e-10
    assert (g - g_ref).abs().max() < 1e-10, (g - g_ref).abs().max()
    assert g_ref.abs().max() > 1e-3  # not trivially zero
    assert not th.isfinite(g).logical_not().any()


@pytest.mark.parametrize("stack_critics", [True, False])
@pytest.mark.parametrize("architecture", ["factorized", "concat"])
def test_tangents_with_per_row_critic_noise(architecture, stack_critics):
    """Per-row critic noise: the factorized critics run stacked (or, with ``stack_critics=False``, one by one)."""
    model, flat_obs, actions = _setup("HalfCheetah-v5", architecture, "cvae", share_noise=False)
    draws = _draws(model, flat_obs.shape[0])
    assert draws[2].shape[0] == flat_obs.shape[0] * model.n_target_model_draws
    assert (model.critic_target.stacked_nets(draws[2]) is not None) == (architecture == "factorized")
    basis = th.randn(2, *actions.shape, generator=th.Generator().manual_seed(1), dtype=th.float64)
    model.critic_target.stack_critics = False  # the reference evaluates the critics one by one
    with th.no_grad():
        y_ref, g_ref = _jvp_along(_reference_fn(model, flat_obs, *draws, wrt_obs=False), actions, basis)
    model.critic_target.stack_critics = stack_critics
    y, g = _hand(model, flat_obs, actions, None, basis.transpose(0, 1), draws)
    assert (y - y_ref).abs().max() < 1e-10 and (g - g_ref).abs().max() < 1e-10
    assert g_ref.abs().max() > 1e-3


def test_clip_zeroes_tangents_where_active():
    """Targets whose next action is clipped in every dimension get no tangent through the critic's action input."""
    model, flat_obs, actions = _setup("Pendulum-v1", "factorized", "cvae")
    draws = _draws(model, flat_obs.shape[0])
    with th.no_grad():
        model.actor_target.mu[-2].bias.fill_(50.0)  # tanh saturates at 1: clipped after the smoothing noise
    _, dr, _, dz = target_with_tangents(
        model.world_model,
        model.actor_target,
        model.critic_target,
        flat_obs,
        actions,
        None,
        th.ones(5, 1, 1, dtype=th.float64),
        *draws,
    )
    fn = _reference_fn(model, flat_obs, *draws, wrt_obs=False)
    with th.no_grad():
        _, g_ref = per_row_jacobian(fn, actions)
    assert th.allclose(_in_sample_order(dr, dz, 5, 2, draws[2].shape[2]), g_ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("reward_fn", ["learned", None])
@pytest.mark.parametrize("n_directions", [None, 1, 2])
@pytest.mark.parametrize("sobolev_inputs", ["action", "state_action"])
@pytest.mark.parametrize("env_id, architecture, world_model", [CASES[0], CASES[1], CASES[4]])
def test_reproduces_sobolev_td_targets(env_id, architecture, world_model, sobolev_inputs, n_directions, reward_fn):
    """
    The hand-written path reproduces sobolev_td_targets itself: with its ``directions`` (vmap(jvp) along them), and
    without (the identity basis: vmap(jvp) over the action, or the chain rule of the state_action target); with the
    learned reward (the default) and with the world model's own. Assumes its draw order: model noise, smoothing,
    critic noise.
    """
    model, flat_obs, actions = _setup(env_id, architecture, world_model, reward_fn=reward_fn)
    batch, obs_dim = flat_obs.shape
    action_dim = actions.shape[1]
    dim = action_dim if sobolev_inputs == "action" else obs_dim + action_dim
    if n_directions is None:
        directions, tangents = None, th.eye(dim, dtype=th.float64).expand(batch, -1, -1)
    else:
        directions = th.randn(batch, n_directions, dim, generator=th.Generator().manual_seed(2), dtype=th.float64)
        tangents = directions
    y_ref, g_ref = model_targets(model, flat_obs, actions, DONES, GAMMA, sobolev_inputs=sobolev_inputs, directions=directions)
    th.manual_seed(123)
    n_draws = model.n_target_model_draws
    model_noise = th.randn(batch, n_draws, model.world_model.latent_dim, dtype=th.float64)
    smoothing = (th.randn(batch * n_draws, action_dim, dtype=th.float64) * 0.2).clamp(-0.5, 0.5)
    xi = model.critic_target.sample_noise(batch * n_draws, model.n_samples // n_draws).double()
    if sobolev_inputs == "action":
        tangent_obs, tangent_act = None, tangents
    else:
        tangent_obs, tangent_act = tangents[..., :obs_dim], tangents[..., obs_dim:]
    # The model's reward as sobolev_td_targets takes it (the learned one by default); the target is all-model (no real
    # outcome), so the latent is not held whatever hybrid_latent says (it is the hybrid target's).
    assert (model.target_options.reward_fn is None) == (reward_fn is None)
    draws = (model_noise, smoothing, xi)
    y, g = _hand(model, flat_obs, actions, tangent_obs, tangent_act, draws, model.target_options.reward_fn, False)
    assert g.shape == g_ref.shape
    assert (y - y_ref).abs().max() < 1e-10
    assert (g - g_ref).abs().max() < 1e-10


@pytest.mark.parametrize("wrt", ["action", "observation", "both"])
@pytest.mark.parametrize("world_model", ["cvae", "realnvp"])
def test_world_model_jacobian_matches_per_row_jacobian(world_model, wrt):
    """The world model alone, as the chain rule of the full Sobolev target uses it: its Jacobian in (s, a)."""
    model, flat_obs, actions = _setup("HalfCheetah-v5", "factorized", world_model)
    batch, obs_dim = flat_obs.shape
    noise = _draws(model, batch)[0]

    def model_fn(x: th.Tensor) -> th.Tensor:
        next_obs, rewards = model.world_model.sample(x[:, :obs_dim], x[:, obs_dim:], noise=noise)
        return th.cat([next_obs, rewards.unsqueeze(-1)], dim=-1)  # (B, M, S + 1)

    with th.no_grad():
        out, jac = per_row_jacobian(model_fn, th.cat([flat_obs, actions], dim=-1))  # (B, M, S + 1, S + A)
    if wrt == "action":
        jac = jac[..., obs_dim:]
    elif wrt == "observation":
        jac = jac[..., :obs_dim]
    eye = th.eye(jac.shape[-1], dtype=th.float64).expand(batch, -1, -1)
    tangent_obs, tangent_act = {
        "action": (None, eye),
        "observation": (eye, None),
        "both": (eye[..., :obs_dim], eye[..., obs_dim:]),
    }[wrt]
    next_obs, d_next_obs, rewards, d_rewards = world_model_with_tangents(
        model.world_model, flat_obs, actions, tangent_obs, tangent_act, noise
    )
    assert (th.cat([next_obs, rewards.unsqueeze(-1)], dim=-1) - out).abs().max() < 1e-12
    assert (th.cat([d_next_obs, d_rewards.unsqueeze(-2)], dim=-2) - jac).abs().max() < 1e-10
    with pytest.raises(ValueError):
        world_model_with_tangents(model.world_model, flat_obs, actions, None, None, noise)


def test_unsupported_networks_raise_not_implemented():
    from stable_baselines3.common.envs import BitFlippingEnv

    model = float64_model("Pendulum-v1", "factorized")
    check_tangent_support(model.world_model, model.actor_target, model.critic_target)
    check_tangent_support(model.world_model)
    with pytest.raises(NotImplementedError):
        check_tangent_support(model.world_model, model.critic_target, model.critic_target)
    model.actor_target.mu[1] = th.nn.GELU()
    with pytest.raises(NotImplementedError):
        check_tangent_support(model.world_model, model.actor_target, model.critic_target)
    # Dict observations (CombinedExtractor): the caller falls back to vmap(jvp).
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    dict_model = DSDPG("MultiInputPolicy", env, learning_starts=0, policy_kwargs=dict(net_arch=[16]))
    with pytest.raises(NotImplementedError):
        check_tangent_support(dict_model.world_model, dict_model.actor_target, dict_model.critic_target)


@pytest.mark.parametrize("sobolev_inputs, k", [("action", None), ("action", 2), ("state_action", 3), ("state_action", None)])
def test_vmap_fallback_gives_the_same_target(monkeypatch, sobolev_inputs, k):
    """sobolev_td_targets falls back to vmap(jvp) for networks the hand path refuses: same values and derivatives."""
    from sb3_dsdpg import targets as targets_module

    model = float64_model("HalfCheetah-v5", "factorized", sobolev_inputs=sobolev_inputs)
    obs, actions = float64_batch(model)
    th.manual_seed(3)
    directions = None
    if k is not None:
        model.sobolev_directions = k
        directions = model.sample_directions(obs.shape[0]).double()

    def run():
        return model_targets(model, obs, actions, DONES, GAMMA, directions=directions)

    y_hand, g_hand = run()

    def refuse(*args, **kwargs):
        raise NotImplementedError("refused for the test")

    monkeypatch.setattr(targets_module, "target_with_tangents", refuse)
    monkeypatch.setattr(targets_module, "world_model_with_tangents", refuse)
    y_vmap, g_vmap = run()
    assert th.allclose(y_hand, y_vmap, atol=1e-12) and th.allclose(g_hand, g_vmap, atol=1e-10)
    assert g_hand.abs().max() > 1e-3
