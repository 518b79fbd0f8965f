"""TD targets of DSDPG and its baselines, as pure functions of (networks, batch) -> target samples.

This module owns the Sobolev TD target ``y = r + gamma (1 - done) Z'(s', pi'(s') + noise, xi')`` with
``(s', r) = g(s, a, eps)`` from the world model, and its gradient part ``G`` taken through the world model, the
target policy and the target critic (arXiv 2601.20071: "implemented via backpropagation through reparameterised
simulators"); its hybrid form, whose values are the real transition's and whose derivative is the model's at the
latent that explains that transition (ours; the noise inference of SVG(1), Heess et al. 2015); the return-only
target from real transitions; the settings both take (:class:`TargetOptions`); the
one-step target for given draws (:func:`one_step_targets`, also what the diagnostics evaluate); the TQC-style
truncation of the pooled target samples; and the conversion between Dict observations and the flat vectors the world
model works on.

``G`` is computed in forward mode, whatever the number of target samples (reverse mode would need one backward
per sample): ``G = dy/da`` with one tangent per action dimension, or the directional derivatives ``u_j . dy/dx``
along ``k`` directions per row (``sobolev_directions``). The tangents are carried by hand through the layers
(:mod:`sb3_dsdpg.tangents`), 2.4-6x faster than ``torch.func.vmap(jvp)``, which stays as the fallback for networks
the hand-written path does not cover. The full gradient of ``sobolev_inputs="state_action"`` composes the
Jacobians of world model (``|S| + |A|`` tangents through it alone), target actor (reverse mode, ``|A|``
cotangents) and target critic (its own input gradients) by the chain rule, cheaper than carrying ``|S| + |A|``
tangents through all three.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import PyTorchObs
from torch.func import jvp, vjp, vmap

from sb3_dsdpg.tangents import on_real_outcome, target_with_tangents, world_model_with_tangents


def flatten_obs(observation_space: spaces.Space, obs: PyTorchObs, dtype: th.dtype = th.float32) -> th.Tensor:
    """Flatten a batch of observations to ``(B, flatdim)`` of ``dtype``, in gymnasium's ``flatten`` order."""
    if isinstance(observation_space, spaces.Dict):
        parts = [obs[key].reshape(obs[key].shape[0], -1) for key in observation_space.spaces]  # type: ignore[index]
        return th.cat(parts, dim=-1).to(dtype)
    assert isinstance(obs, th.Tensor)
    return obs.reshape(obs.shape[0], -1).to(dtype)


def unflatten_obs(observation_space: spaces.Space, flat: th.Tensor) -> PyTorchObs:
    """Inverse of :func:`flatten_obs`: flat vectors ``(R, flatdim)`` back to the space's structure."""
    if isinstance(observation_space, spaces.Dict):
        out, start = {}, 0
        for key, space in observation_space.spaces.items():
            size = spaces.flatdim(space)
            out[key] = flat[:, start : start + size].reshape(flat.shape[0], *space.shape)  # type: ignore[misc]
            start += size
        return out
    return flat.reshape(flat.shape[0], *observation_space.shape)


def check_flattenable(observation_space: spaces.Space) -> None:
    """Raise a ValueError for observation spaces the world model cannot flatten and rebuild."""
    subspaces = observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else [observation_space]
    for space in subspaces:
        if not isinstance(space, spaces.Box | spaces.MultiBinary):
            raise ValueError(
                f"The world model needs Box or MultiBinary observations (or a Dict of them), got {space}: "
                "use sobolev=False (no world model) or wrap the env to give Box observations."
            )


def discount_not_done(gamma: float | th.Tensor, dones: th.Tensor, dtype: th.dtype = th.float32) -> th.Tensor:
    """
    ``gamma (1 - done)`` as ``(B, 1, 1)``, for a scalar discount or one per row (``(B,)`` or ``(B, 1)``, as SB3's
    n-step replay buffer gives in ``discounts``), so that it broadcasts over critics and samples, never over rows.
    """
    batch = dones.shape[0]
    not_done = 1.0 - dones.reshape(batch, 1, 1).to(dtype)
    if isinstance(gamma, th.Tensor):
        if gamma.numel() != batch:
            raise ValueError(f"A per-row discount needs one value per row ({batch}), got shape {tuple(gamma.shape)}.")
        return gamma.reshape(batch, 1, 1).to(not_done.dtype) * not_done
    return gamma * not_done


