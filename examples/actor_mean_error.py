"""How well the actor reads its critic: the error of the actor's action gradient with ``actor_mean="per_row"`` (the
mean of ``n_samples`` fresh noise draws per row, the default until 2026-12-08) and ``"exact"`` (the factorized
critic's mean noise features over 1024 draws shared by the batch), and what an actor step costs with each.

Run: ``python examples/actor_mean_error.py MODEL.zip --env ENV_ID [--env-kwargs JSON] [--rows 256] [--rounds 200]``

The reference is the same gradient through 100,000 shared draws. Per row: the relative error
``||g - g_ref|| / ||g_ref||`` of ``d/da mean_k E[Z_k(s, a, xi)]`` at ``a = pi(s)``; printed: its median and 90th
percentile over ``--rows`` states visited by the model's policy. The cost: the actor step of ``train()``
(objective, backward into the actor, Adam; no Polyak update), both forms interleaved in one process on one thread,
median over ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch as th

import sb3_dsdpg  # noqa: F401  (registers the envs)
from sb3_dsdpg import DSDPG
from sb3_dsdpg.dsdpg import ACTOR_MEAN_DRAWS


def visited_states(model: DSDPG, env: gym.Env, n: int, seed: int) -> th.Tensor:
    """``n`` observations of the model's deterministic policy with normal action noise 0.1."""
    rng, states = np.random.default_rng(seed), []
    obs, _ = env.reset(seed=seed)
    while len(states) < n:
        states.append(obs)
        action = np.clip(model.predict(obs, deterministic=True)[0] + 0.1 * rng.standard_normal(), -1, 1)
        obs, _, terminated, truncated, _ = env.step(action.astype(np.float32))
        if terminated or truncated:
            obs, _ = env.reset()
    return th.as_tensor(np.stack(states), dtype=th.float32)


def action_gradient(model: DSDPG, obs: th.Tensor, noise: th.Tensor) -> th.Tensor:
    actions = model.actor(obs).detach().requires_grad_(True)
    (grad,) = th.autograd.grad(model.critic.mean_over_samples(obs, actions, noise).sum(), actions)
    return grad


def actor_step(model: DSDPG, obs: th.Tensor, noise: th.Tensor) -> None:
    loss = -model.critic.mean_over_samples(obs, model.actor(obs), noise).mean()
    model.actor.optimizer.zero_grad()
    loss.backward(inputs=list(model.actor.parameters()))
    model.actor.optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--env", required=True)
    parser.add_argument("--env-kwargs", type=json.loads, default={})
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)
    th.manual_seed(args.seed)
    model = DSDPG.load(args.model, device="cpu")
    obs = visited_states(model, gym.make(args.env, **args.env_kwargs), args.rows, args.seed)
    k, dim = model.critic.n_critics, model.critic.noise_dim
    reference = action_gradient(model, obs, th.randn(1, k, 100_000, dim))
    forms = {
        f"per_row ({model.n_samples} draws per row)": lambda: model.critic.sample_noise(args.rows, model.n_samples),
        f"exact ({ACTOR_MEAN_DRAWS} shared draws)": lambda: th.randn(1, k, ACTOR_MEAN_DRAWS, dim),
    }
    print(f"{args.model} on {args.env}: {args.rows} visited states, batch {args.rows}, 1 thread")
    print("| actor_mean | relative error of the action gradient, median | 90th percentile | actor step (ms, median) |")
    print("|---|---|---|---|")
    errors = {}
    for name, draw in forms.items():  # before the timed steps move the actor
        error = (action_gradient(model, obs, draw()) - reference).norm(dim=-1) / reference.norm(dim=-1).clamp_min(1e-12)
        errors[name] = (float(error.median()), float(error.quantile(0.9)))
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(args.rounds):  # interleaved, so that the machine's drift hits both alike
        for name, draw in forms.items():
            start = time.perf_counter()
            actor_step(model, obs, draw())
            times[name].append(time.perf_counter() - start)
    for name in forms:
        median, p90 = errors[name]
        print(f"| {name} | {median:.3f} | {p90:.3f} | {1e3 * float(np.median(times[name])):.2f} |")


if __name__ == "__main__":
    main()
