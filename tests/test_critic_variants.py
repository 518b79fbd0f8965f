"""The critic variants (DSDPG, the MAGE and return-only switches, full and directional Sobolev samples): picked once
when the model is set up, and each computing the critic loss that the code from before that split computed on a fixed
float64 batch and seed (``tests/fixtures/critic_losses.json``, written by ``make_fixtures.py``)."""

import json
import zipfile
from pathlib import Path

import pytest
from helpers import CRITIC_VARIANTS, critic_step_values
from stable_baselines3.common.logger import configure

from sb3_dsdpg import DSDPG
from sb3_dsdpg import dsdpg as dsdpg_module

EXPECTED = json.loads((Path(__file__).parent / "fixtures" / "critic_losses.json").read_text())
VARIANT_ATTRIBUTES = ("_critic_targets", "_online_samples", "_critic_objective")


@pytest.mark.parametrize("name", sorted(CRITIC_VARIANTS))
def test_each_variant_gives_the_critic_loss_it_gave_before(name):
    values = critic_step_values(name)
    assert values.keys() == EXPECTED[name].keys()
    for key, value in values.items():
        assert value == pytest.approx(EXPECTED[name][key], rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(), ("_hybrid_targets", "_online_action_gradient", "_distributional_objective")),
        (dict(target_returns="model"), ("_sobolev_targets", "_online_action_gradient", "_distributional_objective")),
        (dict(distributional=False), ("_hybrid_targets", "_online_action_gradient", "_deterministic_objective")),
        (dict(sobolev=False), ("_return_targets", "_online_returns", "_distributional_objective")),
        (dict(sobolev=False, distributional=False), ("_return_targets", "_online_returns", "_td_objective")),
        (
            dict(sobolev_inputs="state_action"),
            ("_hybrid_targets", "_online_state_action_gradient", "_distributional_objective"),
        ),
        (dict(sobolev_directions=1), ("_hybrid_targets", "_online_directional", "_distributional_objective")),
        (
            dict(sobolev_inputs="state_action", sobolev_directions=2, distributional=False),
            ("_hybrid_targets", "_online_directional", "_deterministic_objective"),
        ),
    ],
)
def test_the_variant_is_picked_at_setup_and_again_at_load(tmp_path, kwargs, expected):
    model = DSDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), device="cpu", **kwargs)
    assert [getattr(model, name) for name in VARIANT_ATTRIBUTES] == [getattr(model, name) for name in expected]
    model.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        assert not set(VARIANT_ATTRIBUTES) & json.loads(archive.read("data")).keys()
    loaded = DSDPG.load(tmp_path / "model.zip", device="cpu")
    assert [getattr(loaded, name) for name in VARIANT_ATTRIBUTES] == [getattr(loaded, name) for name in expected]


# The train/ keys each variant logs over 20 updates (learning_starts=80, warm-up included): those of the code before,
# with the learned reward's loss wherever there is a world model (reward_fn="auto"), and the reward scale only where it
# is found from the replay (reward_scale="auto"; the default 1.0 is not logged).
COMMON_KEYS = {"actor_loss", "critic_loss", "learning_rate", "n_updates", "return_mean"}
WORLD_MODEL_KEYS = {"world_model_loss", "world_model_warmup_loss", "model_target_gap", "grad_norm_mean", "reward_model_loss"}
CVAE_KEYS = {"world_model_kl", "world_model_recon"}


@pytest.mark.parametrize(
    "kwargs, keys",
    [
        (dict(), COMMON_KEYS | WORLD_MODEL_KEYS | CVAE_KEYS),
        (dict(reward_scale="auto"), COMMON_KEYS | WORLD_MODEL_KEYS | CVAE_KEYS | {"reward_scale"}),
        (dict(reward_fn=None), COMMON_KEYS | (WORLD_MODEL_KEYS - {"reward_model_loss"}) | CVAE_KEYS),
        (dict(distributional=False), COMMON_KEYS | WORLD_MODEL_KEYS | CVAE_KEYS),
        (dict(sobolev=False), COMMON_KEYS),
        (dict(sobolev=False, reward_scale="auto"), COMMON_KEYS | {"reward_scale"}),
        (dict(sobolev_inputs="state_action"), COMMON_KEYS | WORLD_MODEL_KEYS | CVAE_KEYS | {"state_grad_norm_mean"}),
        (
            dict(world_model="realnvp", world_model_kwargs=dict(hidden_arch=[8], n_couplings=2)),
            COMMON_KEYS | WORLD_MODEL_KEYS | {"world_model_nll"},
        ),
    ],
)
def test_logged_keys_of_each_variant(monkeypatch, kwargs, keys):
    monkeypatch.setattr(dsdpg_module, "MODEL_GAP_INTERVAL", 10)  # measured on updates 10 and 20
    settings = dict(
        learning_starts=80,
        batch_size=16,
        n_samples=4,
        policy_kwargs=dict(net_arch=[8], noise_net_arch=[4]),
        world_model_kwargs=dict(latent_dim=2, encoder_arch=[8], decoder_arch=[8], prior_arch=[8]),
        seed=0,
        device="cpu",
    )
    model = DSDPG("MlpPolicy", "Pendulum-v1", **{**settings, **kwargs})
    model.set_logger(configure(None, []))
    recorded = set()
    record = model.logger.record

    def record_and_remember(key, value, exclude=None):
        recorded.add(key)
        record(key, value, exclude)

    model.logger.record = record_and_remember
    model.learn(100)
    assert model._n_updates == 20
    assert {key.removeprefix("train/") for key in recorded if key.startswith("train/")} == keys