def per_row_jacobian(
    fn: Callable[[th.Tensor], th.Tensor], actions: th.Tensor, directions: th.Tensor | None = None
) -> tuple[th.Tensor, th.Tensor]:
    """
    ``fn(actions)`` and its derivative in each row's own action, for a ``fn`` whose rows depend only on their action.

    Any per-row input works the same way, e.g. the concatenated flat observation and action of the full Sobolev
    target: one tangent per input dimension, all in one ``vmap``-batched forward-mode pass.

    :param fn: maps ``(B, A)`` to ``(B, ...)``, row ``b`` depending on ``actions[b]`` only; free of random draws
    :param actions: ``(B, A)``, the differentiated input
    :param directions: ``(B, k, A)``: return the ``k`` directional derivatives of each row along its own
        directions instead of the full Jacobian (``k`` tangents instead of ``A``)
    :return: value ``(B, ...)`` and Jacobian ``(B, ..., A)`` (with ``directions``: ``(B, ..., k)``)
    """
    if directions is None:
        action_dim = actions.shape[-1]
        basis = th.eye(action_dim, dtype=actions.dtype, device=actions.device).unsqueeze(1).expand(-1, actions.shape[0], -1)
    else:
        basis = directions.transpose(0, 1).to(actions.dtype)  # (k, B, A)

    def directional(tangent: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return jvp(fn, (actions,), (tangent,))

    value, tangents = vmap(directional, out_dims=(None, 0))(basis)
    return value, tangents.movedim(0, -1)


SOBOLEV_INPUTS = ("action", "state_action")


@dataclass(frozen=True)
class TargetOptions:
    """
    The settings of a TD target: how many samples it draws, its noise, and what its gradient part differentiates.

    :param n_samples: target samples per critic and ``(s, a)``
    :param n_model_draws: world-model draws per ``(s, a)`` (Sobolev target), each carrying
        ``n_samples // n_model_draws`` critic draws and its own target-policy smoothing noise
    :param target_policy_noise: standard deviation of the target-policy smoothing noise
    :param target_noise_clip: its clip
    :param deterministic_critic: use ``xi = 0`` (the deterministic-Sobolev baseline's critics)
    :param sobolev_inputs: ``"action"``: ``G = dy/da``; ``"state_action"``: ``G = (dy/ds, dy/da)`` with ``s`` the
        flat observation, carried through the world model's Jacobian in ``s`` as well as in ``a``
    :param reward_fn: a known differentiable reward ``r(s, a, s')`` of flat observations and actions (broadcasting
        over leading dimensions, in the units the critic learns) that replaces the world model's reward in targets
        through the model; None: the model's reward
    :param hold_latent: the hybrid target's world-model derivative at the fixed latent that explains the real
        transition, not at fixed standard noise (:meth:`WorldModel.sample`); targets from prior draws ignore it
    """

    n_samples: int
    n_model_draws: int = 1
    target_policy_noise: float = 0.2
    target_noise_clip: float = 0.5
    deterministic_critic: bool = False
    sobolev_inputs: str = "action"
    reward_fn: Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor] | None = None
    hold_latent: bool = False

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.n_model_draws < 1 or self.n_samples % self.n_model_draws != 0:
            raise ValueError(
                f"n_samples ({self.n_samples}) must be a positive multiple of n_target_model_draws ({self.n_model_draws})."
            )
        if not (self.target_policy_noise >= 0 and self.target_noise_clip >= 0):
            raise ValueError(
                "target_policy_noise and target_noise_clip must be >= 0, "
                f"got {self.target_policy_noise} and {self.target_noise_clip}."
            )
        if self.sobolev_inputs not in SOBOLEV_INPUTS:
            raise ValueError(f"sobolev_inputs must be one of {SOBOLEV_INPUTS}, got {self.sobolev_inputs!r}.")

    @property
    def per_draw(self) -> int:
        """Critic draws per world-model draw."""
        return self.n_samples // self.n_model_draws

    def smoothing_noise(self, rows: int, like: th.Tensor) -> th.Tensor:
        """Clipped target-policy smoothing noise ``(rows, A)`` in the dtype and device of the actions ``like``."""
        noise = th.randn(rows, like.shape[-1], dtype=like.dtype, device=like.device) * self.target_policy_noise
        return noise.clamp(-self.target_noise_clip, self.target_noise_clip)

    def critic_noise(self, critic_target: th.nn.Module, rows: int, n_samples: int, dtype: th.dtype) -> th.Tensor:
        """The target critic's noise ``xi`` for ``rows`` inputs, zero for a deterministic critic."""
        xi = critic_target.sample_noise(rows, n_samples).to(dtype)
        return th.zeros_like(xi) if self.deterministic_critic else xi


