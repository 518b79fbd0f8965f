"""
A/B through ``learn()`` of the quickstart's model: three changes of 2026-12-04 night on (the critics stacked,
``row_dot``'s backward, the actor's objective through the mean noise features) against off, two models in one
process, interleaved chunks of 300 steps (rollouts and updates); prints ms per step and the paired ratios.

Run from the repository root: ``python examples/ab_stacked_critics.py [rounds]`` (1 torch thread).
"""

import statistics
import sys
import time

import gymnasium as gym
import torch as th

sys.path.insert(0, "examples")
from quickstart import quickstart_settings

import sb3_dsdpg.policies as policies
from sb3_dsdpg import DSDPG

FAST_DOT, FAST_MEAN = policies.row_dot, policies.GenerativeCritic.mean_over_samples


def plain_dot(x: th.Tensor, y: th.Tensor) -> th.Tensor:
    return th.matmul(x, y.transpose(-1, -2))


def plain_mean(self: policies.GenerativeCritic, obs: th.Tensor, actions: th.Tensor, noise: th.Tensor) -> th.Tensor:
    return self(obs, actions, noise).mean(dim=-1)


def switch(on: bool) -> None:
    policies.row_dot = FAST_DOT if on else plain_dot
    policies.GenerativeCritic.mean_over_samples = FAST_MEAN if on else plain_mean  # type: ignore[method-assign]


def main() -> None:
    th.set_num_threads(1)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    models = {}
    for on in (True, False):
        switch(on)
        model = DSDPG("MlpPolicy", gym.make("Pendulum-v1"), seed=0, **quickstart_settings(1))
        model.critic.stack_critics = model.critic_target.stack_critics = on
        model.learn(1500)
        models[on] = model
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            switch(on)
            start = time.perf_counter()
            models[on].learn(300, reset_num_timesteps=False)
            times[on].append((time.perf_counter() - start) / 300 * 1e3)
    for on in (True, False):
        print("on " if on else "off", " ".join(f"{x:.2f}" for x in times[on]))
    pairs = [a / b for a, b in zip(times[True], times[False], strict=True)]
    on_median, off_median = statistics.median(times[True]), statistics.median(times[False])
    print("ms per step (rollout + update): median on", round(on_median, 2), "off", round(off_median, 2))
    print(
        "median paired ratio on/off",
        round(statistics.median(pairs), 3),
        "; ratio of medians",
        round(on_median / off_median, 3),
    )


if __name__ == "__main__":
    main()
