"""The quickstart's settings and its cost script's models (examples/quickstart.py, examples/quickstart_cost.py)."""

import sys
from pathlib import Path

import pytest
import torch as th
from stable_baselines3 import TD3
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_dsdpg import DSDPG

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def examples():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import quickstart
        import quickstart_cost

        yield quickstart, quickstart_cost
    finally:
        sys.path.remove(str(EXAMPLES))


def test_quickstart_settings_are_the_small_ones_with_a_faster_target(examples):
    quickstart, _ = examples
    settings = quickstart.quickstart_settings(1)
    assert settings["tau"] == 0.02
    assert {k: v for k, v in settings.items() if k not in ("tau", "action_noise")} == {
        k: v for k, v in quickstart.small_settings(1).items() if k != "action_noise"
    }


def test_the_cost_scripts_models_share_the_quickstarts_settings(examples):
    _, cost = examples
    today, before, td3 = cost.build("today", 0), cost.build("before", 0), cost.build("td3", 0)
    assert isinstance(today, DSDPG) and isinstance(before, DSDPG) and isinstance(td3, TD3)
    for model in (today, before, td3):
        assert (model.tau, model.learning_rate, model.gamma, model.batch_size, model.learning_starts) == (
            0.02,
            1e-3,
            0.98,
            128,
            1000,
        )
    assert today.critic.optimizer.param_groups[0]["fused"] is True
    assert before.critic.optimizer.param_groups[0]["foreach"] is True
    assert before.policy_kwargs["share_critic_noise"] and before.target_returns == "model"
    assert cost.build("today", 0, tau=0.005, dsdpg_kwargs={"gradient_weight": 0.5}).tau == 0.005
    assert cost.build("today", 0, dsdpg_kwargs={"gradient_weight": 0.5}).gradient_weight == 0.5


def test_the_evaluation_env_is_seeded(examples):
    quickstart, _ = examples
    model = DSDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), seed=0, device="cpu")
    th.manual_seed(0)
    first, second, other = (
        evaluate_policy(model, quickstart.evaluation_env(seed), n_eval_episodes=2, deterministic=True)[0] for seed in (0, 0, 1)
    )
    assert first == second
    assert first != other
