"""Helpers shared by the test modules: the small DSDPG configuration of the quick training tests, waiting for a
condition, central finite differences, float64 DSDPG models for gradient checks, and the synthetic linear-Gaussian
transition that both world models must recover."""

import dataclasses
import json
import time
import zipfile
from collections.abc import Callable

import numpy as np
import torch as th
from torch import nn

from sb3_dsdpg import DSDPG
from sb3_dsdpg.targets import sobolev_td_targets

# ----------------------------------------------------------------------------------------------------------------------
# The small configuration of the quick training tests, and waiting for a condition
# ----------------------------------------------------------------------------------------------------------------------


def small_kwargs(**overrides) -> dict:
    """
    Keyword arguments of a small DSDPG (fresh dicts at every call): 32x32 actor and critic with a 16-wide noise net, a
    cVAE world model with 32-wide layers, batch 32, 4 samples. ``overrides`` add keys or replace them whole.
    """
    return {
        "policy_kwargs": dict(net_arch=[32, 32], noise_net_arch=[16]),
        "world_model_kwargs": dict(encoder_arch=[32], decoder_arch=[32], prior_arch=[32]),
        "batch_size": 32,
        "n_samples": 4,
        **overrides,
    }


def tiny_kwargs(**overrides) -> dict:
    """
    Keyword arguments of the tiny DSDPG of the save/load and replay-buffer tests: 16x16 actor and critic, a cVAE world
    model with 16-wide layers, batch 32, 4 samples, 50 random steps, seed 0. ``overrides`` add keys or replace them.
    """
    return {
        "batch_size": 32,
        "learning_starts": 50,
        "n_samples": 4,
        "policy_kwargs": dict(net_arch=[16, 16]),
        "world_model_kwargs": dict(encoder_arch=[16], decoder_arch=[16], prior_arch=[16]),
        "seed": 0,
        **overrides,
    }


def zip_without(source, target, keys) -> None:
    """Copy a saved model zip from ``source`` to ``target`` without ``keys`` in its ``data`` entry (an older save)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "data":
                data = json.loads(content)
                for key in keys:
                    del data[key]
                content = json.dumps(data).encode()
            dst.writestr(item, content)


def small_dsdpg(env, **overrides) -> DSDPG:
    """An ``MlpPolicy`` DSDPG on ``env`` (an ID or an env) with :func:`small_kwargs`."""
    return DSDPG("MlpPolicy", env, **small_kwargs(**overrides))


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------------------------------------------------
# Finite-difference checks
# ----------------------------------------------------------------------------------------------------------------------


def fd_jacobian(fn, x: th.Tensor, eps: float = 1e-6) -> th.Tensor:
    """Central differences of ``fn`` (each row depends on its own row of ``x``) in each column of ``x`` -> (B, ..., D)."""
    cols = []
    for j in range(x.shape[1]):
        step = th.zeros_like(x)
        step[:, j] = eps
        cols.append((fn(x + step) - fn(x - step)) / (2 * eps))
    return th.stack(cols, dim=-1)


def float64_model(
    env_id: str,
    architecture: str,
    world_model: str = "cvae",
    distributional: bool = True,
    share_critic_noise: bool = False,
    **kwargs,
) -> DSDPG:
    """
    A small float64 DSDPG whose world-model normalisers have non-trivial statistics (so the checks cover them); a
    RealNVP world model is moved away from its identity initialisation, so that its Jacobians are not trivial.
    ``share_critic_noise``: the policy's switch (the fixtures of ``critic_step_values`` were written with ``True``).
    """
    wm_kwargs = (
        dict(encoder_arch=[32], decoder_arch=[32, 32], prior_arch=[32]) if world_model == "cvae" else dict(hidden_arch=[32])
    )
    model = DSDPG(
        "MlpPolicy",
        env_id,
        distributional=distributional,
        n_samples=4 if distributional else 1,
        n_target_model_draws=2 if distributional else 1,
        world_model=world_model,
        # SiLU: smooth, so that finite differences hold everywhere (and the fixtures were written with it)
        policy_kwargs=dict(
            net_arch=[32, 32],
            critic_architecture=architecture,
            noise_net_arch=[16],
            activation_fn=nn.SiLU,
            share_critic_noise=share_critic_noise,
        ),
        world_model_kwargs=wm_kwargs,
        learning_starts=0,
        seed=0,
        device="cpu",
        **kwargs,
    )
    model.policy.double()
    if model.world_model is None:  # the return-only baseline
        return model
    model.world_model.double()
    normalizers = [model.world_model.obs_normalizer, model.world_model.target_normalizer]
    if model.reward_model is not None:  # the learned reward (reward_fn="learned", the default)
        model.reward_model.double()
        normalizers += [model.reward_model.obs_normalizer, model.reward_model.reward_normalizer]
    with th.no_grad():
        if world_model == "realnvp":
            for param in model.world_model.parameters():
                param.add_(0.2 * th.randn_like(param))
        for norm in normalizers:
            norm.mean.uniform_(-0.5, 0.5)
            norm.var.uniform_(0.5, 2.0)
    return model


def float64_batch(model: DSDPG, batch: int = 5, seed: int = 0, obs_from_space: bool = False):
    """Observations (from the observation space, or uniform in [-1, 1]) and actions inside the bounds, in float64."""
    rng = np.random.default_rng(seed)
    if obs_from_space:
        obs = np.stack([model.observation_space.sample() for _ in range(batch)])
    else:
        obs = rng.uniform(-1, 1, size=(batch, *model.observation_space.shape))
    actions = rng.uniform(-0.8, 0.8, size=(batch, model.action_space.shape[0]))
    return th.as_tensor(obs, dtype=th.float64), th.as_tensor(actions, dtype=th.float64)


def model_targets(
    model: DSDPG, obs, actions: th.Tensor, dones: th.Tensor, gamma=0.9, seed: int = 123, directions=None, **options
):
    """
    :func:`sobolev_td_targets` with ``model``'s networks and :class:`TargetOptions` (target smoothing 0.2 clipped at
    0.5), every random draw fixed by ``seed`` so that repeated calls differ only in their inputs; ``options`` override
    fields of the options (``deterministic_critic``, ``sobolev_inputs``, ...); ``directions`` are passed on.
    """
    th.manual_seed(seed)
    target_options = dataclasses.replace(model.target_options, target_policy_noise=0.2, target_noise_clip=0.5, **options)
    networks = (model.world_model, model.actor_target, model.critic_target, model.observation_space)
    return sobolev_td_targets(*networks, obs, actions, dones, gamma, target_options, directions)


# ----------------------------------------------------------------------------------------------------------------------
# A known stochastic transition for the world models
# ----------------------------------------------------------------------------------------------------------------------

NOISE_STD = th.tensor([0.05, 0.2, 0.1])  # of (Delta s_0, Delta s_1, r)


def linear_gaussian_transition(obs: th.Tensor, actions: th.Tensor, gen: th.Generator) -> tuple[th.Tensor, th.Tensor]:
    """Linear-Gaussian dynamics: s' = s + A s + B a + noise, r = c.s + d a + noise."""
    mean_delta = th.stack([0.1 * obs[:, 1] + 0.3 * actions[:, 0], -0.2 * obs[:, 0] + 0.1 * actions[:, 0]], dim=-1)
    mean_reward = obs[:, 0] - 0.5 * actions[:, 0]
    noise = th.randn(obs.shape[0], 3, generator=gen) * NOISE_STD
    return obs + mean_delta + noise[:, :2], mean_reward + noise[:, 2]


