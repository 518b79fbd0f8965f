"""Forward-mode tangent propagation by hand through the package's MLPs, for the Sobolev TD target.

This module owns :func:`target_with_tangents`: the pieces of the Sobolev target branch ``(s, a) -> (s', r) ->
a' = clip(pi'(s') + noise) -> Z'(s', a', xi)`` (world model, target actor, target critics) and their directional
derivatives along ``k`` given tangents per batch row, computed by carrying the tangents through every layer by
hand instead of with ``torch.func.vmap(jvp)``: a linear layer maps the primal ``x`` to ``W x + b`` and the tangents
``t`` ``(k, ...)`` to ``W t`` (all ``k`` in one matrix product), an activation maps them to ``f(x)`` and
``f'(x) t``. Inputs whose tangent is zero (the observation in the action-only target, the world model's noise)
carry None and cost nothing. Two or more factorized target critics with per-row noise run as one stacked ensemble.

Supported: the cVAE and RealNVP world models, SB3's TD3 actor and the factorized or concat generative critic, with
a Box observation space and the FlattenExtractor (actor and critic read the flat observation as it is), and the
activations of :data:`sb3_dsdpg.policies.JACOBIAN_ACTIVATIONS`. Anything else raises NotImplementedError, so that
a caller can fall back to ``vmap(jvp)``.
"""

import math
from collections.abc import Callable

import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.td3.policies import Actor
from torch import nn
from torch.func import jvp, vmap
from torch.nn import functional as F

from sb3_dsdpg.policies import (
    JACOBIAN_ACTIVATIONS,
    FactorizedSampleNet,
    GenerativeCritic,
    StackedFactorizedNets,
    _activation_and_derivative,
)
from sb3_dsdpg.world_models import CVAEWorldModel, RealNVPWorldModel, RewardModel, WorldModel

_ACTIVATION_TYPES = tuple(getattr(nn, name) for name in JACOBIAN_ACTIVATIONS)
_SAMPLERS = {CVAEWorldModel: CVAEWorldModel._sample_normalized, RealNVPWorldModel: RealNVPWorldModel._sample_normalized}

# A primal and its tangents (k, *primal.shape), or None where the tangents are zero.
Dual = tuple[th.Tensor, th.Tensor | None]


def check_tangent_support(
    world_model: nn.Module, actor_target: nn.Module | None = None, critic_target: nn.Module | None = None
) -> None:
    """
    Raise NotImplementedError unless :func:`target_with_tangents` handles these networks exactly (without actor
    and critic: unless :func:`world_model_with_tangents` handles the world model).
    """
    kind = next((cls for cls in _SAMPLERS if isinstance(world_model, cls)), None)
    if (
        kind is None
        or type(world_model).sample is not WorldModel.sample
        or type(world_model)._sample_normalized is not _SAMPLERS[kind]
    ):
        raise NotImplementedError(f"No hand-written tangents for the world model {type(world_model).__name__}.")
    if isinstance(world_model, CVAEWorldModel):
        modules = [*world_model.prior, *world_model.decoder]
    else:
        modules = [module for net in [*world_model.couplings, world_model.affine] for module in net]
    if actor_target is not None or critic_target is not None:
        if not isinstance(actor_target, Actor) or type(actor_target).forward is not Actor.forward:
            raise NotImplementedError(f"No hand-written tangents for the actor {type(actor_target).__name__}.")
        if not isinstance(critic_target, GenerativeCritic) or type(critic_target).forward is not GenerativeCritic.forward:
            raise NotImplementedError(f"No hand-written tangents for the critic {type(critic_target).__name__}.")
        for net in (actor_target, critic_target):
            if not isinstance(net.observation_space, spaces.Box) or not isinstance(net.features_extractor, FlattenExtractor):
                raise NotImplementedError(
                    "Hand-written tangents need a Box observation space and the FlattenExtractor, got "
                    f"{net.observation_space} and {type(net.features_extractor).__name__}."
                )
        modules += [*actor_target.mu]
        for critic in critic_target.nets:
            if not isinstance(critic, FactorizedSampleNet) and len(critic) < 3:
                raise NotImplementedError("Hand-written tangents need a hidden layer in the concat critic.")
            modules += [critic.activation, *critic.phi] if isinstance(critic, FactorizedSampleNet) else [*critic]
    for module in modules:
        if type(module) is not nn.Linear and type(module) not in _ACTIVATION_TYPES:
            raise NotImplementedError(f"No hand-written tangents for the layer {type(module).__name__}.")