def one_step_targets(
    world_model: th.nn.Module,
    actor_target: th.nn.Module,
    critic_target: th.nn.Module,
    observation_space: spaces.Space,
    flat_obs: th.Tensor,
    actions: th.Tensor,
    discount: float | th.Tensor,
    model_noise: th.Tensor,
    smoothing: th.Tensor,
    xi: th.Tensor,
    reward_fn: Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor] | None = None,
    real_outcome: tuple[th.Tensor, th.Tensor] | None = None,
    hold_latent: bool = False,
) -> th.Tensor:
    """
    ``y = r + discount Z'(s', clip(pi'(s') + smoothing), xi)`` with ``(s', r) = g(s, a, eps)``, for given draws.

    The one-step target through the world model, a function of ``(s, a)`` free of random draws (so that it can be
    differentiated or finite-differenced with common random numbers).

    :param flat_obs: ``(B, S)``; ``actions``: ``(B, A)``
    :param discount: a float, or ``(B, 1, 1)`` (``gamma (1 - done)`` per row)
    :param model_noise: the world model's draws ``(B, M, latent_dim)``
    :param smoothing: target-policy smoothing ``(B * M, A)``
    :param xi: the target critic's noise ``(B * M or 1, K, P, k)``
    :param reward_fn: the known reward ``r(s, a, s')`` in place of the model's (see :class:`TargetOptions`)
    :param real_outcome: the real next flat observations ``(B, S)`` and rewards ``(B,)``: the hybrid target, whose
        values are those of the real transition and whose derivatives are the model's (a straight-through pair)
    :param hold_latent: the model's derivative at a fixed latent (:meth:`WorldModel.sample`)
    :return: ``(B, K, M * P)``: per critic, model draw after draw, ``P`` critic draws each
    """
    batch, n_draws = model_noise.shape[:2]
    next_obs, rewards = world_model.sample(flat_obs, actions, n_draws, noise=model_noise, hold_latent=hold_latent)
    if reward_fn is not None:
        rewards = reward_fn(flat_obs.unsqueeze(1), actions.unsqueeze(1), next_obs).expand_as(rewards)
    if real_outcome is not None:
        real_next, real_rewards = real_outcome
        next_obs = next_obs + (real_next.unsqueeze(1) - next_obs).detach()
        rewards = rewards + (real_rewards.reshape(-1, 1) - rewards).detach()
    next_obs = unflatten_obs(observation_space, next_obs.reshape(batch * n_draws, -1))
    next_actions = (actor_target(next_obs) + smoothing).clamp(-1.0, 1.0)
    z = critic_target(next_obs, next_actions, xi)  # (B * M, K, P)
    return _rewards_in_sample_order(rewards, z.shape[1], z.shape[2]) + discount * _critic_in_sample_order(z, batch)


