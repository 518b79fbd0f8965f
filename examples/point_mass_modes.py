"""Point mass with hidden bonuses: does modelling the action-gradient distribution help as the return becomes multimodal?

This example owns the toy experiment of the paper's Section 6.1 at laptop scale: it trains DSDPG
(``sobolev=True, distributional=True``) and its deterministic-Sobolev switch (``distributional=False``, the MAGE-like
baseline) on ``sb3_dsdpg/PointMassBonus-v0`` with ``n_bonus`` in {1, 2, 4}, evaluates the final deterministic
policies, and saves

- ``final_return.png``: final evaluation return against ``n_bonus`` for both variants (mean and spread over seeds),
  with the return of a scripted policy that drives to one centre as a reference;
- ``action_gradients.png``: the critic's action-gradient samples at the start state (the origin, with the trained
  policy's action), one panel per variant and ``n_bonus``, with the directions of the bonus centres (the deterministic
  switch predicts one gradient per critic: its critic is used at noise 0 only);
- ``results.json``: every number behind the plots.

With one bonus the return from the start is unimodal; with ``n`` hidden bonuses a policy that commits to one centre
gets the bonus in a fraction ``1/n`` of the episodes, so the return and its action gradient are multimodal.
The default budget (2 variants x 3 ``n_bonus`` x 2 seeds x 4000 steps, one update per step after 500 random steps,
two worker processes) is sized to finish in 15-20 minutes on 2 free CPU cores (measured: ~55 ms per DSDPG update and
~32 ms per deterministic-Sobolev update at batch 64; one seed took 17.5 CPU-minutes on a machine shared with other jobs).
It is a smoke-scale run, far below the paper's budget: with the same settings SB3's TD3 solved ``n_bonus=1`` in 1 of 2
seeds after 3000 steps and 2 of 2 after 6000, and in one 4000-step seed neither variant learned to reach a centre,
so expect noisy, unconverged results; raise ``--timesteps`` (and the wall time) to see learning.

Usage::

    python examples/point_mass_modes.py --seeds 0 1 --timesteps 4000 --output-dir logs/point_mass_modes
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pathlib
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np

import sb3_dsdpg.envs  # noqa: F401  (registers sb3_dsdpg/PointMassBonus-v0)

ENV_ID = "sb3_dsdpg/PointMassBonus-v0"
VARIANTS: dict[str, dict[str, bool]] = {
    "DSDPG": {"sobolev": True, "distributional": True},
    "deterministic Sobolev": {"sobolev": True, "distributional": False},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    parser.add_argument("--timesteps", type=int, default=4000, help="environment steps per run")
    parser.add_argument("--n-bonus", type=int, nargs="+", default=[1, 2, 4], help="numbers of bonus centres")
    parser.add_argument("--output-dir", type=pathlib.Path, default=pathlib.Path("logs/point_mass_modes"))
    parser.add_argument("--learning-starts", type=int, default=500, help="random steps before training")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-samples", type=int, default=10, help="critic samples per (s, a) in training")
    parser.add_argument("--action-noise", type=float, default=0.2, help="std of the Gaussian exploration noise")
    parser.add_argument("--eval-episodes", type=int, default=100, help="evaluation episodes per run")
    parser.add_argument("--gradient-samples", type=int, default=200, help="critic samples drawn for the gradient plot")
    parser.add_argument("--n-jobs", type=int, default=2, help="runs trained in parallel (one CPU thread each)")
    return parser.parse_args()


def evaluate(policy: Any, n_bonus: int, n_episodes: int, seed: int) -> dict[str, float]:
    """
    Run a policy on fresh episodes.

    :param policy: callable from observation to action
    :param n_bonus: number of bonus centres
    :param n_episodes: number of episodes
    :param seed: seed of the evaluation env
    :return: mean and std of the return, and the fraction of episodes that end within 0.2 of some centre
        (the policy committed to a bonus) or of the active one (it got the bonus)
    """
    env = gym.make(ENV_ID, n_bonus=n_bonus)
    centres = env.unwrapped.bonus_centres
    env.reset(seed=seed)
    returns, committed, hit = [], [], []
    for _ in range(n_episodes):
        obs, info = env.reset()
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
        distances = np.linalg.norm(centres - env.unwrapped.position, axis=1)
        returns.append(total)
        committed.append(distances.min() < 0.2)
        hit.append(distances[info["active_bonus"]] < 0.2)
    return {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "committed_rate": float(np.mean(committed)),
        "hit_rate": float(np.mean(hit)),
    }


def scripted_reference(n_bonus: int, n_episodes: int) -> dict[str, float]:
    """The return of a proportional controller that drives to the first centre and stays there."""
    target = gym.make(ENV_ID, n_bonus=n_bonus).unwrapped.bonus_centres[0]
    return evaluate(lambda obs: np.clip((target - obs) / 0.1, -1.0, 1.0), n_bonus, n_episodes, seed=12345)


def train_and_probe(job: dict[str, Any]) -> dict[str, Any]:
    """
    Train one variant on one ``n_bonus`` with one seed, evaluate it, and sample the critic at the start state.

    :param job: ``variant``, ``n_bonus``, ``seed`` and the parsed options as a dict
    :return: the evaluation numbers, the policy's start action and the critic's samples there
    """
    import torch
    from stable_baselines3.common.noise import NormalActionNoise

    from sb3_dsdpg import DSDPG

    torch.set_num_threads(1)
    options = job["options"]
    env = gym.make(ENV_ID, n_bonus=job["n_bonus"])
    model = DSDPG(
        "MlpPolicy",
        env,
        **VARIANTS[job["variant"]],
        n_samples=options["n_samples"],
        learning_starts=options["learning_starts"],
        batch_size=options["batch_size"],
        action_noise=NormalActionNoise(np.zeros(2), options["action_noise"] * np.ones(2)),
        policy_kwargs={"net_arch": [64, 64]},
        seed=job["seed"],
        device="cpu",
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(total_timesteps=options["timesteps"])
    train_seconds = time.perf_counter() - start

    def policy(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    result = evaluate(policy, job["n_bonus"], options["eval_episodes"], seed=10_000 + job["seed"])

    # The start state is the origin; the critic is probed at the trained policy's action there.
    obs = torch.zeros((1, 2), device=model.device)
    with torch.no_grad():
        action = model.actor(obs)
    if model.distributional:
        # (1, n_critics, n), (1, n_critics, n, 2)
        returns, grads = model.critic.action_gradient_samples(obs, action, options["gradient_samples"])
    else:
        # The deterministic switch trains and uses its critic at noise 0 only: random noise would show untrained
        # directions of the network, not its prediction, so it is probed at that single point.
        noise = torch.zeros(1, model.critic.n_critics, 1, model.critic.noise_dim, device=model.device)
        returns, grads = model.critic.forward_with_action_grad(obs, action, noise, create_graph=False)
        returns, grads = returns.detach(), grads.detach()
    result.update(
        variant=job["variant"],
        n_bonus=job["n_bonus"],
        seed=job["seed"],
        train_seconds=train_seconds,
        start_action=action[0].cpu().numpy().tolist(),
        critic_returns=returns[0].cpu().numpy().tolist(),
        critic_grads=grads[0].cpu().numpy().tolist(),
    )
    return result


def plot_returns(results: list[dict[str, Any]], references: dict[int, dict[str, float]], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_values = sorted(references)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    styles = {"DSDPG": ("tab:blue", -0.04), "deterministic Sobolev": ("tab:orange", 0.04)}  # offsets keep dots apart
    for variant, (color, offset) in styles.items():
        means, stds = [], []
        for n in n_values:
            values = [r["return_mean"] for r in results if r["variant"] == variant and r["n_bonus"] == n]
            means.append(np.mean(values))
            stds.append(np.std(values))
            ax.scatter(np.full(len(values), n * (1 + offset)), values, color=color, alpha=0.35, s=14)
        ax.errorbar(np.array(n_values) * (1 + offset), means, yerr=stds, color=color, marker="o", capsize=3, label=variant)
    ax.plot(
        n_values, [references[n]["return_mean"] for n in n_values], "k--", marker="x", label="scripted: drive to one centre"
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(n_values, [str(n) for n in n_values])
    ax.set_xlabel("number of hidden bonuses n_bonus")
    ax.set_ylabel("final evaluation return (mean over episodes)")
    ax.set_title("PointMassBonus-v0: final return (seeds: dots, mean ± std)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_gradients(results: list[dict[str, Any]], n_values: list[int], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(VARIANTS), len(n_values), figsize=(3.4 * len(n_values), 3.2 * len(VARIANTS)), squeeze=False)
    first_seed = min(r["seed"] for r in results)
    for row, variant in enumerate(VARIANTS):
        for col, n in enumerate(n_values):
            ax = axes[row][col]
            (run,) = [r for r in results if r["variant"] == variant and r["n_bonus"] == n and r["seed"] == first_seed]
            grads = np.asarray(run["critic_grads"])  # (n_critics, n_samples, 2)
            for critic, marker in zip(range(grads.shape[0]), "o^sv", strict=False):
                size = 8 if grads.shape[1] > 1 else 40  # one point per critic for the deterministic switch
                ax.scatter(
                    grads[critic, :, 0], grads[critic, :, 1], s=size, alpha=0.6, marker=marker, label=f"critic {critic}"
                )
            extent = max(float(np.abs(grads).max()), 1e-6) * 1.15
            for angle in 2 * np.pi * np.arange(n) / n:
                tip = (0.9 * extent * np.cos(angle), 0.9 * extent * np.sin(angle))
                ax.annotate("", xy=tip, xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": "0.6"})
            ax.axhline(0, color="0.85", lw=0.8)
            ax.axvline(0, color="0.85", lw=0.8)
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_aspect("equal")
            action = np.round(run["start_action"], 2).tolist()
            ax.set_title(f"{variant}, n_bonus={n}\naction at start {action}", fontsize=8)
            if row == len(VARIANTS) - 1:
                ax.set_xlabel("dZ/da_x")
            if col == 0:
                ax.set_ylabel("dZ/da_y")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"Critic action-gradient samples at the start state (seed {first_seed})\ngrey arrows: directions of the bonus centres",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    options = {key: value for key, value in vars(args).items() if key != "output_dir"}
    jobs = [
        {"variant": variant, "n_bonus": n, "seed": seed, "options": options}
        for n in args.n_bonus
        for seed in args.seeds
        for variant in VARIANTS
    ]
    start = time.perf_counter()
    # Spawned workers: each imports torch itself and runs single-threaded.
    with ProcessPoolExecutor(max_workers=args.n_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = []
        for result in pool.map(train_and_probe, jobs):
            results.append(result)
            print(
                f"{result['variant']:>22} n_bonus={result['n_bonus']} seed={result['seed']}: "
                f"return {result['return_mean']:7.2f} ± {result['return_std']:5.2f}, "
                f"commits to a centre {result['committed_rate']:.0%}, gets the bonus {result['hit_rate']:.0%} "
                f"({result['train_seconds']:.0f} s)",
                flush=True,
            )
    references = {n: scripted_reference(n, 400) for n in args.n_bonus}
    for n, reference in references.items():
        print(f"{'scripted':>22} n_bonus={n}: return {reference['return_mean']:7.2f}")

    plot_returns(results, references, args.output_dir / "final_return.png")
    plot_gradients(results, sorted(args.n_bonus), args.output_dir / "action_gradients.png")
    summary = {"options": options, "scripted_reference": references, "runs": results}
    (args.output_dir / "results.json").write_text(json.dumps(summary, indent=1))
    print(f"saved plots and results.json in {args.output_dir} after {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
