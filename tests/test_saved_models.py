"""A model saved by an earlier version loads, keeps its networks' state-dict keys and predicts the same actions.

The fixtures (``tests/fixtures``, written by ``make_fixtures.py``) were saved by the code from before the networks
were built with SB3's ``create_mlp`` instead of a hand-written MLP builder.
"""

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch as th
from helpers import FIXTURE_MODEL_KWARGS, fixture_observations, network_state_dict_keys

from sb3_dsdpg import DSDPG

FIXTURES = Path(__file__).parent / "fixtures"
ZIP = FIXTURES / "dsdpg_pendulum_v1.zip"


def _saved_state_dicts() -> dict[str, dict[str, th.Tensor]]:
    with zipfile.ZipFile(ZIP) as archive:
        return {name: th.load(io.BytesIO(archive.read(f"{name}.pth"))) for name in ("policy", "world_model")}


def test_old_zip_loads_and_predicts_the_same_actions():
    model = DSDPG.load(ZIP, device="cpu")
    assert model.world_model is not None
    # Saved before the learned reward, the U-statistic, the held latent and the exact actor mean: what it did then.
    assert model.reward_fn is None and model.reward_model is None
    assert (model.unbiased_mmd, model.hybrid_latent, model.actor_mean) == (False, "standard", "per_row")
    saved = _saved_state_dicts()
    for name, module in (("policy", model.policy), ("world_model", model.world_model)):
        state = module.state_dict()
        assert state.keys() == saved[name].keys(), name
        assert all(th.equal(state[key], saved[name][key]) for key in state), name
    actions, _ = model.predict(fixture_observations(), deterministic=True)
    np.testing.assert_allclose(actions, np.load(FIXTURES / "dsdpg_pendulum_v1_actions.npy"), rtol=0, atol=1e-6)


def test_old_state_dicts_load_into_new_networks_without_missing_or_unexpected_keys():
    model = DSDPG("MlpPolicy", "Pendulum-v1", **FIXTURE_MODEL_KWARGS)
    saved = _saved_state_dicts()
    critic = {key.removeprefix("critic."): value for key, value in saved["policy"].items() if key.startswith("critic.")}
    for module, state in ((model.critic, critic), (model.world_model, saved["world_model"]), (model.policy, saved["policy"])):
        result = module.load_state_dict(state, strict=False)
        assert result.missing_keys == [] and result.unexpected_keys == [], result


def test_networks_keep_their_state_dict_keys():
    """Both critic architectures and both world models: the keys the earlier MLP builder gave."""
    expected = json.loads((FIXTURES / "state_dict_keys.json").read_text())
    assert network_state_dict_keys() == expected