def target_draws(
    world_model: th.nn.Module,
    critic_target: th.nn.Module,
    flat_obs: th.Tensor,
    actions: th.Tensor,
    options: TargetOptions,
    real_outcome: tuple[th.Tensor, th.Tensor] | None = None,
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    The random draws of a target through the world model, in this order: the model's noise ``(B, M, latent_dim)``
    (prior draws, or with ``real_outcome`` (flat next observations, rewards ``(B,)``) the draws that explain it,
    :meth:`WorldModel.posterior_noise`, where the model can infer them), the clipped smoothing ``(B * M, A)`` and the
    target critic's noise.
    """
    batch, n_draws = actions.shape[0], options.n_model_draws
    model_noise = None
    if real_outcome is not None:
        with th.no_grad(), contextlib.suppress(NotImplementedError):
            model_noise = world_model.posterior_noise(flat_obs, actions, *real_outcome, n_draws).to(actions.dtype)
    if model_noise is None:
        model_noise = th.randn(batch, n_draws, world_model.latent_dim, dtype=actions.dtype, device=actions.device)
    smoothing = options.smoothing_noise(batch * n_draws, actions)
    xi = options.critic_noise(critic_target, batch * n_draws, options.per_draw, actions.dtype)
    return model_noise, smoothing, xi


def sobolev_td_targets(
    world_model: th.nn.Module,
    actor_target: th.nn.Module,
    critic_target: th.nn.Module,
    observation_space: spaces.Space,
    obs: PyTorchObs,
    actions: th.Tensor,
    dones: th.Tensor,
    gamma: float | th.Tensor,
    options: TargetOptions,
    directions: th.Tensor | None = None,
    real_outcome: tuple[PyTorchObs, th.Tensor] | None = None,
) -> tuple[th.Tensor, th.Tensor]:
    """
    Sobolev TD target samples and their gradient part, through the world model (no graph kept).

    :param obs: observations ``(B, ...)``; ``actions``: ``(B, A)``; ``dones``: ``(B, 1)``
    :param gamma: the discount, or one per row ``(B, 1)`` (SB3's n-step buffer: ``gamma ** steps`` of each
        transition, whose world-model sample is then the n-step outcome ``(s_{t+n}, R_n)``)
    :param options: sample counts, noise and ``sobolev_inputs`` (:class:`TargetOptions`)
    :param directions: ``(B, k, A)`` (``"state_action"``: ``(B, k, S + A)``, state part first), per batch row: return
        the directional derivatives ``G_j = u_j . dy/dx`` along each row's ``k`` directions, by ``k`` forward
        tangents through world model, target actor and target critic, instead of the full gradient
    :param real_outcome: the batch's real next observations and rewards ``(B, 1)``: the hybrid target. Its values
        are the return-only target's on the real ``(s', r)`` (same smoothing and critic draws); its gradient part
        is the model's chain rule evaluated at the real ``s'`` (target actor and critics there), with the model's
        Jacobian at the noise that explains the real transition (:meth:`WorldModel.posterior_noise`, else prior
        draws)
    :return: ``y`` ``(B, n_critics, n_samples)`` and ``G`` ``(B, n_critics, n_samples, A)`` (``"state_action"``:
        ``(B, n_critics, n_samples, S + A)``, state part first; with ``directions``: ``(B, n_critics, n_samples, k)``)
    """
    batch = actions.shape[0]
    flat_obs = flatten_obs(observation_space, obs, actions.dtype)
    real = None
    if real_outcome is not None:
        real = (flatten_obs(observation_space, real_outcome[0], actions.dtype), real_outcome[1].reshape(-1))
    # Every random draw happens here, outside the differentiated function.
    draws = target_draws(world_model, critic_target, flat_obs, actions, options, real)
    discount = discount_not_done(gamma, dones, actions.dtype)  # (B, 1, 1)
    networks = (world_model, actor_target, critic_target)
    extras = (options.reward_fn, real)
    hold_latent = options.hold_latent and real is not None  # a prior draw's derivative includes the prior's

    def target_fn(state: th.Tensor, act: th.Tensor) -> th.Tensor:
        return one_step_targets(*networks, observation_space, state, act, discount, *draws, *extras, hold_latent=hold_latent)

    actions = actions.detach()
    with th.no_grad():
        if options.sobolev_inputs == "state_action" and directions is None:
            parts = _full_sobolev_parts(
                *networks, observation_space, flat_obs, actions, *draws, real, hold_latent, options.reward_fn
            )
        else:
            tangents = _input_tangents(flat_obs, actions, options.sobolev_inputs, directions)
            try:
                parts = target_with_tangents(*networks, flat_obs, actions, *tangents, *draws, *extras, hold_latent=hold_latent)
            except NotImplementedError:  # networks the hand-written tangents do not cover (Dict observations, other layers)
                return _vmap_targets(target_fn, flat_obs, actions, options.sobolev_inputs, directions)
    r, r_grad, z, grads = parts
    n_critics = critic_target.n_critics
    y = _rewards_in_sample_order(r, n_critics, options.per_draw) + discount * _critic_in_sample_order(z, batch)
    grads = _critic_in_sample_order(grads, batch)
    return y, _rewards_in_sample_order(r_grad, n_critics, options.per_draw) + discount.unsqueeze(-1) * grads


def _vmap_targets(
    target_fn: Callable[[th.Tensor, th.Tensor], th.Tensor],
    flat_obs: th.Tensor,
    actions: th.Tensor,
    sobolev_inputs: str,
    directions: th.Tensor | None,
) -> tuple[th.Tensor, th.Tensor]:
    """The target ``target_fn(s, a)`` and its gradient part by ``vmap(jvp)``, in ``a`` or in the flat ``(s, a)``."""
    if sobolev_inputs == "action":
        return per_row_jacobian(lambda act: target_fn(flat_obs, act), actions, directions)
    obs_dim = flat_obs.shape[-1]
    inputs = th.cat([flat_obs, actions], dim=-1)
    return per_row_jacobian(lambda x: target_fn(x[:, :obs_dim], x[:, obs_dim:]), inputs, directions)


def _input_tangents(
    flat_obs: th.Tensor, actions: th.Tensor, sobolev_inputs: str, directions: th.Tensor | None
) -> tuple[th.Tensor | None, th.Tensor]:
    """
    The per-row tangents ``(B, k, S)`` (or None) and ``(B, k, A)`` of the target: the given directions split into
    their state and action parts, or the identity over the action for the full action gradient.
    """
    if directions is None:
        if sobolev_inputs != "action":
            raise ValueError("The full state_action gradient is taken by the chain rule, not by tangents.")
        eye = th.eye(actions.shape[-1], dtype=actions.dtype, device=actions.device)
        return None, eye.expand(actions.shape[0], -1, -1)
    directions = directions.to(actions.dtype)
    if sobolev_inputs == "action":
        return None, directions
    obs_dim = flat_obs.shape[-1]
    return directions[..., :obs_dim], directions[..., obs_dim:]


def _critic_in_sample_order(x: th.Tensor, batch: int) -> th.Tensor:
    """Target-critic values ``(B * M, K, P, ...)`` as ``(B, K, M * P, ...)``: per critic, model draw after draw."""
    _, n_critics, per_draw, *rest = x.shape
    x = x.reshape(batch, -1, n_critics, per_draw, *rest).transpose(1, 2)
    return x.reshape(batch, n_critics, -1, *rest)


def _rewards_in_sample_order(r: th.Tensor, n_critics: int, per_draw: int) -> th.Tensor:
    """Per-draw model values ``(B, M, ...)`` repeated for each critic and critic draw: ``(B, K, M * P, ...)``."""
    batch, n_draws, *rest = r.shape
    r = r.unsqueeze(1).unsqueeze(3).expand(batch, n_critics, n_draws, per_draw, *rest)
    return r.reshape(batch, n_critics, n_draws * per_draw, *rest)


def per_row_jacobian_reverse(fn: Callable[[th.Tensor], th.Tensor], inputs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """
    :func:`per_row_jacobian` in reverse mode, for a ``fn`` with fewer outputs than inputs per row.

    :param fn: maps ``(B, D)`` to ``(B, O)``, row ``b`` depending on ``inputs[b]`` only
    :param inputs: ``(B, D)``
    :return: value ``(B, O)`` and Jacobian ``(B, O, D)``
    """
    value, vjp_fn = vjp(fn, inputs)
    basis = th.eye(value.shape[-1], dtype=value.dtype, device=value.device).unsqueeze(1).expand(-1, value.shape[0], -1)
    (jac,) = vmap(vjp_fn)(basis)  # (O, B, D)
    return value, jac.transpose(0, 1)


def _full_sobolev_parts(
    world_model: th.nn.Module,
    actor_target: th.nn.Module,
    critic_target: th.nn.Module,
    observation_space: spaces.Space,
    flat_obs: th.Tensor,
    actions: th.Tensor,
    model_noise: th.Tensor,
    smoothing: th.Tensor,
    xi: th.Tensor,
    real_outcome: tuple[th.Tensor, th.Tensor] | None = None,
    hold_latent: bool = False,
    reward_fn: Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor] | None = None,
) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """
    The pieces of the full Sobolev target, by the chain rule instead of ``|S| + |A|`` tangents through everything.

    ``dy/dx = dr/dx + gamma (1 - done) [dZ'/ds' + dZ'/da' . da'/ds'] ds'/dx`` with ``x = (s, a)``: the world
    model's Jacobian in forward mode (``|S| + |A|`` tangents through the world model only), the target actor's in
    reverse mode (``|A|`` cotangents), and the target critic's gradients in ``(s', a')`` from its own Jacobian
    machinery (reverse mode through the factorized critic's ``psi`` when ``N < |S| + |A|``, autograd for concat);
    then small batched matrix products. Needs flat Box observations (``s'`` is the critic's input as it is).

    :return: model rewards ``(B, M)`` and their gradient in ``x`` ``(B, M, S + A)``; target critic samples
        ``(B * M, K, per_draw)`` and their gradient in ``x`` ``(B * M, K, per_draw, S + A)``
    """
    batch, obs_dim = flat_obs.shape
    n_draws = model_noise.shape[1]

    def model_fn(inputs: th.Tensor) -> th.Tensor:
        next_obs, rewards = world_model.sample(
            inputs[:, :obs_dim], inputs[:, obs_dim:], n_draws, noise=model_noise, hold_latent=hold_latent
        )
        return th.cat([next_obs, rewards.unsqueeze(-1)], dim=-1)  # (B, M, S + 1)

    eye = th.eye(obs_dim + actions.shape[-1], dtype=actions.dtype, device=actions.device).expand(batch, -1, -1)
    try:
        next_obs, next_jac, rewards, rewards_jac = world_model_with_tangents(
            world_model, flat_obs, actions, eye[..., :obs_dim], eye[..., obs_dim:], model_noise, hold_latent
        )  # (B, M, S), (B, M, S, S + A), (B, M), (B, M, S + A)
    except NotImplementedError:  # a world model the hand-written tangents do not cover
        out, jac = per_row_jacobian(model_fn, th.cat([flat_obs, actions], dim=-1))  # (B, M, S + 1), (B, M, S + 1, S + A)
        next_obs, next_jac, rewards, rewards_jac = (
            out[..., :obs_dim],
            jac[..., :obs_dim, :],
            out[..., obs_dim],
            jac[..., obs_dim, :],
        )
    if reward_fn is not None:  # r(s, a, s') in place of the model's: dr/dx = (dr/ds, dr/da) + dr/ds' ds'/dx
        rewards, rewards_jac = _reward_fn_jacobian(reward_fn, flat_obs, actions, next_obs, next_jac)
    if real_outcome is not None:  # the hybrid target: real values, the model's Jacobian
        next_obs, rewards = on_real_outcome(next_obs, rewards, real_outcome)
    next_flat = next_obs.reshape(batch * n_draws, obs_dim)
    next_jac = next_jac.reshape(batch * n_draws, obs_dim, -1)  # ds'/dx
    policy, policy_jac = per_row_jacobian_reverse(
        lambda s: actor_target(unflatten_obs(observation_space, s)), next_flat
    )  # (B * M, A), (B * M, A, S)
    pre_clip = policy + smoothing
    next_actions = pre_clip.clamp(-1.0, 1.0)
    with th.enable_grad():  # the concat critic's input gradients use autograd
        z, dz_ds, dz_da = critic_target.forward_with_state_action_grad(
            unflatten_obs(observation_space, next_flat), next_actions, xi, create_graph=False
        )
    # Where the clip is active the next action does not move with s'.
    dz_da = dz_da * ((pre_clip > -1.0) & (pre_clip < 1.0)).to(dz_da.dtype)[:, None, None]
    dz_dnext = dz_ds + dz_da @ policy_jac.unsqueeze(1)  # (B * M, K, per_draw, S)
    return rewards, rewards_jac, z.detach(), (dz_dnext @ next_jac.unsqueeze(1)).detach()


def _reward_fn_jacobian(
    reward_fn: Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor],
    flat_obs: th.Tensor,
    actions: th.Tensor,
    next_obs: th.Tensor,
    next_jac: th.Tensor,
) -> tuple[th.Tensor, th.Tensor]:
    """
    ``r = reward_fn(s, a, s')`` ``(B, M)`` at each draw's ``s'`` ``(B, M, S)`` and its total derivative in
    ``x = (s, a)`` ``(B, M, S + A)``, with ``ds'/dx`` ``next_jac`` ``(B, M, S, S + A)``: one backward of the sum, since
    each draw's reward depends on its own inputs only.
    """
    shape = next_obs.shape[:-1]
    with th.enable_grad():
        obs = flat_obs.detach().unsqueeze(1).expand(*shape, -1).clone().requires_grad_(True)
        act = actions.detach().unsqueeze(1).expand(*shape, -1).clone().requires_grad_(True)
        nxt = next_obs.detach().clone().requires_grad_(True)
        rewards = reward_fn(obs, act, nxt).expand(shape)
        d_obs, d_act, d_next = th.autograd.grad(rewards.sum(), (obs, act, nxt), allow_unused=True, materialize_grads=True)
    jac = th.cat([d_obs, d_act], dim=-1) + (d_next.unsqueeze(-2) @ next_jac).squeeze(-2)
    return rewards.detach(), jac.detach()


def return_td_targets(
    actor_target: th.nn.Module,
    critic_target: th.nn.Module,
    next_obs: PyTorchObs,
    rewards: th.Tensor,
    dones: th.Tensor,
    gamma: float | th.Tensor,
    options: TargetOptions,
) -> th.Tensor:
    """
    Return-only target samples from real transitions (the return-only distributional baseline).

    :param options: ``n_samples``, the smoothing noise and ``deterministic_critic`` are used (:class:`TargetOptions`)
    :return: ``y`` ``(B, n_critics, options.n_samples)``
    """
    with th.no_grad():
        next_actions = actor_target(next_obs)
        next_actions = (next_actions + options.smoothing_noise(next_actions.shape[0], next_actions)).clamp(-1.0, 1.0)
        xi = options.critic_noise(critic_target, next_actions.shape[0], options.n_samples, next_actions.dtype)
        z = critic_target(next_obs, next_actions, xi)
        return rewards.reshape(-1, 1, 1) + discount_not_done(gamma, dones, z.dtype) * z


def truncate_pooled(y: th.Tensor, grads: th.Tensor | None, n_drop: int) -> th.Tensor:
    """
    Pool the target samples of all critics, sort by return and drop the ``n_drop`` largest (TQC-style).

    :param y: ``(B, K, N)``; ``grads``: ``(B, K, N, A)`` or None
    :return: joint samples ``(B, K * N - n_drop, 1 + A)`` (``(B, K * N - n_drop, 1)`` without gradients)
    """
    batch = y.shape[0]
    pooled = y.reshape(batch, -1, 1)
    if grads is not None:
        pooled = th.cat([pooled, grads.reshape(batch, pooled.shape[1], -1)], dim=-1)
    n_keep = pooled.shape[1] - n_drop
    order = th.argsort(pooled[..., 0], dim=1)[:, :n_keep]
    return th.gather(pooled, 1, order.unsqueeze(-1).expand(-1, -1, pooled.shape[-1]))
