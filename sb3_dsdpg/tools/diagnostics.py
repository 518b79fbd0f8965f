"""Gradient diagnostics: what the critic believes about returns and action gradients, next to references.

This module owns the diagnostics of a trained :class:`~sb3_dsdpg.DSDPG` model at chosen states ``s`` with the
policy's action ``a = pi(s)``:

- the critic's samples ``(z, dz/da)`` (all critics pooled), what the actor follows;
- for any env, one-step target samples ``y = r + gamma Z'(s', pi'(s') + smoothing, xi')`` with
  ``(s', r) = g(s, a, eps)`` drawn from the *learned* world model, and their action gradients by central finite
  differences with common random numbers (what the critic is trained towards, before truncation);
- for the point masses, whose dynamics are known, a Monte-Carlo reference: the distribution of the discounted
  return of the current (deterministic) policy and of its gradient in the first action, by central finite
  differences with common random numbers; over the hidden bonus and the motion noise on
  ``sb3_dsdpg/PointMassBonus-v0`` (:func:`point_mass_reference`), over the bonus the first step reveals and the
  motion noise on ``sb3_dsdpg/PointMassRevealedBonus-v0`` (:func:`revealed_bonus_reference`, for any policy callable, e.g.
  the scripted :func:`~sb3_dsdpg.envs.revealed_bonus.drive_to_bonus`); :func:`reference_samples` picks the one of
  an env;

the figure that draws them (:func:`plot_diagnostics`, matplotlib's Agg canvas, no pyplot state), the SB3
callback that logs it to tensorboard (:class:`GradientDiagnosticsCallback`, SB3's ``Figure`` logger type), and
the command ``python -m sb3_dsdpg.diagnostics --model PATH --env ID --out DIR`` that saves it as PNG (:func:`main`).
Needs the ``plots`` extra (matplotlib); the callback also needs ``tensorboard``.
"""

import argparse
import copy
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Figure

from sb3_dsdpg import targets
from sb3_dsdpg.dsdpg import DSDPG
from sb3_dsdpg.envs.point_mass import PointMassBonusEnv, point_mass_step
from sb3_dsdpg.envs.revealed_bonus import RevealedBonusPointMassEnv, revealed_bonus_step
from sb3_dsdpg.losses import mmd2
from sb3_dsdpg.targets import flatten_obs
from sb3_dsdpg.tools.extras import needs