def world_model_with_tangents(
    world_model: WorldModel,
    flat_obs: th.Tensor,
    actions: th.Tensor,
    tangent_obs: th.Tensor | None,
    tangent_act: th.Tensor | None,
    noise: th.Tensor,
    hold_latent: bool = False,
) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """
    ``world_model.sample(flat_obs, actions, noise=noise, hold_latent=hold_latent)`` and its derivatives along per-row
    tangents (no graph).

    With the identity over ``(s, a)``: the world model's Jacobian, as the chain rule of the full Sobolev target uses.

    :param tangent_obs: ``(B, k, S)`` or None (zero); ``tangent_act``: ``(B, k, A)`` or None (zero), not both None
    :param noise: standard normal draws ``(B, M, latent_dim)``
    :return: next observations ``(B, M, S)`` and their derivatives ``(B, M, S, k)``, rewards ``(B, M)`` and theirs
        ``(B, M, k)``
    :raises NotImplementedError: for world models outside the supported set
    """
    check_tangent_support(world_model)
    if tangent_obs is None and tangent_act is None:
        raise ValueError("Give tangents in the observation, in the action or in both.")
    with th.no_grad():
        (next_obs, d_next_obs), (rewards, d_rewards) = _world_model_sample(
            world_model, (flat_obs, _tangent_major(tangent_obs)), (actions, _tangent_major(tangent_act)), noise, hold_latent
        )
    return next_obs, d_next_obs.movedim(0, -1), rewards, d_rewards.movedim(0, -1)  # type: ignore[union-attr]


def target_with_tangents(
    world_model: WorldModel,
    actor_target: Actor,
    critic_target: GenerativeCritic,
    flat_obs: th.Tensor,
    actions: th.Tensor,
    tangent_obs: th.Tensor | None,
    tangent_act: th.Tensor,
    model_noise: th.Tensor,
    smoothing: th.Tensor,
    xi: th.Tensor,
    reward_fn: Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor] | None = None,
    real_outcome: tuple[th.Tensor, th.Tensor] | None = None,
    hold_latent: bool = False,
) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """
    Model rewards and target-critic samples of the Sobolev target, and their derivatives along per-row tangents.

    The same values and directional derivatives as ``torch.func.jvp`` of the target function of
    :func:`sb3_dsdpg.targets.sobolev_td_targets` (``world_model.sample`` with ``noise=model_noise``, then
    ``critic_target(s', clip(actor_target(s') + smoothing, -1, 1), xi)``), including the clips' zero derivative
    where they are active (autograd's convention: the derivative passes where ``low <= x <= high``). No graph is
    kept. SB3's float cast of Box observations is not applied (a no-op in float32).

    :param flat_obs: flat observations ``(B, S)``; ``actions``: ``(B, A)``
    :param tangent_obs: tangents in the observation ``(B, k, S)``, or None (tangents in the action only)
    :param tangent_act: tangents in the action ``(B, k, A)``; row ``b``'s ``k`` directions are its own
    :param model_noise: the world model's standard normal draws ``(B, M, latent_dim)``
    :param smoothing: target-policy smoothing noise ``(B * M, A)``, already clipped
    :param xi: critic noise ``(B * M or 1, n_critics, P, noise_dim)``
    :param reward_fn: a reward ``r(s, a, s')`` in place of the model's: a learned
        :class:`~sb3_dsdpg.world_models.RewardModel` (its tangents carried through its MLP by hand), or any other
        callable (its tangents by ``torch.func.jvp``)
    :param real_outcome: real next flat observations ``(B, S)`` and rewards ``(B,)`` that replace the model's values
        while its tangents are kept (the hybrid target's straight-through pair)
    :param hold_latent: the world model's derivative at a fixed latent (:meth:`WorldModel.sample`)
    :return: rewards ``(B, M)`` and their derivatives ``(B, M, k)``; critic samples ``(B * M, n_critics, P)`` and
        their derivatives ``(B * M, n_critics, P, k)`` (tangent last, as :func:`sb3_dsdpg.targets.per_row_jacobian`)
    :raises NotImplementedError: for networks outside the supported set (see :func:`check_tangent_support`)
    """
    check_tangent_support(world_model, actor_target, critic_target)
    obs, act = (flat_obs, _tangent_major(tangent_obs)), (actions, _tangent_major(tangent_act))
    with th.no_grad():
        (next_obs, d_next_obs), (rewards, d_rewards) = _world_model_sample(world_model, obs, act, model_noise, hold_latent)
        if reward_fn is not None:  # a learned RewardModel by hand through its MLP, any other reward by vmap(jvp)
            by_hand = isinstance(reward_fn, RewardModel) and _is_mlp(reward_fn.net)
            rewards, d_rewards = (_reward_model if by_hand else _known_reward)(reward_fn, obs, act, (next_obs, d_next_obs))
        if real_outcome is not None:
            next_obs, rewards = on_real_outcome(next_obs, rewards, real_outcome)
        next_obs = next_obs.reshape(-1, next_obs.shape[-1])  # (B * M, S)
        d_next_obs = d_next_obs.reshape(d_next_obs.shape[0], *next_obs.shape)  # type: ignore[union-attr]
        next_actions, d_next_actions = _clamp(*_mlp(actor_target.mu, next_obs, d_next_obs), smoothing, -1.0, 1.0)
        stacked = critic_target.stacked_nets(xi)
        if stacked is not None:
            z, d_z = _stacked_critics(stacked, (next_obs, d_next_obs), (next_actions, d_next_actions), xi)
        else:
            duals = [
                _critic(net, (next_obs, d_next_obs), (next_actions, d_next_actions), xi[:, i])
                for i, net in enumerate(critic_target.nets)
            ]
            z = th.stack([value for value, _ in duals], dim=1)  # (B * M, K, P)
            d_z = th.stack([tangent for _, tangent in duals], dim=-1).permute(1, 3, 2, 0)  # type: ignore[misc]
    return rewards, d_rewards.movedim(0, -1), z, d_z  # type: ignore[union-attr]


