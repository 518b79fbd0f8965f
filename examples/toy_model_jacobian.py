"""How far the world model's derivative is from the revealed-bonus toy's, on the transitions the critic trains on.

Run: ``python examples/toy_model_jacobian.py MODEL.zip [--buffer BUFFER.pkl] [--n-bonus 4] [--rows 2000]``, with a
DSDPG model trained on ``sb3_dsdpg/PointMassRevealedBonus-v0`` and its replay buffer (``save_replay_buffer``).

The hybrid Sobolev target (docs/dsdpg.md) takes its gradient part through the world model's Jacobian
``d(s', r)/da`` at the latent that explains each real transition (the encoder's posterior), chained with the target
critic's derivative at the real ``s'``. On this toy the true Jacobian is known: ``dp'/da = 0.1 I`` where neither
the action nor the position is clipped, ``dc'/da = 0`` (the revealed centre does not depend on the action) and
``dr/da = (dr/dp') dp'/da + dr/da|_{p'}`` of the known reward
``v(c') exp(-||p' - c'||^2 / 0.02) - 0.01 ||a||^2``. The script samples replay rows,
splits them into the reveal transitions (``c = 0``) and the rest, and prints per part the RMS of the model's and
the true Jacobian blocks and of their difference, then the gradient part of the target with each Jacobian,
``G = dr/da + gamma (dQ'/ds') ds'/da`` (``Q'``: the target critic's mean over its samples, with the target actor,
at the real ``s'``), in the critic's reward units, and the share of its error that comes through ``c'``.
"""

from __future__ import annotations

import argparse
import os

import gymnasium as gym
import numpy as np
import torch as th
from torch.func import jacrev, vmap

import sb3_dsdpg  # noqa: F401  (registers the envs)
from sb3_dsdpg import DSDPG
from sb3_dsdpg.envs import known_reward_fn


def rms(x: th.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def true_jacobian(obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, env: gym.Env, scale: float) -> th.Tensor:
    """
    ``d(p', c', r)/da`` of the env at the real transitions ``(B, 5, 2)``, the reward row divided by ``scale``: the
    motion's ``dp'/da`` (``0.1`` per coordinate neither clipped), ``dc'/da = 0``, and the reward's derivative by
    autograd of the env's known reward (``sb3_dsdpg.envs.known_reward_fn``) chained through ``dp'/da``.
    """
    position = next_obs[:, :2]
    free = ((position.abs() < 1 - 1e-6) & (actions.abs() < 1)).double()  # per coordinate: not clipped
    jac = th.zeros(obs.shape[0], 5, 2, dtype=th.float64)
    jac[:, 0, 0], jac[:, 1, 1] = 0.1 * free[:, 0], 0.1 * free[:, 1]
    at_next, at_action = next_obs.clone().requires_grad_(True), actions.clone().requires_grad_(True)
    reward = known_reward_fn(env)(obs, at_action, at_next)
    d_next, d_action = th.autograd.grad(reward.sum(), (at_next, at_action))
    jac[:, 4] = (d_next[:, :2].unsqueeze(-1) * jac[:, :2]).sum(1) + d_action
    jac[:, 4] /= scale
    return jac


def collect(model: DSDPG, env: gym.Env, n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n_rows`` transitions of the model's policy with normal action noise 0.1 (the sweep's), for a model saved
    without its replay buffer: observations, actions, next observations and rewards."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []
    obs, _ = env.reset(seed=seed)
    while len(rows) < n_rows:
        action, _ = model.predict(obs, deterministic=True)
        action = np.clip(action + 0.1 * rng.standard_normal(action.shape), -1, 1).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, next_obs, float(reward)))
        obs = env.reset()[0] if terminated or truncated else next_obs
    return tuple(np.stack([row[i] for row in rows]) for i in range(4))  # type: ignore[return-value]


