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


@pytest.fixture(scope="session")
def postgres_urls():
    """The SQLAlchemy URLs (``.socket``, ``.tcp`` with a password) of one database on a real PostgreSQL server started
    for this session (tests/postgres.py), stopped and deleted afterwards; skips with the reason where no server can be
    started."""
    pytest.importorskip("psycopg2", reason="no PostgreSQL driver: pip install -e '.[zoo]' (psycopg2-binary)")
    from postgres import PostgresUnavailable, postgres_server

    try:
        server = postgres_server()
        urls = server.__enter__()
    except PostgresUnavailable as error:
        pytest.skip(f"no PostgreSQL server: {error}")
    yield urls
    server.__exit__(None, None, None)