with needs("plots", "sb3_dsdpg's gradient diagnostics"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

SOURCES = {
    "critic": ("critic Z(s, pi(s), xi)", "tab:blue"),
    "model": ("one-step targets through the world model", "tab:orange"),
    "reference": ("Monte-Carlo reference (true dynamics)", "tab:green"),
}


@dataclass
class StateDiagnostics:
    """Samples at one state: ``returns[name]`` ``(n,)`` and ``grads[name]`` ``(n, A)`` per source in :data:`SOURCES`."""

    state: np.ndarray
    action: np.ndarray
    returns: dict[str, np.ndarray] = field(default_factory=dict)
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    reward_scale: float = 1.0  # the critic's and the model's units in env reward units (the reference's)

    def distance_to_reference(self, name: str, part: str = "joint") -> float | None:
        """
        How far a source's joint samples ``(return, gradient)`` lie from the Monte-Carlo reference's, in env units:
        the unbiased MMD^2 (multiquadric kernel, ``h = 100``) after dividing the return by the reference's standard
        deviation and the gradient by the RMS of the reference's gradient standard deviations (0 for the same law,
        about 100 times the energy distance). ``part``: ``"joint"``, or the ``"return"`` or the ``"gradient"``
        coordinates alone. None without a reference.
        """
        if "reference" not in self.returns or name not in self.returns:
            return None

        def joint(source: str, scale: float) -> th.Tensor:
            values = np.concatenate([self.returns[source][:, None], self.grads[source]], axis=1) * scale
            return th.as_tensor(values, dtype=th.float64)

        reference = joint("reference", 1.0)
        std = reference.std(0)
        units = th.cat([std[:1], std[1:].pow(2).mean().sqrt().expand(std.shape[0] - 1)]).clamp_min(1e-8)
        own = joint(name, self.reward_scale)
        columns = {"joint": slice(None), "return": slice(0, 1), "gradient": slice(1, None)}[part]
        own, reference = (own / units)[:, columns], (reference / units)[:, columns]
        return float(mmd2(own[None], reference[None], unbiased=True)[0])

    def summary(self) -> dict[str, Any]:
        """Means and standard deviations of each source's returns and gradients, and distances to the reference; JSON."""
        out: dict[str, Any] = {"state": self.state.tolist(), "action": self.action.tolist()}
        for name in self.returns:
            out[name] = {
                "return_mean": float(self.returns[name].mean()),
                "return_std": float(self.returns[name].std()),
                "grad_mean": self.grads[name].mean(0).tolist(),
                "grad_std": self.grads[name].std(0).tolist(),
            }
            if name != "reference" and "reference" in self.returns:
                for part in ("joint", "return", "gradient"):
                    suffix = "" if part == "joint" else f"_{part}"
                    out[name][f"mmd2_to_reference{suffix}"] = self.distance_to_reference(name, part)
        return out


def _check_box(model: DSDPG) -> None:
    if not isinstance(model.observation_space, spaces.Box):
        raise ValueError(f"The gradient diagnostics need a Box observation space, got {model.observation_space}.")


def _as_tensor(model: DSDPG, x: np.ndarray | th.Tensor) -> th.Tensor:
    """``x`` on the model's device in the critic's dtype (float32, or float64 for finite-difference tests)."""
    return th.as_tensor(np.asarray(x), dtype=next(model.critic.parameters()).dtype, device=model.device)


def _fd_steps(action_dim: int, fd_eps: float, like: th.Tensor) -> th.Tensor:
    """Perturbations ``(2 A + 1, A)``: none, ``+eps e_j``, ``-eps e_j``."""
    eye = th.eye(action_dim, dtype=like.dtype, device=like.device) * fd_eps
    return th.cat([th.zeros_like(eye[:1]), eye, -eye])


@th.no_grad()
def critic_samples(model: DSDPG, states: np.ndarray, n_samples: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    The critic's joint samples at ``a = pi(s)``, all critics pooled.

    :param states: ``(B, *obs_shape)``
    :param n_samples: samples per critic
    :return: actions ``(B, A)``, returns ``(B, K * n)`` and action gradients ``(B, K * n, A)``
    """
    obs = _as_tensor(model, states)
    actions = model.actor(obs)
    z, grad = model.critic.action_gradient_samples(obs, actions, n_samples)
    batch = obs.shape[0]
    return actions.cpu().numpy(), z.reshape(batch, -1).cpu().numpy(), grad.reshape(batch, -1, actions.shape[1]).cpu().numpy()


def one_step_targets(
    model: DSDPG, flat_obs: th.Tensor, actions: th.Tensor, model_noise: th.Tensor, smoothing: th.Tensor, xi: th.Tensor
) -> th.Tensor:
    """
    ``y_k = r + gamma Z'_k(s', pi'(s') + smoothing, xi_k)`` with ``(s', r) = g(s, a, eps)`` for given draws, per row:
    the training target's :func:`sb3_dsdpg.targets.one_step_targets`, one model draw and one critic draw per row.

    :param flat_obs: ``(R, S)``; ``actions``: ``(R, A)``; ``model_noise``: ``(R, 1, latent_dim)``;
        ``smoothing``: ``(R, A)``; ``xi``: ``(R, K, 1, k)``
    :return: ``(R, K)``
    """
    if model.world_model is None:
        raise ValueError("One-step model targets need a world model (sobolev=True).")
    networks = (model.world_model, model.actor_target, model.critic_target, model.observation_space)
    y = targets.one_step_targets(*networks, flat_obs, actions, model.gamma, model_noise, smoothing, xi)
    return y[..., 0]  # one model draw and one critic draw per row


@th.no_grad()
def model_target_samples(
    model: DSDPG,
    states: np.ndarray,
    actions: np.ndarray,
    n_samples: int = 256,
    fd_eps: float = 3e-3,
    noise: tuple[th.Tensor, th.Tensor, th.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """
    One-step target samples through the learned world model and their action gradients by central finite differences.

    Each sample has its own world-model draw, target-policy smoothing and critic noise (per critic), shared by the
    ``2 |A| + 1`` evaluations of its finite difference (common random numbers); all go through the networks as one
    batch. Not truncated, no ``done`` (a transition from ``s`` is assumed to continue).

    :param states: ``(B, *obs_shape)``; ``actions``: ``(B, A)``
    :param n_samples: samples per critic
    :param fd_eps: finite-difference step in each action dimension
    :param noise: the draws of :func:`one_step_targets` for the ``B * n`` rows (state-major), drawn if None
    :return: returns ``(B, K * n)`` and action gradients ``(B, K * n, A)``
    """
    if model.world_model is None:
        raise ValueError("One-step model targets need a world model (sobolev=True).")
    obs, act = _as_tensor(model, states), _as_tensor(model, actions)
    batch, action_dim = act.shape
    rows, n_critics = batch * n_samples, model.critic_target.n_critics
    if noise is None:
        like = dict(dtype=act.dtype, device=act.device)
        noise = (
            th.randn(rows, 1, model.world_model.latent_dim, **like),  # type: ignore[arg-type]
            (th.randn(rows, action_dim, **like) * model.target_policy_noise).clamp(  # type: ignore[arg-type]
                -model.target_noise_clip, model.target_noise_clip
            ),
            th.randn(rows, n_critics, 1, model.critic_target.noise_dim, **like),  # type: ignore[arg-type]
        )
    steps = _fd_steps(action_dim, fd_eps, act)
    n_eval = steps.shape[0]

    def tile(x: th.Tensor) -> th.Tensor:  # rows ordered (perturbation, state, sample)
        return x.unsqueeze(0).expand(n_eval, *x.shape).reshape(-1, *x.shape[1:])

    flat = flatten_obs(model.observation_space, obs, act.dtype).repeat_interleave(n_samples, dim=0)
    rows_act = (act.repeat_interleave(n_samples, dim=0).unsqueeze(0) + steps.unsqueeze(1)).reshape(-1, action_dim)
    y = one_step_targets(model, tile(flat), rows_act, *(tile(x) for x in noise))
    y = y.reshape(n_eval, batch, n_samples * n_critics)
    grads = (y[1 : 1 + action_dim] - y[1 + action_dim :]) / (2 * fd_eps)  # (A, B, n * K)
    return y[0].cpu().numpy(), grads.permute(1, 2, 0).cpu().numpy()


def reference_horizon(gamma: float) -> int:
    """The Monte-Carlo references' default horizon: until ``gamma ** t < 1e-3`` (1000 steps for ``gamma = 1``)."""
    return math.ceil(math.log(1e-3) / math.log(gamma)) if gamma < 1 else 1000


def actor_policy(model: DSDPG) -> Callable[[np.ndarray], np.ndarray]:
    """
    The model's deterministic policy as a numpy function in float64, for the Monte-Carlo references: a float64 copy
    of the actor on the CPU, without SB3's preprocessing (which would cast to float32).

    :return: ``policy(observations (..., S)) -> actions (..., A)``, float64
    """
    actor = copy.deepcopy(model.actor).cpu().double()

    def policy(observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(observations, dtype=np.float64)
        flat = th.from_numpy(np.ascontiguousarray(observations.reshape(-1, observations.shape[-1])))
        with th.no_grad():
            actions = actor.mu(actor.features_extractor(flat)).numpy()
        return actions.reshape(*observations.shape[:-1], actions.shape[-1])

    return policy


def point_mass_returns(
    model: DSDPG,
    positions: np.ndarray | th.Tensor,
    first_actions: np.ndarray | th.Tensor,
    centres: np.ndarray | th.Tensor,
    noise: np.ndarray | th.Tensor,
) -> np.ndarray:
    """
    Discounted returns of the current policy on the point mass for given draws (float64): first action given,
    then ``a_t = pi(p_t)`` (deterministic, no exploration noise); every step is the env's own
    :func:`~sb3_dsdpg.envs.point_mass.point_mass_step`.

    :param positions: start positions ``(..., 2)``; ``first_actions``: ``(..., 2)``
    :param centres: the active bonus centre of each rollout ``(..., 2)``
    :param noise: standard normal motion noise ``(H, ..., 2)``, ``H`` the horizon
    :return: ``sum_t gamma^t r_t`` ``(...)``
    """
    policy = actor_policy(model)
    pos, action = np.asarray(positions, dtype=np.float64), np.asarray(first_actions, dtype=np.float64)
    centres, noise = np.asarray(centres, dtype=np.float64), np.asarray(noise, dtype=np.float64)
    total = np.zeros(np.broadcast_shapes(pos.shape, action.shape, centres.shape, noise.shape[1:])[:-1])
    with th.no_grad():
        for t in range(noise.shape[0]):
            if t > 0:
                action = policy(pos)
            pos, reward = point_mass_step(pos, action, noise[t], centres)
            total += model.gamma**t * reward
    return total


def point_mass_reference(
    model: DSDPG,
    env: PointMassBonusEnv,
    states: np.ndarray,
    n_rollouts: int = 1000,
    horizon: int | None = None,
    fd_eps: float = 1e-4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Monte-Carlo distribution of the discounted return of the current policy from ``s`` with first action
    ``pi(s)``, and of its gradient in that first action, under the true point-mass dynamics.

    Each rollout draws the hidden bonus uniformly (the policy does not see it, so given any state it is still
    uniform) and its motion noise; the ``2 |A| + 1`` rollouts of a central finite difference share both (common
    random numbers) and run as one batch, the actor in float64 so that small steps are exact enough.

    :param env: the point-mass env (its bonus centres are used, not its state)
    :param states: positions ``(B, 2)``
    :param n_rollouts: rollouts per state
    :param horizon: steps per rollout; ``None``: until ``gamma ** t < 1e-3``, the horizon the critic learns (it
        bootstraps through the 50-step time limit); the env's episode return from the start is ``horizon=50``
    :param fd_eps: finite-difference step in each action dimension
    :param seed: seed of the bonus and noise draws
    :return: returns ``(B, n_rollouts)`` and first-action gradients ``(B, n_rollouts, 2)``
    """
    if horizon is None:
        horizon = reference_horizon(model.gamma)
    gen = th.Generator().manual_seed(seed)
    pos0 = th.as_tensor(np.asarray(states, dtype=np.float64)).reshape(-1, 2)
    batch = pos0.shape[0]
    centres = th.as_tensor(env.bonus_centres, dtype=th.float64)[th.randint(env.n_bonus, (batch, n_rollouts), generator=gen)]
    noise = th.randn(horizon, batch, n_rollouts, 2, generator=gen, dtype=th.float64)
    first = th.from_numpy(actor_policy(model)(pos0.numpy()))  # (B, 2)
    steps = _fd_steps(2, fd_eps, pos0)  # (E, 2)
    shape = (steps.shape[0], batch, n_rollouts, 2)
    total = point_mass_returns(
        model,
        pos0[None, :, None].expand(shape),
        (first[None, :, None] + steps[:, None, None]).expand(shape),
        centres.expand(shape),
        noise.unsqueeze(1).expand(horizon, *shape),
    )
    grads = (total[1:3] - total[3:]) / (2 * fd_eps)  # (2, B, R)
    return total[0], grads.transpose(1, 2, 0)


def revealed_bonus_reference(
    policy: Callable[[np.ndarray], np.ndarray],
    env: RevealedBonusPointMassEnv,
    gamma: float,
    states: np.ndarray,
    n_rollouts: int = 1000,
    horizon: int | None = None,
    fd_eps: float = 1e-4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Monte-Carlo distribution of the discounted return of ``policy`` on the revealed-bonus point mass
    (``sb3_dsdpg/PointMassRevealedBonus-v0``) from ``s`` with first action ``policy(s)``, and of its gradient in that first
    action, under the true dynamics (:func:`~sb3_dsdpg.envs.revealed_bonus.revealed_bonus_step`).

    Each rollout draws the bonus that the first transition reveals where ``s`` has none (ignored where ``s`` has one)
    and its motion noise; the ``2 |A| + 1`` rollouts of a central finite difference share both (common random numbers)
    and all rollouts of all states run as one numpy batch, step after step.

    :param policy: deterministic policy, ``observations (..., 4) -> actions (..., 2)`` in float64, e.g.
        :func:`actor_policy` of a model or :func:`~sb3_dsdpg.envs.revealed_bonus.drive_to_bonus`
    :param env: the revealed-bonus env (its bonus centres and values are used, not its state)
    :param gamma: discount factor
    :param states: observations ``(p, c)``, ``(B, 4)``
    :param n_rollouts: rollouts per state
    :param horizon: steps per rollout; ``None``: until ``gamma ** t < 1e-3`` (see :func:`point_mass_reference`)
    :param fd_eps: finite-difference step in each action dimension
    :param seed: seed of the bonus and noise draws
    :return: returns ``(B, n_rollouts)`` and first-action gradients ``(B, n_rollouts, 2)``
    """
    if horizon is None:
        horizon = reference_horizon(gamma)
    rng = np.random.default_rng(seed)
    obs0 = np.asarray(states, dtype=np.float64).reshape(-1, 4)
    batch = obs0.shape[0]
    draws = rng.integers(env.n_bonus, size=(batch, n_rollouts))
    steps = _fd_steps(2, fd_eps, th.zeros((), dtype=th.float64)).numpy()  # (E, 2): none, +eps e_j, -eps e_j
    obs = np.broadcast_to(obs0[None, :, None], (steps.shape[0], batch, n_rollouts, 4))
    actions = np.asarray(policy(obs0), dtype=np.float64).reshape(batch, 2)[None, :, None] + steps[:, None, None]
    total = np.zeros(obs.shape[:-1])
    for t in range(horizon):
        if t > 0:
            actions = np.asarray(policy(obs), dtype=np.float64)
        noise = rng.standard_normal((batch, n_rollouts, 2))  # shared by the E rollouts of a difference
        obs, reward = revealed_bonus_step(obs, actions, noise, draws, env.bonus_centres, env.bonus_values)
        total += gamma**t * reward
    grads = (total[1:3] - total[3:]) / (2 * fd_eps)  # (2, B, R)
    return total[0], grads.transpose(1, 2, 0)


ReferenceEnv = PointMassBonusEnv | RevealedBonusPointMassEnv


def reference_env(env: Any) -> ReferenceEnv | None:
    """The point-mass env (either ID) under ``env``'s wrappers, or None for an env without a Monte-Carlo reference."""
    unwrapped = getattr(env, "unwrapped", env)
    return unwrapped if isinstance(unwrapped, (PointMassBonusEnv, RevealedBonusPointMassEnv)) else None


def reference_samples(
    model: DSDPG,
    env: Any,
    states: np.ndarray,
    n_rollouts: int = 1000,
    horizon: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """
    The Monte-Carlo reference of ``env`` for the model's policy: :func:`point_mass_reference` on
    ``PointMassBonus-v0``, :func:`revealed_bonus_reference` with the actor in float64 on ``PointMassRevealedBonus-v0``.

    :param env: an env, wrappers allowed
    :param states: ``(B, *obs_shape)`` in the env's (raw) observation units
    :return: returns ``(B, n_rollouts)`` and first-action gradients ``(B, n_rollouts, A)``, or None without a reference
    """
    env = reference_env(env)
    if isinstance(env, RevealedBonusPointMassEnv):
        return revealed_bonus_reference(actor_policy(model), env, model.gamma, states, n_rollouts, horizon, seed=seed)
    if isinstance(env, PointMassBonusEnv):
        return point_mass_reference(model, env, states, n_rollouts, horizon, seed=seed)
    return None


def diagnose(
    model: DSDPG,
    states: np.ndarray,
    point_mass: ReferenceEnv | None = None,
    n_samples: int = 256,
    n_rollouts: int = 1000,
    horizon: int | None = None,
    seed: int = 0,
) -> list[StateDiagnostics]:
    """
    All available samples at each state: critic, one-step model targets (with a world model), and the Monte-Carlo
    reference (with ``point_mass``, see :func:`reference_samples`).

    :param states: ``(B, *obs_shape)``
    :param point_mass: the point-mass env, v0 (:class:`~sb3_dsdpg.envs.point_mass.PointMassBonusEnv`) or revealed
        (:class:`~sb3_dsdpg.envs.revealed_bonus.RevealedBonusPointMassEnv`), to add the Monte-Carlo reference
    :param n_samples: critic and model-target samples per critic
    :param n_rollouts: Monte-Carlo rollouts per state
    :param horizon: Monte-Carlo horizon, see :func:`point_mass_reference`
    :param seed: seed of all draws (torch's global generator is restored afterwards)
    """
    _check_box(model)
    states = np.asarray(states, dtype=np.float32).reshape(-1, *model.observation_space.shape)
    with th.random.fork_rng(devices=[]):
        th.manual_seed(seed)
        actions, z, grad = critic_samples(model, states, n_samples)
        scale = float(model.reward_scale) if not isinstance(model.reward_scale, str) else 1.0
        out = [
            StateDiagnostics(states[b], actions[b], {"critic": z[b]}, {"critic": grad[b]}, scale) for b in range(len(states))
        ]
        if model.world_model is not None:
            y, y_grad = model_target_samples(model, states, actions, n_samples)
            for b, diag in enumerate(out):
                diag.returns["model"], diag.grads["model"] = y[b], y_grad[b]
    reference = None if point_mass is None else reference_samples(model, point_mass, states, n_rollouts, horizon, seed)
    if reference is not None:
        ret, ret_grad = reference
        for b, diag in enumerate(out):
            diag.returns["reference"], diag.grads["reference"] = ret[b], ret_grad[b]
    return out


def _range(values: list[np.ndarray], tail: float = 0.5) -> tuple[float, float]:
    """A common plotting range of several sample sets: their pooled ``tail``-th to ``100 - tail``-th percentiles."""
    lo, hi = np.percentile(np.concatenate(values), [tail, 100 - tail])
    pad = 0.05 * (hi - lo) + 1e-9
    return float(lo - pad), float(hi + pad)


def plot_diagnostics(diagnostics: list[StateDiagnostics], title: str = "") -> MplFigure:
    """
    One row per state: return samples (histograms), then action gradients (histograms for a 1-D action, a
    scatter of the first two action dimensions otherwise), one colour per source, means marked. The axes cover the
    pooled 0.5-99.5 percentiles of the sources, so one far sample does not squash the others.

    :return: a matplotlib figure on an Agg canvas (no pyplot state; save with ``savefig``)
    """
    n_rows = len(diagnostics)
    fig = MplFigure(figsize=(10, 3.3 * n_rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, 2, squeeze=False)
    for row, diag in enumerate(diagnostics):
        ax_ret, ax_grad = axes[row]
        bins = np.linspace(*_range(list(diag.returns.values())), 50)
        for name, values in diag.returns.items():
            label, colour = SOURCES[name]
            ax_ret.hist(values, bins=bins, density=True, alpha=0.45, color=colour, label=label)
            ax_ret.axvline(values.mean(), color=colour, lw=1.5)
        ax_ret.set_xlabel("return sample")
        ax_ret.set_title(f"s = {np.array2string(diag.state.reshape(-1)[:6], precision=2, separator=', ')}", fontsize=9)
        grads = list(diag.grads.values())
        if grads[0].shape[1] == 1:
            bins = np.linspace(*_range([g[:, 0] for g in grads]), 50)
            for name, values in diag.grads.items():
                label, colour = SOURCES[name]
                ax_grad.hist(values[:, 0], bins=bins, density=True, alpha=0.45, color=colour, label=label)
                ax_grad.axvline(values[:, 0].mean(), color=colour, lw=1.5)
            ax_grad.set_xlabel("dz/da")
        else:
            for name, values in diag.grads.items():
                label, colour = SOURCES[name]
                ax_grad.scatter(values[:, 0], values[:, 1], s=4, alpha=0.3, color=colour, label=label)
                ax_grad.scatter(*values[:, :2].mean(0), s=90, marker="x", color=colour, linewidths=2.5)
            ax_grad.set_xlim(*_range([g[:, 0] for g in grads]))
            ax_grad.set_ylim(*_range([g[:, 1] for g in grads]))
            ax_grad.set_xlabel("dz/da_0")
            ax_grad.set_ylabel("dz/da_1")
        action = np.array2string(diag.action[:4], precision=2, separator=", ")
        ax_grad.set_title(f"action gradients at pi(s) = {action}", fontsize=9)
    axes[0, 1].legend(fontsize=7, loc="best", markerscale=3)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


class GradientDiagnosticsCallback(BaseCallback):
    """
    Log the gradient diagnostics figure to tensorboard every ``log_freq`` calls (SB3's ``Figure`` type; the other
    output formats are excluded), with scalars ``<key>_grad_error`` (distance between the critic's mean action
    gradient and the reference's, the Monte-Carlo one on the point masses, else the model targets') averaged over
    the states. Starts once training has started (``learning_starts``).

    :param log_freq: callback calls (environment steps per env) between figures
    :param states: states to diagnose ``(B, *obs_shape)``; default: the origin on ``PointMassBonus-v0``, the start
        state ``(0, 0, 0, 0)`` and ``(0.35, 0, 0.7, 0)`` (half-way to the revealed first bonus) on
        ``PointMassRevealedBonus-v0``, otherwise the first ``n_states`` observations of the replay buffer (fixed at the first
        figure)
    :param n_states: number of default states off the point masses
    :param n_samples: critic and model-target samples per critic
    :param n_rollouts: Monte-Carlo rollouts per state (point masses only)
    :param horizon: Monte-Carlo horizon, see :func:`point_mass_reference`
    :param key: tensorboard tag of the figure
    :param seed: seed of the diagnostics' draws (the training's generators are left alone)
    :param verbose: verbosity
    """

    def __init__(
        self,
        log_freq: int = 5000,
        states: np.ndarray | None = None,
        n_states: int = 2,
        n_samples: int = 256,
        n_rollouts: int = 500,
        horizon: int | None = None,
        key: str = "diagnostics/gradients",
        seed: int = 0,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        if log_freq < 1:
            raise ValueError(f"log_freq must be >= 1, got {log_freq}.")
        self.log_freq = log_freq
        self.states = None if states is None else np.asarray(states, dtype=np.float32)
        self.n_states, self.n_samples, self.n_rollouts, self.horizon = n_states, n_samples, n_rollouts, horizon
        self.key, self.seed = key, seed
        self.point_mass: ReferenceEnv | None = None
        self.n_figures = 0

    def _init_callback(self) -> None:
        if not isinstance(self.model, DSDPG):
            raise ValueError(f"GradientDiagnosticsCallback needs a DSDPG model, got {type(self.model).__name__}.")
        _check_box(self.model)
        try:
            self.point_mass = reference_env(self.training_env.get_attr("unwrapped", indices=0)[0])  # type: ignore[union-attr]
        except AttributeError:
            self.point_mass = None
        if self.point_mass is not None and self.model.get_vec_normalize_env() is not None:
            self.point_mass = None  # the reference runs in raw positions
        if self.states is None and self.point_mass is not None:
            self.states = _reference_states(self.point_mass)[: 1 if isinstance(self.point_mass, PointMassBonusEnv) else 2]

    def _on_step(self) -> bool:
        model = self.model
        if self.n_calls % self.log_freq != 0 or model.num_timesteps <= model.learning_starts:
            return True
        if self.states is None:
            buffer = model.replay_buffer
            n_stored = buffer.buffer_size if buffer.full else buffer.pos  # type: ignore[union-attr]
            self.states = buffer.observations[: min(self.n_states, n_stored), 0].astype(np.float32)  # type: ignore[union-attr]
        diagnostics = diagnose(model, self.states, self.point_mass, self.n_samples, self.n_rollouts, self.horizon, self.seed)
        reference = "reference" if self.point_mass is not None else "model"
        fig = plot_diagnostics(diagnostics, f"step {model.num_timesteps}")
        self.logger.record(self.key, Figure(fig, close=True), exclude=("stdout", "log", "json", "csv"))
        if reference in diagnostics[0].grads:
            error = np.mean([np.linalg.norm(d.grads["critic"].mean(0) - d.grads[reference].mean(0)) for d in diagnostics])
            self.logger.record(f"{self.key}_grad_error", float(error))
        self.logger.dump(model.num_timesteps)
        self.n_figures += 1
        return True


def _reference_states(env: ReferenceEnv) -> np.ndarray:
    """
    The diagnosed states of a point mass. On v0, the origin and two points on the way to the first bonuses. On the
    revealed-bonus one, the start state (bonus not drawn), half-way to the revealed first bonus ``c_0 = (0.7, 0)``,
    and the origin just after revealing the last (least valuable) bonus.
    """
    if isinstance(env, RevealedBonusPointMassEnv):
        last = env.bonus_centres[-1]
        return np.array([[0.0, 0.0, 0.0, 0.0], [0.35, 0.0, 0.7, 0.0], [0.0, 0.0, last[0], last[1]]], dtype=np.float32)
    return np.array([[0.0, 0.0], [0.35, 0.0], [-0.25, 0.3]], dtype=np.float32)


def default_states(env: gym.Env, n_states: int, seed: int) -> np.ndarray:
    """The point masses' states (see :func:`_reference_states`), first ``n_states``; reset states otherwise."""
    point_mass = reference_env(env)
    if point_mass is not None:
        return _reference_states(point_mass)[:n_states]
    return np.stack([env.reset(seed=seed + i)[0] for i in range(n_states)]).astype(np.float32)


def main(argv: list[str] | None = None) -> list[StateDiagnostics]:
    parser = argparse.ArgumentParser(description="Save the gradient diagnostics of a saved DSDPG model as PNG and JSON.")
    parser.add_argument("--model", required=True, help="path of a model saved by DSDPG.save")
    parser.add_argument("--env", required=True, help="env ID, e.g. sb3_dsdpg/PointMassBonus-v0")
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON, e.g. '{\"n_bonus\": 4}'")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n-states", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=256, help="critic and model-target samples per critic")
    parser.add_argument("--n-rollouts", type=int, default=1000, help="Monte-Carlo rollouts per state (point masses)")
    parser.add_argument("--horizon", type=int, default=None, help="Monte-Carlo horizon (default: until gamma^t < 1e-3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    env = gym.make(args.env, **args.env_kwargs)
    model = DSDPG.load(args.model, device="cpu")
    states = default_states(env, args.n_states, args.seed)
    diagnostics = diagnose(model, states, reference_env(env), args.n_samples, args.n_rollouts, args.horizon, args.seed)
    os.makedirs(args.out, exist_ok=True)
    name = os.path.splitext(os.path.basename(args.model))[0]
    fig = plot_diagnostics(diagnostics, f"{name} on {args.env}")
    png = os.path.join(args.out, "diagnostics.png")
    fig.savefig(png, dpi=110)
    with open(os.path.join(args.out, "diagnostics.json"), "w") as file:
        json.dump([d.summary() for d in diagnostics], file, indent=1)
    print(f"wrote {png} and diagnostics.json")
    for diag in diagnostics:
        for name in ("critic", "model"):
            parts = {part: diag.distance_to_reference(name, part) for part in ("joint", "return", "gradient")}
            if parts["joint"] is not None:
                shown = ", ".join(f"{part} {value:.3g}" for part, value in parts.items())
                print(f"state {np.round(diag.state, 3).tolist()}, {name}: MMD^2 to the Monte-Carlo reference: {shown}")
    return diagnostics