def fit_and_check_linear_gaussian(model: th.nn.Module, n_steps: int) -> tuple[th.Tensor, dict]:
    """
    Fit a world model (2-D state, 1-D action) to the linear-Gaussian transition by Adam on its own ``loss``, then
    check its samples at three test points: mean within 0.04 of the truth (a fifth of the largest noise std), std
    within 30 % of the true noise std. Returns the last loss and its parts.
    """
    gen = th.Generator().manual_seed(0)
    optimizer = th.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(n_steps):
        obs = th.rand(256, 2, generator=gen) * 2 - 1
        actions = th.rand(256, 1, generator=gen) * 2 - 1
        next_obs, rewards = linear_gaussian_transition(obs, actions, gen)
        loss, parts = model.loss(obs, actions, next_obs, rewards)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_obs = th.tensor([[0.5, -0.5], [-0.8, 0.2], [0.0, 0.9]])
    test_actions = th.tensor([[0.7], [-0.3], [0.0]])
    with th.no_grad():
        next_obs, rewards = model.sample(test_obs, test_actions, n_samples=4000)
    samples = th.cat([next_obs - test_obs.unsqueeze(1), rewards.unsqueeze(-1)], dim=-1)  # (3, 4000, 3)
    expected_mean = th.stack(
        [
            0.1 * test_obs[:, 1] + 0.3 * test_actions[:, 0],
            -0.2 * test_obs[:, 0] + 0.1 * test_actions[:, 0],
            test_obs[:, 0] - 0.5 * test_actions[:, 0],
        ],
        dim=-1,
    )
    assert (samples.mean(1) - expected_mean).abs().max() < 0.04, samples.mean(1) - expected_mean
    ratio = samples.std(1) / NOISE_STD
    assert ((ratio > 0.7) & (ratio < 1.3)).all(), ratio
    return loss, parts


# ----------------------------------------------------------------------------------------------------------------------
# Fixtures written by an earlier version of the code (tests/fixtures/make_fixtures.py)
# ----------------------------------------------------------------------------------------------------------------------

FIXTURE_MODEL_KWARGS = dict(
    learning_starts=100,
    batch_size=32,
    n_samples=4,
    policy_kwargs=dict(net_arch=[16, 16], noise_net_arch=[8]),
    world_model_kwargs=dict(latent_dim=4, encoder_arch=[16], decoder_arch=[16], prior_arch=[16]),
    seed=0,
    device="cpu",
)