def on_real_outcome(
    next_obs: th.Tensor, rewards: th.Tensor, real_outcome: tuple[th.Tensor, th.Tensor]
) -> tuple[th.Tensor, th.Tensor]:
    """The model's draws ``(B, M, S)`` and ``(B, M)`` replaced by the real ``(B, S)`` and ``(B,)`` (tangents are kept)."""
    return real_outcome[0].unsqueeze(1).expand_as(next_obs), real_outcome[1].reshape(-1, 1).expand_as(rewards)


def _known_reward(
    reward_fn: Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor], obs: Dual, actions: Dual, next_obs: Dual
) -> Dual:
    """``reward_fn(s, a, s')`` ``(B, M)`` and its tangents ``(k, B, M)`` by ``vmap(jvp)`` (a cheap elementwise function)."""
    primals = (obs[0].unsqueeze(1), actions[0].unsqueeze(1), next_obs[0])
    n_tangents = next(t.shape[0] for t in (obs[1], actions[1], next_obs[1]) if t is not None)
    tangents = [
        th.zeros(n_tangents, *p.shape, dtype=p.dtype, device=p.device) if t is None else t.unsqueeze(2) if t.dim() == 3 else t
        for p, t in zip(primals, (obs[1], actions[1], next_obs[1]), strict=True)
    ]

    def directional(t_obs: th.Tensor, t_act: th.Tensor, t_next: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return jvp(reward_fn, primals, (t_obs, t_act, t_next))

    value, d_value = vmap(directional, out_dims=(None, 0))(*tangents)
    shape = next_obs[0].shape[:-1]  # a reward of (s, a) alone broadcasts over the draws
    return value.expand(shape), d_value.expand(n_tangents, *shape)


def _is_mlp(net: nn.Sequential) -> bool:
    """Whether ``net`` holds only linear layers and supported activations (what :func:`_mlp` carries tangents through)."""
    return all(type(module) is nn.Linear or type(module) in _ACTIVATION_TYPES for module in net)


def _reward_model(reward_model: RewardModel, obs: Dual, actions: Dual, next_obs: Dual) -> Dual:
    """
    The learned reward ``r(s, a, s')`` ``(B, M)`` at each draw's ``s'`` ``(B, M, S)`` and its tangents ``(k, B, M)``,
    through its MLP by hand (the normalisers scale the tangents by ``1 / std``, the output's by ``std``).
    """
    normalizer = reward_model.obs_normalizer
    std = normalizer.std

    def normalized(dual: Dual) -> Dual:
        return normalizer.normalize(dual[0]), None if dual[1] is None else dual[1] / std

    # (s, a) per row, broadcast over the draws: (B, 1, .), tangents (k, B, 1, .).
    parts = [
        (primal.unsqueeze(1), None if tangent is None else tangent.unsqueeze(2))
        for primal, tangent in (normalized(obs), actions)
    ]
    net = reward_model.net
    out, d_out = _mlp(net, *_split_linear(net[0], [*parts, normalized(next_obs)]), start=1)
    out_std = reward_model.reward_normalizer.std
    value = reward_model.reward_normalizer.denormalize(out).squeeze(-1)
    return value, None if d_out is None else (d_out * out_std).squeeze(-1)


def _tangent_major(tangents: th.Tensor | None) -> th.Tensor | None:
    """Per-row tangents ``(B, k, D)`` as ``(k, B, D)``, the layout the layers carry."""
    return None if tangents is None else tangents.transpose(0, 1)


# ----------------------------------------------------------------------------------------------------------------------
# Layers on (primal, tangents) pairs
# ----------------------------------------------------------------------------------------------------------------------


def _split_linear(layer: nn.Linear, parts: list[Dual]) -> Dual:
    """
    The layer on the concatenation of ``parts`` (broadcastable but for the last dim) without building it: a sum
    of column blocks, the zero tangents skipped. The parts may cover the first input columns only, the rest being
    the caller's; the bias is added here.
    """
    return _split_affine(layer.weight, layer.bias, parts)


def _split_affine(weights: th.Tensor, bias: th.Tensor, parts: list[Dual]) -> Dual:
    """:func:`_split_linear` with the weights ``(out, in)`` and bias ``(out,)`` given."""
    value, tangent, start = None, None, 0
    for primal, d_primal in parts:
        weight = weights[:, start : start + primal.shape[-1]]
        start += primal.shape[-1]
        value = F.linear(primal, weight, bias) if value is None else _accumulate(value, F.linear(primal, weight))
        if d_primal is not None:
            term = d_primal @ weight.T
            tangent = term if tangent is None else _accumulate(tangent, term)
    assert value is not None and start <= weights.shape[-1]
    return value, tangent


def _accumulate(total: th.Tensor, term: th.Tensor) -> th.Tensor:
    """``total + term`` for a fresh ``total``: in place when the shapes agree."""
    return total.add_(term) if total.shape == term.shape else total + term


def _times(tangent: th.Tensor, factor: th.Tensor) -> th.Tensor:
    """``tangent * factor`` for fresh tangents ``(k, ...)`` of a primal like ``factor``: in place when they agree."""
    return tangent.mul_(factor) if tangent.shape[1:] == factor.shape else tangent * factor


def _mlp(net: nn.Sequential, primal: th.Tensor, tangent: th.Tensor | None, start: int = 0) -> Dual:
    """A Sequential of linear layers and activations from its layer ``start`` on: ``W x + b, W t``; ``f(x), f'(x) t``."""
    for module in list(net)[start:]:
        if isinstance(module, nn.Linear):
            primal = F.linear(primal, module.weight, module.bias)
            tangent = None if tangent is None else tangent @ module.weight.T
        else:
            primal, deriv = _activation_and_derivative(module, primal)
            tangent = None if tangent is None else _times(tangent, deriv)
    return primal, tangent


def _clamp(primal: th.Tensor, tangent: th.Tensor | None, shift: th.Tensor | float, low: float, high: float) -> Dual:
    """``clamp(x + shift)``, its tangents zero where the clamp is active (autograd's convention)."""
    primal = primal + shift
    if tangent is not None:
        tangent = tangent * ((primal >= low) & (primal <= high)).to(primal.dtype)
    return primal.clamp(low, high), tangent


# ----------------------------------------------------------------------------------------------------------------------
# World models
# ----------------------------------------------------------------------------------------------------------------------


def _world_model_sample(
    world_model: WorldModel, obs: Dual, actions: Dual, noise: th.Tensor, hold_latent: bool = False
) -> tuple[Dual, Dual]:
    """``world_model.sample``: next observations ``(B, M, S)`` and rewards ``(B, M)``, tangents ``(k, ...)`` first."""
    obs_dim = world_model.obs_dim
    normalizer = world_model.obs_normalizer
    norm_obs = (normalizer.normalize(obs[0]), None if obs[1] is None else obs[1] / normalizer.std)
    if isinstance(world_model, CVAEWorldModel):
        out, d_out = _cvae_sample_normalized(world_model, [norm_obs, actions], noise, hold_latent)
    else:
        out, d_out = _realnvp_sample_normalized(world_model, [norm_obs, actions], noise)
    # Denormalise: the tangents scale with the standard deviation only.
    std = world_model.target_normalizer.std
    out = world_model.target_normalizer.denormalize(out)
    d_out = d_out.mul_(std)  # type: ignore[union-attr]
    next_obs, d_next_obs = obs[0].unsqueeze(1) + out[..., :obs_dim], d_out[..., :obs_dim]
    if obs[1] is not None:
        d_next_obs = obs[1].unsqueeze(2) + d_next_obs
    return (next_obs, d_next_obs), (out[..., obs_dim], d_out[..., obs_dim])


def _cvae_sample_normalized(
    world_model: CVAEWorldModel, cond: list[Dual], noise: th.Tensor, hold_latent: bool = False
) -> Dual:
    """
    The decoder mean at ``eps = mu_p + sigma_p * noise`` ``(B, M, S + 1)``, from the condition's parts;
    ``hold_latent``: ``eps`` carries no tangent (the prior is held where it is).
    """
    prior = world_model.prior
    out, d_out = _mlp(prior, *_split_linear(prior[0], cond), start=1)
    mean, log_std = out.chunk(2, dim=-1)
    d_mean, d_log_std = d_out.chunk(2, dim=-1)  # type: ignore[union-attr]
    std, d_log_std = _clamp(log_std, d_log_std, 0.0, -7.0, 3.0)
    std = std.exp()
    eps = mean.unsqueeze(1) + std.unsqueeze(1) * noise  # (B, M, L)
    d_eps = None if hold_latent else d_mean.unsqueeze(2) + (d_log_std * std).unsqueeze(2) * noise  # type: ignore[operator]
    decoder = world_model.decoder
    parts = [(primal.unsqueeze(1), None if tangent is None else tangent.unsqueeze(2)) for primal, tangent in cond]
    return _mlp(decoder, *_split_linear(decoder[0], [*parts, (eps, d_eps)]), start=1)


def _realnvp_sample_normalized(world_model: RealNVPWorldModel, cond: list[Dual], noise: th.Tensor) -> Dual:
    """The flow's forward map of ``noise`` ``(B, M, S + 1)``, from the condition's parts (broadcast over the draws)."""
    cond = [(primal.unsqueeze(1), None if tangent is None else tangent.unsqueeze(2)) for primal, tangent in cond]
    y, d_y = noise, None
    bound = world_model.coupling_scale_bound
    for i, coupling in enumerate(world_model.couplings):
        mask = world_model.masks[i]
        masked = (y * mask, None if d_y is None else d_y * mask)
        out, d_out = _mlp(coupling, *_split_linear(coupling[0], [masked, *cond]), start=1)
        raw_scale, shift = (out * world_model.output_masks[i]).chunk(2, dim=-1)
        d_raw_scale, d_shift = (d_out * world_model.output_masks[i]).chunk(2, dim=-1)  # type: ignore[operator]
        tanh = th.tanh(raw_scale)
        y, d_y = _scale_shift(y, d_y, bound * tanh, d_raw_scale * (bound * (1.0 - tanh * tanh)), shift, d_shift)
    affine = world_model.affine
    out, d_out = _mlp(affine, *_split_linear(affine[0], cond), start=1)
    loc, raw = out.chunk(2, dim=-1)
    d_loc, d_raw = d_out.chunk(2, dim=-1)  # type: ignore[union-attr]
    lo, hi = math.log(world_model.min_std), math.log(world_model.max_std)
    sig = th.sigmoid(raw)
    return _scale_shift(y, d_y, lo + (hi - lo) * sig, d_raw * ((hi - lo) * sig * (1.0 - sig)), loc, d_loc)


def _scale_shift(
    y: th.Tensor, d_y: th.Tensor | None, log_scale: th.Tensor, d_log_scale: th.Tensor, shift: th.Tensor, d_shift: th.Tensor
) -> Dual:
    """``shift + y * exp(log_scale)`` and its tangents ``d_shift + exp(log_scale) (d_y + y d_log_scale)``."""
    scale = log_scale.exp()
    inner = y * d_log_scale if d_y is None else th.addcmul(d_y, y, d_log_scale)
    return th.addcmul(shift, y, scale), th.addcmul(d_shift, scale, inner)


# ----------------------------------------------------------------------------------------------------------------------
# Critics
# ----------------------------------------------------------------------------------------------------------------------


def _stacked_critics(
    stacked: StackedFactorizedNets, features: Dual, actions: Dual, noise: th.Tensor
) -> tuple[th.Tensor, th.Tensor]:
    """
    Every factorized critic's :func:`_critic` in one pass over the stacked weights: samples ``(R, K, P)`` and their
    tangents ``(R, K, P, k)``; ``noise`` ``(R, K, P, d)``. Tangents are carried ``(K, k, R, H)``.
    """
    weight, bias = stacked.psi_layers[0]
    n_critics, width = weight.shape[:2]
    h, d_h = _split_affine(weight.reshape(n_critics * width, -1), bias.reshape(-1), [features, actions])
    assert d_h is not None
    rows, n_tangents = h.shape[0], d_h.shape[0]
    h = h.reshape(rows, n_critics, width).transpose(0, 1)  # (K, R, H)
    d_h = d_h.reshape(n_tangents, rows, n_critics, width).permute(2, 0, 1, 3)  # (K, k, R, H)
    for i, (weight, bias) in enumerate(stacked.psi_layers):
        if i > 0:
            h = th.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
            d_h = th.bmm(d_h.reshape(n_critics, -1, d_h.shape[-1]), weight.transpose(1, 2))
            d_h = d_h.reshape(n_critics, n_tangents, rows, weight.shape[1])
        h, deriv = _activation_and_derivative(stacked.activation, h)
        d_h = d_h.mul_(deriv.unsqueeze(1))  # fresh tangents: in place
    out = stacked.dot_coefficients(th.cat([h.unsqueeze(2), d_h.transpose(1, 2)], dim=2), noise)  # (K, R, P, 1 + k)
    out = out.transpose(0, 1)
    return out[..., 0] + stacked.head_bias.unsqueeze(-1), out[..., 1:]


def _critic(net: nn.Module, features: Dual, actions: Dual, noise: th.Tensor) -> Dual:
    """One critic's samples ``(R, P)`` and tangents ``(k, R, P)``; ``noise`` ``(R or 1, P, d)``."""
    if isinstance(net, FactorizedSampleNet):
        layers = net.psi_layers
        h, d_h = _split_linear(layers[0], [features, actions])
        for i, layer in enumerate(layers):
            if i > 0:
                h, d_h = F.linear(h, layer.weight, layer.bias), d_h @ layer.weight.T  # type: ignore[operator]
            h, deriv = _activation_and_derivative(net.activation, h)
            d_h = _times(d_h, deriv)  # type: ignore[arg-type]
        if noise.shape[0] == 1:
            coef = net.coefficients(noise)[0]  # (P, H): no tangent
            return th.addmm(net.head.bias, h, coef.T), d_h @ coef.T  # type: ignore[operator]
        out = net.dot_coefficients(th.cat([h.unsqueeze(1), d_h.transpose(0, 1)], dim=1), noise)  # type: ignore[union-attr]
        return out[..., 0] + net.head.bias, out[..., 1:].permute(2, 0, 1)  # (R, P), (k, R, P)
    # Concat: an MLP on [features, a, xi] per sample; the noise part of the first layer has no tangent.
    first = net[0]
    h, d_h = _split_linear(first, [features, actions])  # (R, H) with the bias, (k, R, H)
    noise_part = noise @ first.weight[:, first.in_features - noise.shape[-1] :].T  # (R or 1, P, H)
    h, deriv = _activation_and_derivative(net[1], h.unsqueeze(1) + noise_part)  # (R, P, H)
    value, tangent = _mlp(net, h, d_h.unsqueeze(2) * deriv, start=2)  # type: ignore[union-attr]
    return value.squeeze(-1), tangent.squeeze(-1)  # type: ignore[union-attr]