def model_jacobian(
    model: DSDPG,
    obs: th.Tensor,
    actions: th.Tensor,
    next_obs: th.Tensor,
    rewards: th.Tensor,
    hold_latent: bool,
    learned_reward: bool = True,
) -> th.Tensor:
    """``d(p', c', r)/da`` ``(B, 5, 2)`` of the target's models at the latent that explains each transition: the cVAE's
    next state (at the fixed latent or the fixed standardised noise), and the reward the target differentiates (the
    learned ``r(s, a, s')`` through the cVAE's ``s'`` where ``reward_fn="learned"`` and ``learned_reward``, else the
    cVAE's)."""
    world_model = model.world_model
    with th.no_grad():
        noise = world_model.posterior_noise(obs, actions, next_obs, rewards, 1)[:, 0]
    reward_model = model.reward_model.double() if model.reward_model is not None and learned_reward else None

    def outcome(o: th.Tensor, a: th.Tensor, eps: th.Tensor) -> th.Tensor:
        next_state, reward = world_model.sample(o[None], a[None], noise=eps[None, None], hold_latent=hold_latent)
        if reward_model is not None:
            reward = reward_model(o[None, None], a[None, None], next_state)[0]
        return th.cat([next_state[0, 0], reward[0].reshape(1)])

    return vmap(jacrev(outcome, argnums=1))(obs, actions, noise).detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--buffer", help="replay buffer (default: MODEL without .zip, plus _buffer.pkl, if it exists)")
    parser.add_argument("--n-bonus", type=int, default=4)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="of the rows drawn (and of the rollouts without a buffer)")
    args = parser.parse_args()
    th.set_num_threads(1)
    model = DSDPG.load(args.model, device="cpu")
    env = gym.make("sb3_dsdpg/PointMassRevealedBonus-v0", n_bonus=args.n_bonus)
    scale = float(model.reward_scale) if not isinstance(model.reward_scale, str) else 1.0
    buffer_path = args.buffer or args.model.removesuffix(".zip") + "_buffer.pkl"
    if args.buffer or os.path.exists(buffer_path):
        model.load_replay_buffer(buffer_path)
        buffer = model.replay_buffer
        size = buffer.buffer_size if buffer.full else buffer.pos
        rows = np.random.default_rng(args.seed).integers(0, size, args.rows)
        stored = (buffer.observations, buffer.actions, buffer.next_observations, buffer.rewards)
        data = tuple(x[rows, 0] for x in stored)
        source = f"{args.rows} rows of the replay buffer"
    else:
        data = collect(model, env, args.rows, args.seed)
        source = f"{args.rows} transitions of the policy with noise 0.1 (no replay buffer saved)"
    model.world_model.double()
    obs, actions, next_obs, rewards = (th.as_tensor(x, dtype=th.float64) for x in data)
    rewards = rewards / scale
    reveal = (obs[:, 2:] == 0).all(-1)
    truth = true_jacobian(obs, actions, next_obs, env, scale)
    critic, actor = model.policy.critic_target.float(), model.policy.actor_target.float()
    at = next_obs.float().requires_grad_(True)
    value = critic(at, actor(at).clamp(-1, 1), critic.sample_noise(at.shape[0], model.n_samples)).mean(dim=(1, 2))
    (d_value,) = th.autograd.grad(value.sum(), at)
    d_value = d_value.double()
    g_true = truth[:, 4] + model.gamma * th.einsum("bs,bsa->ba", d_value, truth[:, :4])
    reward_source = "learned r(s, a, s')" if model.reward_model is not None else "the cVAE's"
    print(f"{args.model}: {source}; reward derivative from {reward_source}; reward units / {scale:.3g}")
    print(
        "| latent held | part | rows | dp'/da model / true / error | dc'/da model (true 0) | dr/da model / true / error "
        "| G model / true / error (through c') | median cosine of G |"
    )
    print("|---|---|---|---|---|---|---|---|")
    variants = [(False, True, "noise (standard)"), (True, True, "eps (fixed)")]
    if model.reward_model is not None:
        variants.append((False, False, "noise (standard), the cVAE's reward"))
    for hold, learned, label in variants:
        jac = model_jacobian(model, obs, actions, next_obs, rewards, hold, learned)
        g_model = jac[:, 4] + model.gamma * th.einsum("bs,bsa->ba", d_value, jac[:, :4])
        g_centre = model.gamma * th.einsum("bs,bsa->ba", d_value[:, 2:], jac[:, 2:4])
        for name, mask in (("reveal (c = 0)", reveal), ("after the reveal", ~reveal)):
            if not mask.any():
                continue
            error = jac[mask] - truth[mask]
            cosine = th.nn.functional.cosine_similarity(g_model[mask], g_true[mask]).median()
            print(
                f"| {label} | {name} | {int(mask.sum())} "
                f"| {rms(jac[mask, :2]):.3g} / {rms(truth[mask, :2]):.3g} / {rms(error[:, :2]):.3g} "
                f"| {rms(jac[mask, 2:4]):.3g} "
                f"| {rms(jac[mask, 4]):.3g} / {rms(truth[mask, 4]):.3g} / {rms(error[:, 4]):.3g} "
                f"| {rms(g_model[mask]):.3g} / {rms(g_true[mask]):.3g} / {rms(g_model[mask] - g_true[mask]):.3g} "
                f"({rms(g_centre[mask]):.3g}) | {float(cosine):.2f} |"
            )


if __name__ == "__main__":
    main()