def fixture_observations() -> np.ndarray:
    """Eight fixed Pendulum-v1 observations ``(cos theta, sin theta, theta dot)`` around the circle."""
    theta = np.linspace(-np.pi, np.pi, 8, endpoint=False)
    return np.stack([np.cos(theta), np.sin(theta), np.linspace(-6.0, 6.0, 8)], axis=-1).astype(np.float32)


def network_state_dict_keys() -> dict[str, list[str]]:
    """State-dict keys of the critics (factorized and concat) and world models (cVAE and RealNVP) of a small model."""
    from sb3_dsdpg.world_models import CVAEWorldModel, RealNVPWorldModel

    keys = {}
    for architecture in ("factorized", "concat"):
        policy_kwargs = dict(net_arch=[8, 8], noise_net_arch=[4], critic_architecture=architecture)
        model = DSDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs, device="cpu", sobolev=False)
        keys[f"critic_{architecture}"] = list(model.critic.state_dict())
    cvae = CVAEWorldModel(3, 1, latent_dim=2, encoder_arch=[8, 8], decoder_arch=[8], prior_arch=[])
    keys["cvae"] = list(cvae.state_dict())
    keys["realnvp"] = list(RealNVPWorldModel(3, 1, n_couplings=2, hidden_arch=[8, 8]).state_dict())
    return keys


# DSDPG's defaults before 2026-12-08, which the fixtures and the pinned numbers were written with: the max-sliced
# V-statistic loss, the cVAE's own reward, rewards scaled by the replay's std, the hybrid target's Jacobian at the
# standardised noise and the actor's mean over fresh draws per row.
OLD_DEFAULTS: dict = dict(
    loss="msmmd",
    unbiased_mmd=False,
    reward_fn=None,
    reward_scale="auto",
    hybrid_latent="standard",
    actor_mean="per_row",
)

# The critic variants, each a setting of the switches that changes what one critic step computes.
CRITIC_VARIANTS: dict[str, dict] = {
    "dsdpg": dict(),
    "dsdpg_replay_actions": dict(critic_actions="replay"),
    "dsdpg_mmd_gaussian_concat": dict(loss="mmd", kernel="gaussian", kernel_bandwidth=[0.5, 2.0], architecture="concat"),
    "dsdpg_realnvp": dict(world_model="realnvp"),
    "dsdpg_unnormalized": dict(normalize_samples=False),
    "mage": dict(distributional=False),
    "return_only": dict(sobolev=False),
    "state_action": dict(sobolev_inputs="state_action"),
    "directional": dict(sobolev_directions=1),
    "state_action_directional": dict(sobolev_inputs="state_action", sobolev_directions=3),
    "mage_state_action": dict(distributional=False, sobolev_inputs="state_action"),
    "mage_directional": dict(distributional=False, sobolev_directions=1),
}


def critic_step_values(name: str) -> dict[str, float]:
    """
    One critic loss of the variant ``name`` on a fixed float64 Pendulum-v1 batch, seed and directions, with the
    summaries the training step logs and the norm of the loss's gradient in the critic's parameters.
    """
    from stable_baselines3.common import policies as sb3_policies
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    kwargs = {**OLD_DEFAULTS, **CRITIC_VARIANTS[name]}  # the fixtures predate the new defaults
    architecture = kwargs.pop("architecture", "factorized")
    if kwargs.get("sobolev", True):  # the fixtures predate the hybrid target: the world model's returns
        kwargs.setdefault("target_returns", "model")
    # The fixtures predate fresh critic noise per batch row: one draw set shared by the batch.
    model = float64_model("Pendulum-v1", architecture, share_critic_noise=True, **kwargs)
    preprocess = sb3_policies.preprocess_obs
    sb3_policies.preprocess_obs = lambda obs, space, normalize_images=True: obs  # keep float64
    th.set_default_dtype(th.float64)  # the critic noise drawn inside the loss
    try:
        obs, actions = float64_batch(model, batch=6, seed=5)
        gen = th.Generator().manual_seed(5)
        next_obs = obs + 0.1 * th.randn(obs.shape, generator=gen, dtype=th.float64)
        rewards = th.randn(6, 1, generator=gen, dtype=th.float64)
        dones = th.tensor([[0.0], [1.0], [0.0], [0.0], [0.0], [1.0]])
        data = ReplayBufferSamples(obs, actions, next_obs, dones, rewards)
        th.manual_seed(0)
        directions = model.sample_directions(6)
        th.manual_seed(1)
        step = model._critic_loss(data, 0.9, directions)
        step.loss.backward()
        grad_norm = th.cat([p.grad.flatten() for p in model.critic.parameters() if p.grad is not None]).norm()
        online = step.online
        out = {"loss": step.loss.item(), "return_mean": online.z.mean().item(), "critic_grad_norm": grad_norm.item()}
        if online.grad is not None:
            out["grad_norm_mean"] = online.grad.norm(dim=-1).mean().item()
        return out
    finally:
        th.set_default_dtype(th.float32)
        sb3_policies.preprocess_obs = preprocess
