"""Shared test settings: one torch thread per test process (xdist workers run side by side on 2 cores), and the
float64 fixture of the finite-difference checks."""

import pytest
import torch
from stable_baselines3.common import policies as sb3_policies

torch.set_num_threads(1)


@pytest.fixture
def float64_observations(monkeypatch):
    """SB3's preprocessing casts Box observations to float32; keep float64 so that finite differences are exact enough."""
    monkeypatch.setattr(sb3_policies, "preprocess_obs", lambda obs, space, normalize_images=True: obs)
