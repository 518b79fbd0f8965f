"""The DSDPG algorithm: hyperparameters, checks and the training step (arXiv 2601.20071, DSDPG).

This module owns :class:`DSDPG`, an SB3 ``OffPolicyAlgorithm``: rollouts, replay buffer, VecEnvs, HER,
callbacks and logging are inherited; what is written here is the set of hyperparameters, their checks, the
world model's place in saving, and ``train()``: world-model step, Sobolev TD targets, critic step, delayed
actor step and Polyak updates. The critic variant (DSDPG, the MAGE and return-only baselines, full or directional
Sobolev samples) is picked once, when the model is set up (:meth:`DSDPG._select_critic_variant`).
"""

import functools
import io
import json
import math
import pathlib
import zipfile
from collections import defaultdict
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import json_to_data
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, PyTorchObs, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import get_parameters_by_name
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecNormalize
from torch.nn import functional as F

from sb3_dsdpg.envs import known_reward_fn
from sb3_dsdpg.losses import check_kernel, max_sliced_mmd2, mmd2, sliced_mmd2, sobolev_huber_loss
from sb3_dsdpg.policies import DSDPGPolicy, GenerativeCritic, MlpPolicy, MultiInputPolicy
from sb3_dsdpg.targets import (
    SOBOLEV_INPUTS,
    TargetOptions,
    check_flattenable,
    discount_not_done,
    flatten_obs,
    one_step_targets,
    return_td_targets,
    sobolev_td_targets,
    target_draws,
    truncate_pooled,
    unflatten_obs,
)
from sb3_dsdpg.updates import default_adam_kwargs, polyak_update
from sb3_dsdpg.world_models import CVAEWorldModel, RealNVPWorldModel, RewardModel, WorldModel, batch_variance

SelfDSDPG = TypeVar("SelfDSDPG", bound="DSDPG")


@functools.lru_cache(maxsize=16)
def _block_average(blocks: tuple[int, ...], dtype: th.dtype, device: th.device) -> th.Tensor:
    """``(D, D)``: column ``j`` averages the coordinates in the block of coordinate ``j`` (``blocks``, one per coordinate)."""
    ids = th.tensor(blocks, device=device)
    same = (ids.unsqueeze(0) == ids.unsqueeze(1)).to(dtype)
    return same / same.sum(0)


def _saved_data(path: str | pathlib.Path | io.BufferedIOBase) -> dict[str, Any] | None:
    """The ``data`` entry of a saved zip as a dict (None if it cannot be read here); a stream is left where it was."""
    try:
        if isinstance(path, str | pathlib.Path):
            candidates = [pathlib.Path(path), pathlib.Path(f"{path}.zip")]
            path = next(candidate for candidate in candidates if candidate.is_file())
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("data"))
        position = path.tell()
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        path.seek(position)
        return data
    except (StopIteration, OSError, KeyError, ValueError, zipfile.BadZipFile, AttributeError):
        return None


def _saved_algorithm(data: dict[str, Any] | None) -> str | None:
    """The module of the policy class a zip's data names (e.g. ``stable_baselines3.td3.policies``), None if unknown."""
    policy_class = (data or {}).get("policy_class")
    module = policy_class.get("__module__") if isinstance(policy_class, dict) else None
    return module if isinstance(module, str) else None


def _saved_policy_kwargs(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``policy_kwargs`` a zip's data holds, deserialised (None if absent or unreadable)."""
    if not data or "policy_kwargs" not in data:
        return None
    try:
        value = json_to_data(json.dumps({"policy_kwargs": data["policy_kwargs"]}))["policy_kwargs"]
    except (TypeError, ValueError):
        return None
    return dict(value) if isinstance(value, dict) else None


LOSSES = ("msmmd", "mmd", "sliced")
HYBRID_LATENTS = ("fixed", "standard")
ACTOR_MEANS = ("exact", "per_row")
# actor_mean="exact": shared critic-noise draws per actor step from which the factorized critic's E[phi(xi)] is taken.
ACTOR_MEAN_DRAWS = 1024
WORLD_MODELS = ("cvae", "realnvp")
CRITIC_ACTIONS = ("auto", "replay", "policy")
TARGET_RETURNS = ("auto", "model", "real")
# What target_returns="auto" means (see the ladder in docs/ablations.md).
DEFAULT_TARGET_RETURNS = "real"
# sobolev_directions="auto": the full gradient while the action has at most AUTO_FULL_GRADIENT_DIM coordinates (with
# one coordinate the two estimators are the same up to a sign), AUTO_DIRECTIONS random directional derivatives beyond
# (the cost and the evidence: docs/dsdpg.md).
AUTO_FULL_GRADIENT_DIM = 1
AUTO_DIRECTIONS = 1
# Values for the arguments a zip written by an older version lacks: what that version did.
LEGACY_DEFAULTS: dict[str, Any] = {
    "critic_actions": "replay",
    "reward_scale": 1.0,
    "normalize_samples": False,
    "world_model_warmup_steps": 0,
    "target_returns": "model",
    "reward_fn": None,
    "gradient_weight": 1.0,
    "sobolev_directions": None,
    "unbiased_mmd": False,
    "hybrid_latent": "standard",
    "actor_mean": "per_row",
}
# Rate of the running (exponential) average of the target samples' scale, per update.
SAMPLE_SCALE_RATE = 0.01
# train/model_target_gap is measured on every MODEL_GAP_INTERVAL-th batch: a target-network pass on real transitions
# costs about 6% of an update at MuJoCo sizes, 2% at the quickstart's when taken every 10th batch.
MODEL_GAP_INTERVAL = 100
WORLD_MODEL_CLASSES: dict[str, type[WorldModel]] = {
    "cvae": CVAEWorldModel,
    "realnvp": RealNVPWorldModel,
}


TDTargets = tuple[th.Tensor, th.Tensor | None]  # target returns (B, K, N) and their gradient part (None: return-only)


class OnlineSamples(NamedTuple):
    """The online critics' samples at a batch: returns and, for the Sobolev variants, their gradient part."""

    z: th.Tensor  # (B, K, N) returns
    grad: th.Tensor | None = None  # (B, K, N, A or k): dz/da, or k directional derivatives; None for return-only
    state_grad: th.Tensor | None = None  # (B, K, N, S): dz/ds of the full state_action gradient, else None

    def gradient_parts(self) -> list[th.Tensor]:
        """The gradient part's blocks, in joint-sample order: ``[dz/ds, dz/da]``, ``[dz/da]``, ``[u . dz/dx]`` or ``[]``."""
        return [g for g in (self.state_grad, self.grad) if g is not None]

    def joint(self) -> th.Tensor:
        """Joint samples ``(B, K, N, 1 + D)``: the return, then the gradient part (if any)."""
        parts = self.gradient_parts()
        return th.cat([self.z.unsqueeze(-1), *parts], dim=-1) if parts else self.z.unsqueeze(-1)


class CriticLoss(NamedTuple):
    """What the critic objective computes: the loss and the online samples it compared with the targets."""

    loss: th.Tensor
    online: OnlineSamples


class DSDPG(OffPolicyAlgorithm):
    """
    Distributional Sobolev Deterministic Policy Gradient (DSDPG).

    Paper: "Distributional value gradients for stochastic environments", Debes & Tuytelaars, ICLR 2026,
    https://arxiv.org/abs/2601.20071. A generative critic samples joint (return, action-gradient) pairs; it is
    trained by an MMD against Sobolev TD targets made differentiable by a learned cVAE world model, with
    TQC-style truncation of the largest target samples; a deterministic actor ascends the expected return. By
    default the targets' returns come from the real transitions and only their action gradients go through the world
    model and a learned reward (``target_returns``, ``reward_fn``); the paper's all-model target is
    ``target_returns="model"``, its max-sliced MMD ``loss="msmmd"`` (docs/dsdpg.md says where and why the defaults
    depart from the paper).

    Arguments shared with TD3 mean what they mean there. The others:

    :param policy: ``"MlpPolicy"``, ``"MultiInputPolicy"`` or a :class:`DSDPGPolicy` subclass
    :param env: the environment (a registered id, an env or a VecEnv)
    :param learning_rate: learning rate of actor and critic (ours: 3e-4), or a schedule
    :param buffer_size: replay buffer size
    :param learning_starts: steps collected before training starts (MAGE: 1000)
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the target updates
    :param gamma: discount factor
    :param train_freq: update every ``train_freq`` steps, or a tuple ``(n, "step" | "episode")``
    :param gradient_steps: gradient steps per rollout (-1: as many as env steps); the paper uses 10 per step
    :param action_noise: exploration noise (the zoo default is normal with sigma 0.1, as MAGE)
    :param replay_buffer_class: replay buffer class, e.g. ``HerReplayBuffer``, or SB3's ``NStepReplayBuffer``: its
        per-transition discounts scale each row's target, and the world model then learns the n-step outcome
        ``(s_{t+n}, R_n)`` of ``(s_t, a_t)`` under the behaviour policy (the transitions the buffer gives)
    :param replay_buffer_kwargs: its keyword arguments
    :param optimize_memory_usage: SB3's memory-efficient replay buffer
    :param policy_delay: critic updates per actor and target update (TD3/MAGE: 2)
    :param target_policy_noise: std of the target policy smoothing noise (TD3/MAGE: 0.2)
    :param target_noise_clip: clip of that noise (TD3/MAGE: 0.5)
    :param n_samples: critic samples per (s, a) per critic, and target samples per critic (paper: 10)
    :param n_target_model_draws: world-model draws per (s, a) in the target; each carries
        ``n_samples // n_target_model_draws`` critic draws (ours: 1; each draw carries the target's tangents,
        ``|A|`` or ``sobolev_directions``, through world model, target actor and target critics)
    :param top_samples_to_drop_per_critic: pooled target samples dropped per critic, largest returns first
        (paper: TQC-style truncation; ours: 1)
    :param sobolev: learn action gradients through the world model (False: the return-only baseline)
    :param distributional: generative critic with noise (False: one Q per critic, the MAGE baseline; with
        ``sobolev=False`` too, TD3's squared TD error on real transitions, the ladder's first rung)
    :param loss: ``"mmd"`` (default: plain MMD on the joint vectors), ``"sliced"`` (the mean over
        ``n_slice_candidates`` random directions per row of the 1-D MMD of the projections) or ``"msmmd"`` (the
        paper's max-sliced MMD, one searched direction per row). A row's target samples come from one transition, so
        the loss must be minimised, over the batch, by the mixture of the rows' targets: MMD^2 and its mean over
        directions are linear in the target law and are, the per-row maximum over directions is not (it learns a
        blob between the modes; docs/dsdpg.md has the measurements)
    :param unbiased_mmd: the U-statistic of MMD^2 for ``loss="mmd"`` and ``"sliced"`` (default True): the V-statistic
        weighs the online samples' repulsion by ``1/N^2`` instead of ``1/(N (N-1))`` and learns laws too narrow
        (``sigma = 0.83`` for 1 with 10 samples). ``"msmmd"`` always uses the V-statistic
    :param kernel: ``"multiquadric"`` (paper) or ``"gaussian"`` (mixture of bandwidths, as MMD-DQN)
    :param kernel_bandwidth: ``h`` of the kernel (paper: 100), or for ``"gaussian"`` a list of bandwidths
    :param n_slice_candidates: random starting directions of the max-sliced search, or random directions of
        ``loss="sliced"`` (ours: 8)
    :param n_slice_steps: projected gradient-ascent steps of that search (ours: 5)
    :param world_model: ``"cvae"`` (paper) or ``"realnvp"`` (a conditional RealNVP flow, the paper's world-model
        ablation)
    :param world_model_kwargs: keyword arguments of :class:`CVAEWorldModel` (latent_dim, encoder_arch, ...) or
        of :class:`RealNVPWorldModel` (n_couplings, hidden_arch, ...)
    :param world_model_learning_rate: learning rate of the world model's Adam optimizer (ours: 3e-4)
    :param world_model_gradient_steps: world-model updates per critic update (ours: 1)
    :param sobolev_inputs: ``"action"``: gradients with respect to the action only; ``"state_action"``: full
        Sobolev samples ``(z, dz/ds, dz/da)`` with ``s`` the flat observation (needs a Box observation space and
        the FlattenExtractor)
    :param sobolev_directions: ``None``: the gradient part of a joint sample is the full gradient (``|A|`` numbers, or
        ``|S| + |A|`` with ``sobolev_inputs="state_action"``; the paper's estimator, costing that many tangent passes);
        an int ``k``: ``k`` directional derivatives ``u_j . dz/dx`` along random directions drawn afresh for every
        batch row and update, the same for the row's online and target samples (stochastic Sobolev training,
        Czarnecki et al. 2017; the projections over all directions fix the joint law, so the fixed point is the
        same). Each ``u_j`` is uniform on the sphere of radius ``sqrt(d / k)`` (``d`` the differentiated size), so
        that ``E ||(u_j . g)_j||^2 = ||g||^2``: the gradient part weighs against the return in the kernel as the
        full gradient does. ``k`` must be in ``[1, d]``. ``"auto"`` (default): one direction when ``|A| > 1`` (it
        learned as well or better than the full gradient on the point-mass tasks and costs at most twice TQC's update
        at MuJoCo sizes), the full gradient for ``|A| = 1`` (the same estimator up to a sign) and with
        ``sobolev_inputs="state_action"`` (resolved when the model is set up and saved resolved; the evidence in
        docs/dsdpg.md)
    :param critic_actions: the actions of the critic's training batch: ``"replay"``, the replay buffer's (TD3 style),
        or ``"policy"``, the current actor's ``a = pi(s)`` at the replay states, with next state and reward from the
        world model (MAGE's loop: the value and its action gradient are learned where the actor reads them; the
        replay's done flag is kept). The world model always learns from the replay's real transitions. ``"auto"``
        (default): ``"policy"`` with a world model (``sobolev=True``), ``"replay"`` for the return-only baseline
    :param reward_scale: rewards are divided by this number before the world model, the targets and the critic see
        them: 1.0 (default) keeps the env's units, as TD3 and TQC do (the kernel's units are set by
        ``normalize_samples``, the world model and reward model normalise their own); ``"auto"`` fixes it at the first
        update to the standard deviation of the rewards then in the replay buffer (the ``learning_starts`` steps;
        1 if they do not vary), which on tasks with rare large rewards depends on the seed (12.5x across seeds 0-5 on
        the revealed-bonus toy with 4 bonuses); a positive float fixes it by hand. Logged returns
        (``train/return_mean``) are in these units. The actor is unaffected: scaling the rewards does not move
        the greedy action
    :param normalize_samples: divide each coordinate of the joint samples, online and target, by a running scale
        of the target samples before the kernel (the standard deviation over the batch, averaged over updates at
        rate 0.01; the gradient coordinates share one scale, the RMS of theirs, so that their geometry is kept).
        The kernel bandwidth then means the same on every task, and the max-sliced direction weighs returns against
        gradients in units of their spread. Together with ``reward_scale="auto"``, multiplying the rewards by a
        constant leaves training unchanged
    :param world_model_warmup_steps: world-model updates on replay batches before the first critic update, so
        that the first targets do not come from an untrained model: an int, or ``"auto"`` (default):
        ``learning_starts``, one update per transition collected by then
    :param target_returns: where the return part of the TD target comes from: ``"model"``, next state and reward
        drawn from the world model (the paper's Sobolev target); ``"real"``, the replay's real ``(s', r)`` (for
        ``sobolev=True`` the hybrid target: real returns, with the gradient part through the world model at the
        noise that explains the real transition and the target networks at the real ``s'``; needs replay actions);
        ``"auto"`` (default): ``"model"``; ``"model"`` with ``critic_actions="policy"``; ``"real"`` for
        ``sobolev=False``. With ``sobolev=False``, ``"model"``
        gives a return-only critic whose targets go through the world model (a rung of the ladder in docs/ablations.md)
    :param gradient_weight: factor on the gradient part of every joint sample, online and target, before the kernel
        (after ``normalize_samples``), distributional Sobolev variants only: 1 (default) compares the joint samples
        as the paper does; 0 leaves the returns alone in the distance (with ``target_returns="real"`` that is the
        return-only critic on real transitions); in between, the gradient part counts less (ours: a knob of the
        ladder in docs/ablations.md)
    :param reward_fn: where the target's reward (its derivative, for the hybrid target) comes from. ``"auto"``
        (default): ``"learned"`` wherever a world model is used, else None. ``"learned"``: a deterministic reward
        model ``r(s, a, s')`` (:class:`sb3_dsdpg.world_models.RewardModel`) fitted by regression on the replay beside
        the world model; on the revealed-bonus toy the cVAE's own ``dr/da`` at the posterior latent is a third of the
        true one (docs/dsdpg.md). Or a known differentiable reward
        ``r(obs, actions, next_obs)`` of torch tensors (flat
        observations, actions in the policy's ``[-1, 1]`` units, leading dimensions broadcast, env reward units) that
        replaces the world model's reward in targets through the model, as MAGE takes the task's reward function;
        ``sb3_dsdpg.envs.known_reward_fn(env)`` gives it for the shipped tasks that have one, and ``"known"`` asks
        for that function of the training env (found at construction, or at the first update of a model loaded
        without an env; the string is what is saved, so a loaded model finds it again, and it is what a zoo YAML can
        hold; with a SubprocVecEnv it is found by the env's ID, which covers Pendulum only). None: the cVAE's own
        reward (the paper's)
    :param reward_model_kwargs: keyword arguments of :class:`RewardModel` (``net_arch``, default 64x64; ``activation_fn``,
        default SiLU)
    :param reward_model_learning_rate: its Adam's learning rate (ours: 1e-3; at 3e-4 its ``dr/da`` near the toy's
        bonuses stayed a third of the truth after 10,000 steps, at 1e-3 within 27%)
    :param reward_model_gradient_steps: its regression steps per update, the first on the update's batch, the others
        on fresh batches (ours: 2; within 14% of the toy's ``dr/da`` after 10,000 env steps, against 27% with one)
    :param hybrid_latent: at which latent the hybrid target (``target_returns="real"``) differentiates the cVAE:
        ``"standard"`` (default), the standardised noise ``(eps - mu_p) / sigma_p`` of the latent the encoder infers
        from the real transition held fixed, so that the learned prior's mean and scale move with the action;
        ``"fixed"``, the latent ``eps`` itself held fixed, so that the derivative is the decoder's alone. On the toy
        ``"fixed"`` removes the standard form's artefact at the reveal (``dc'/da`` 0.19 RMS where the truth is 0) but
        loses most of ``dp'/da`` (0.013 against the true 0.069): the learned prior's mean carries the action's
        effect on the motion, so it stays an option (docs/dsdpg.md)
    :param actor_mean: how the actor's objective, the critics' mean return, averages over the critic noise:
        ``"exact"`` (default), for the factorized critic, through the mean of its noise features over
        ``ACTOR_MEAN_DRAWS`` (1024) draws taken once per actor step and shared by the batch (``z`` is affine in them,
        so this is the expectation up to that Monte-Carlo error, the same for every row); ``"per_row"``, the mean of
        ``n_samples`` fresh draws per row (the concat critic always does this)
    :param mage_gradient_weight: weight of the gradient term in the deterministic-Sobolev loss (MAGE: 5)
    :param huber_delta: Huber threshold of the deterministic-Sobolev loss (ours: 1)
    :param stats_window_size: window of the rollout statistics
    :param tensorboard_log: tensorboard log folder
    :param policy_kwargs: policy arguments (net_arch, n_critics, critic_noise_dim, critic_architecture, ...)
    :param verbose: verbosity
    :param seed: random seed
    :param device: torch device
    :param _init_setup_model: build the networks at construction
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DSDPGPolicy
    actor: th.nn.Module
    actor_target: th.nn.Module
    critic: GenerativeCritic
    critic_target: GenerativeCritic
    world_model: WorldModel | None
    # The critic variant's steps, bound in _setup_model (see _select_critic_variant).
    _critic_targets: Callable[[ReplayBufferSamples, float | th.Tensor, th.Tensor | None], TDTargets]
    _online_samples: Callable[[PyTorchObs, th.Tensor, th.Tensor, th.Tensor | None], OnlineSamples]
    _critic_objective: Callable[[ReplayBufferSamples, TDTargets, th.Tensor | None], CriticLoss]

    def __init__(
        self,
        policy: str | type[DSDPGPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1000,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        n_samples: int = 10,
        n_target_model_draws: int = 1,
        top_samples_to_drop_per_critic: int = 1,
        sobolev: bool = True,
        distributional: bool = True,
        loss: str = "mmd",
        unbiased_mmd: bool = True,
        kernel: str = "multiquadric",
        kernel_bandwidth: float | list[float] = 100.0,
        n_slice_candidates: int = 8,
        n_slice_steps: int = 5,
        world_model: str = "cvae",
        world_model_kwargs: dict[str, Any] | None = None,
        world_model_learning_rate: float = 3e-4,
        world_model_gradient_steps: int = 1,
        sobolev_inputs: str = "action",
        sobolev_directions: int | str | None = "auto",
        critic_actions: str = "auto",
        reward_scale: float | str = 1.0,
        normalize_samples: bool = True,
        world_model_warmup_steps: int | str = "auto",
        target_returns: str = "auto",
        gradient_weight: float = 1.0,
        reward_fn: Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor] | str | None = "auto",
        reward_model_kwargs: dict[str, Any] | None = None,
        reward_model_learning_rate: float = 1e-3,
        reward_model_gradient_steps: int = 2,
        hybrid_latent: str = "standard",
        actor_mean: str = "exact",
        mage_gradient_weight: float = 5.0,
        huber_delta: float = 1.0,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
        )
        self.policy_delay = policy_delay
        self.target_policy_noise = target_policy_noise
        self.target_noise_clip = target_noise_clip
        self.sobolev = sobolev
        self.distributional = distributional
        # The deterministic baseline has one Q per critic and needs a single model draw.
        self.n_samples = n_samples if distributional else 1
        self.n_target_model_draws = n_target_model_draws if distributional else 1
        self.top_samples_to_drop_per_critic = top_samples_to_drop_per_critic
        self.loss = loss
        self.unbiased_mmd = unbiased_mmd
        self.kernel = kernel
        self.kernel_bandwidth = kernel_bandwidth
        self.n_slice_candidates = n_slice_candidates
        self.n_slice_steps = n_slice_steps
        self.world_model_name = world_model
        self.world_model_kwargs = {} if world_model_kwargs is None else dict(world_model_kwargs)
        self.world_model_learning_rate = world_model_learning_rate
        self.world_model_gradient_steps = world_model_gradient_steps
        self.sobolev_inputs = sobolev_inputs
        self.sobolev_directions = sobolev_directions
        self.target_returns = target_returns
        if target_returns == "auto":  # the policy's actions have no real outcome; the return-only baseline no model
            self.target_returns = "model" if critic_actions == "policy" else DEFAULT_TARGET_RETURNS if sobolev else "real"
        self.critic_actions = critic_actions
        if critic_actions == "auto":
            self.critic_actions = "policy" if sobolev and self.target_returns == "model" else "replay"
        if isinstance(reward_fn, str) and reward_fn == "auto":  # the learned reward wherever a world model is
            reward_fn = "learned" if self._uses_world_model() else None
        self.reward_fn = reward_fn
        self.reward_model_kwargs = {} if reward_model_kwargs is None else dict(reward_model_kwargs)
        self.reward_model: RewardModel | None = None
        self.reward_model_learning_rate = reward_model_learning_rate
        self.reward_model_gradient_steps = reward_model_gradient_steps
        self.hybrid_latent = hybrid_latent
        self.actor_mean = actor_mean
        self.gradient_weight = gradient_weight
        self.reward_scale = reward_scale
        self.normalize_samples = normalize_samples
        self.world_model_warmup_steps = world_model_warmup_steps
        self._sample_scale: th.Tensor | None = None
        self._blocks: tuple[int, ...] | None = None  # of the joint coordinates (_coordinate_blocks), once known
        self.mage_gradient_weight = mage_gradient_weight
        self.huber_delta = huber_delta
        self.world_model = None
        self._check_arguments(n_samples, n_target_model_draws)
        if _init_setup_model:
            self._setup_model()

    def _check_arguments(self, n_samples: int, n_target_model_draws: int) -> None:
        """Refuse bad hyperparameters at construction, naming the argument and what is accepted."""

        def fail(message: str) -> None:
            raise ValueError(message)

        def is_int(value: Any, minimum: int) -> bool:
            """An int (not a bool) of at least ``minimum``."""
            return not isinstance(value, bool) and isinstance(value, int | np.integer) and value >= minimum

        def integer(name: str, value: Any, minimum: int, meaning: str) -> None:
            if not is_int(value, minimum):
                fail(f"{name} must be an int >= {minimum} ({meaning}), got {value!r}.")

        def real(name: str, value: Any, low: float, high: float, meaning: str, low_open: bool = False) -> None:
            ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
            if not (ok and np.isfinite(value) and (low < value if low_open else low <= value) and value <= high):
                bounds = f"{'(' if low_open else '['}{low}, {high}]".replace("inf]", "inf)")
                fail(f"{name} must be a number in {bounds} ({meaning}), got {value!r}.")

        batch_size = self.batch_size
        if not is_int(batch_size, 1):
            fail(f"batch_size must be a positive int (the minibatch size), got {batch_size!r}.")
        integer("buffer_size", self.buffer_size, 1, "transitions the replay buffer holds")
        real("learning_starts", self.learning_starts, 0, np.inf, "steps collected before the first update")
        integer("gradient_steps", self.gradient_steps, -1, "updates per rollout; -1: as many as steps collected")
        real("tau", self.tau, 0.0, 1.0, "the Polyak coefficient of the target networks; TD3's 0.005")
        integer("n_samples", n_samples, 1, "return samples per critic")
        integer("n_target_model_draws", n_target_model_draws, 1, "world-model draws per target, a divisor of n_samples")
        integer("top_samples_to_drop_per_critic", self.top_samples_to_drop_per_critic, 0, "TQC's truncation")
        integer("n_slice_candidates", self.n_slice_candidates, 0, "random starting directions of the max-sliced search")
        integer("n_slice_steps", self.n_slice_steps, 0, "ascent steps of the max-sliced search")
        integer("policy_delay", self.policy_delay, 1, "critic updates per actor update; TD3's 2")
        integer("world_model_gradient_steps", self.world_model_gradient_steps, 0, "world-model updates per update")
        integer("reward_model_gradient_steps", self.reward_model_gradient_steps, 0, "reward-model updates per update")
        real("reward_model_learning_rate", self.reward_model_learning_rate, 0.0, np.inf, "its Adam's", low_open=True)
        real("huber_delta", self.huber_delta, 0.0, np.inf, "the Huber threshold of MAGE's loss", low_open=True)
        real("mage_gradient_weight", self.mage_gradient_weight, 0.0, np.inf, "MAGE's gradient term weight; MAGE: 5")
        for noise in getattr(self.action_noise, "noises", [self.action_noise]):
            mean = getattr(noise, "_mu", None)
            if mean is not None and np.shape(mean) != self.action_space.shape:
                n = int(np.prod(self.action_space.shape))
                fail(
                    f"action_noise has shape {np.shape(mean)}, the action space {self.action_space.shape}: give it one "
                    f"mean and sigma per action dimension, e.g. NormalActionNoise(np.zeros({n}), 0.1 * np.ones({n}))."
                )
        if not (isinstance(self.gamma, int | float) and 0.0 <= self.gamma <= 1.0):
            fail(f"gamma must be a discount factor in [0, 1], got {self.gamma!r}.")
        weight = self.gradient_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight < np.inf:
            fail(f"gradient_weight must be a float >= 0 (1: the paper's joint samples), got {weight!r}.")
        if self.target_returns not in TARGET_RETURNS:
            fail(f"target_returns must be one of {TARGET_RETURNS}, got {self.target_returns!r}.")
        if self.critic_actions == "policy" and self.target_returns == "real":
            fail(
                "critic_actions='policy' needs target_returns='model': the real outcome of the policy's action is "
                "unknown (use critic_actions='replay' for the hybrid target)."
            )
        if self.reward_fn is not None and self.reward_fn not in ("known", "learned") and not callable(self.reward_fn):
            fail(
                "reward_fn must be 'auto', 'learned', 'known', None or a callable r(obs, actions, next_obs), "
                f"got {self.reward_fn!r}."
            )
        if not isinstance(self.unbiased_mmd, bool):
            fail(f"unbiased_mmd must be True or False, got {self.unbiased_mmd!r}.")
        if self.hybrid_latent not in HYBRID_LATENTS:
            fail(f"hybrid_latent must be one of {HYBRID_LATENTS}, got {self.hybrid_latent!r}.")
        if self.actor_mean not in ACTOR_MEANS:
            fail(f"actor_mean must be one of {ACTOR_MEANS}, got {self.actor_mean!r}.")
        if self.reward_fn is not None and not self._uses_world_model():
            fail("reward_fn replaces the world model's reward: it needs sobolev=True or target_returns='model'.")
        if self.loss not in LOSSES:
            fail(f"loss must be one of {LOSSES}, got {self.loss!r}.")
        check_kernel(self.kernel, self.kernel_bandwidth)
        if self.world_model_name not in WORLD_MODELS:
            fail(f"world_model must be one of {WORLD_MODELS}, got {self.world_model_name!r}.")
        if self.sobolev_inputs not in SOBOLEV_INPUTS:
            fail(f"sobolev_inputs must be one of {SOBOLEV_INPUTS}, got {self.sobolev_inputs!r}.")
        if self.sobolev_inputs == "state_action" and not self.sobolev:
            fail("sobolev_inputs='state_action' needs sobolev=True (the return-only baseline learns no gradients).")
        if self.distributional and n_samples < 2:
            fail(f"n_samples must be >= 2 with distributional=True (a distribution needs samples), got {n_samples}.")
        if n_target_model_draws < 1 or n_samples % n_target_model_draws != 0:
            fail(f"n_target_model_draws must divide n_samples ({n_samples}), got {n_target_model_draws}.")
        if self.top_samples_to_drop_per_critic < 0 or (
            self.distributional and self.top_samples_to_drop_per_critic >= n_samples
        ):
            fail(
                f"top_samples_to_drop_per_critic must be in [0, n_samples) = [0, {n_samples}) so that target samples remain, "
                f"got {self.top_samples_to_drop_per_critic}."
            )
        k = self.sobolev_directions
        if k != "auto" and k is not None and not is_int(k, 1):
            fail(
                "sobolev_directions must be 'auto', None (the full gradient) or a positive int k (k random directional "
                f"derivatives per batch row), got {k!r}."
            )
        if k != "auto" and k is not None and not self.sobolev:
            fail("sobolev_directions needs sobolev=True (the return-only baseline learns no gradients): leave it None.")
        scale = self.reward_scale
        if not (scale == "auto" or (isinstance(scale, int | float) and not isinstance(scale, bool) and 0 < scale < np.inf)):
            fail(f"reward_scale must be 'auto' or a positive float (1.0: no scaling), got {scale!r}.")
        if not isinstance(self.normalize_samples, bool):
            fail(f"normalize_samples must be True or False, got {self.normalize_samples!r}.")
        warmup = self.world_model_warmup_steps
        if warmup != "auto" and not is_int(warmup, 0):
            fail(f"world_model_warmup_steps must be 'auto' (learning_starts) or an int >= 0, got {warmup!r}.")
        if self.critic_actions not in CRITIC_ACTIONS:
            fail(f"critic_actions must be one of {CRITIC_ACTIONS}, got {self.critic_actions!r}.")
        self.target_options  # noqa: B018 (TargetOptions checks the target's noise)

    def _setup_model(self) -> None:
        if isinstance(self.sobolev_directions, str):  # "auto", resolved once the spaces are known (and saved resolved)
            # state_action is the opt-in to the whole (dz/ds, dz/da): it keeps the full gradient unless k is given.
            small = self._sobolev_dim() <= AUTO_FULL_GRADIENT_DIM
            full = not self.sobolev or self.sobolev_inputs == "state_action" or small
            self.sobolev_directions = None if full else AUTO_DIRECTIONS
        if self.sobolev_directions is not None and self.sobolev_directions > self._sobolev_dim():
            raise ValueError(
                f"sobolev_directions must be None or an int in [1, {self._sobolev_dim()}] (the size of the differentiated "
                f"input with sobolev_inputs={self.sobolev_inputs!r}), got {self.sobolev_directions}: more directions than "
                "that cost more than the full gradient (None)."
            )
        if self.reward_fn == "known" and self.env is not None:  # fail now, not at the first update
            self._known_reward_fn()
        # Adam's options default to the cheapest for the device (fused where torch has it). The saved policy_kwargs stay
        # the user's; a loaded optimizer takes its options from its saved state (older zips keep foreach).
        policy_kwargs = self.policy_kwargs
        if "optimizer_kwargs" not in policy_kwargs and policy_kwargs.get("optimizer_class", th.optim.Adam) is th.optim.Adam:
            self.policy_kwargs = {**policy_kwargs, "optimizer_kwargs": default_adam_kwargs(self.device)}
        try:
            super()._setup_model()
        finally:
            self.policy_kwargs = policy_kwargs
        self._create_aliases()
        self.actor_batch_norm_stats = get_parameters_by_name(self.actor, ["running_"])
        self.critic_batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.actor_batch_norm_stats_target = get_parameters_by_name(self.actor_target, ["running_"])
        self.critic_batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])
        if self.sobolev_inputs == "state_action":
            self.critic.check_state_gradient_support()
        if self._uses_world_model():
            check_flattenable(self.observation_space)
            self.world_model = WORLD_MODEL_CLASSES[self.world_model_name](
                spaces.flatdim(self.observation_space), self.critic.action_dim, **self.world_model_kwargs
            ).to(self.device)
            self.world_model.optimizer = th.optim.Adam(
                self.world_model.parameters(), lr=self.world_model_learning_rate, **default_adam_kwargs(self.device)
            )
        if self.reward_fn == "learned":
            obs_dim = spaces.flatdim(self.observation_space)
            self.reward_model = RewardModel(obs_dim, self.critic.action_dim, **self.reward_model_kwargs).to(self.device)
            self.reward_model.optimizer = th.optim.Adam(
                self.reward_model.parameters(), lr=self.reward_model_learning_rate, **default_adam_kwargs(self.device)
            )
        self._select_critic_variant()

    def _uses_world_model(self) -> bool:
        """Whether a world model is learned: for the Sobolev gradient part, or for return targets through it."""
        return self.sobolev or self.target_returns == "model"

    def _select_critic_variant(self) -> None:
        """
        Pick, once, the three parts of the critic step in which the variants differ:

        - the targets: Sobolev samples through the world model (``target_returns="model"``), the hybrid of real
          returns and the model's gradient part (``"real"``), or, return-only (``sobolev=False``), returns from the
          replay's real transitions or through the world model;
        - the online samples: returns only (``sobolev=False``), with ``dz/da``, with ``(dz/ds, dz/da)``
          (``sobolev_inputs="state_action"``), or with ``k`` directional derivatives (``sobolev_directions=k``);
        - the objective: the sample distance to the pooled, truncated targets (DSDPG), or (``distributional=False``,
          MAGE) Huber losses of each critic's value and gradient against the smallest target, or (neither, TD3)
          squared TD errors against the smallest target.
        """
        real = self.target_returns == "real"
        if self.sobolev:
            self._critic_targets = self._hybrid_targets if real else self._sobolev_targets
        else:
            self._critic_targets = self._return_targets if real else self._model_return_targets
        if not self.sobolev:
            self._online_samples = self._online_returns
        elif self.sobolev_directions is not None:
            self._online_samples = self._online_directional
        elif self.sobolev_inputs == "state_action":
            self._online_samples = self._online_state_action_gradient
        else:
            self._online_samples = self._online_action_gradient
        if self.distributional:
            self._critic_objective = self._distributional_objective
        else:
            self._critic_objective = self._deterministic_objective if self.sobolev else self._td_objective

    def _sobolev_dim(self) -> int:
        """Size of the input the gradient part of a joint sample differentiates: ``A``, or ``S + A`` for state_action."""
        action_dim = spaces.flatdim(self.action_space)
        return action_dim + (spaces.flatdim(self.observation_space) if self.sobolev_inputs == "state_action" else 0)

    def sample_directions(self, batch_size: int) -> th.Tensor | None:
        """
        Fresh directions ``(B, k, d)`` for directional Sobolev samples, or None for the full gradient.

        Each is uniform on the sphere of radius ``sqrt(d / k)``, so that the ``k`` directional derivatives of a
        gradient ``g`` have ``E sum_j (u_j . g)^2 = ||g||^2``.
        """
        if self.sobolev_directions is None or not self.sobolev:
            return None
        dim, k = self._sobolev_dim(), self.sobolev_directions
        u = th.randn(batch_size, k, dim, device=self.device)
        return u * (math.sqrt(dim / k) / u.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.actor_target = self.policy.actor_target
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    @staticmethod
    def _check_finite(value: th.Tensor, name: str, where: str) -> float:
        """The value as a float, or a RuntimeError naming ``where`` (e.g. ``"update 3"``) and the fixes."""
        number = value.item()
        if not np.isfinite(number):
            raise RuntimeError(
                f"Non-finite {name} ({number}) at {where}: lower the learning rates or kernel_bandwidth, "
                "check the rewards and observations for NaN/inf, or normalise them (VecNormalize)."
            )
        return number

    def _coordinate_blocks(self, dim: int) -> th.Tensor:
        """Block of each joint coordinate: 0 the return, then the gradient part (1), or ``dz/ds`` (1) and ``dz/da`` (2)."""
        blocks = th.ones(dim, dtype=th.long, device=self.device)
        blocks[0] = 0
        if self.sobolev_inputs == "state_action" and self.sobolev_directions is None and dim > 1:
            blocks[1 + spaces.flatdim(self.observation_space) :] = 2
        return blocks

    def _update_sample_scale(self, target: th.Tensor) -> th.Tensor:
        """
        The running scale ``(D,)`` of the joint coordinates, updated with the target samples ``(B, M, D)``: the
        standard deviation over the batch, the gradient coordinates of a block sharing the RMS of theirs.
        """
        flat = target.detach().reshape(-1, target.shape[-1])
        variance = batch_variance(flat)[1]
        blocks = self._blocks
        if blocks is None or len(blocks) != flat.shape[-1]:
            blocks = self._blocks = tuple(self._coordinate_blocks(flat.shape[-1]).tolist())
        scale = (variance @ _block_average(blocks, variance.dtype, variance.device)).sqrt().clamp_min(1e-8)
        previous = self._sample_scale
        if previous is None or previous.shape != scale.shape:
            self._sample_scale = scale
        else:
            previous = previous.to(device=scale.device, dtype=scale.dtype)
            self._sample_scale = previous + SAMPLE_SCALE_RATE * (scale - previous)
        return self._sample_scale

    def _distribution_loss(self, online: th.Tensor, target: th.Tensor) -> th.Tensor:
        """Sum over critics of the batch-mean distance; ``online`` ``(B, K, N, D)``, ``target`` ``(B, M, D)``."""
        if self.normalize_samples:
            scale = self._update_sample_scale(target)
            online, target = online / scale, target / scale
        if self.gradient_weight != 1.0 and online.shape[-1] > 1:
            weights = th.full((online.shape[-1],), float(self.gradient_weight), dtype=online.dtype, device=online.device)
            weights[0] = 1.0
            online, target = online * weights, target * weights
        batch, n_critics, n, dim = online.shape
        x = online.reshape(batch * n_critics, n, dim)
        y = target.unsqueeze(1).expand(-1, n_critics, -1, -1).reshape(batch * n_critics, target.shape[1], dim)
        if self.loss == "msmmd":
            dist = max_sliced_mmd2(x, y, self.kernel, self.kernel_bandwidth, self.n_slice_candidates, self.n_slice_steps)
        elif self.loss == "sliced" and dim > 1:
            dist = sliced_mmd2(x, y, self.kernel, self.kernel_bandwidth, max(self.n_slice_candidates, 1), self.unbiased_mmd)
        else:  # "mmd", and "sliced" of 1-D samples (their only direction)
            dist = mmd2(x, y, self.kernel, self.kernel_bandwidth, self.unbiased_mmd)
        assert isinstance(dist, th.Tensor)  # max_sliced_mmd2 without its direction
        return dist.reshape(batch, n_critics).mean(dim=0).sum()

    # Online samples, one method per variant (bound in _select_critic_variant); ``directions`` ``(B, k, d)`` or None.

    def _online_returns(
        self, obs: PyTorchObs, actions: th.Tensor, noise: th.Tensor, directions: th.Tensor | None
    ) -> OnlineSamples:
        """Return samples only (the return-only baseline)."""
        return OnlineSamples(self.critic(obs, actions, noise))

    def _online_action_gradient(
        self, obs: PyTorchObs, actions: th.Tensor, noise: th.Tensor, directions: th.Tensor | None
    ) -> OnlineSamples:
        """Return samples and their action gradients ``dz/da``."""
        return OnlineSamples(*self.critic.forward_with_action_grad(obs, actions, noise))

    def _online_state_action_gradient(
        self, obs: PyTorchObs, actions: th.Tensor, noise: th.Tensor, directions: th.Tensor | None
    ) -> OnlineSamples:
        """Return samples with ``dz/da`` and ``dz/ds`` (full Sobolev samples, ``s`` the flat observation)."""
        z, state_grad, grad = self.critic.forward_with_state_action_grad(obs, actions, noise)
        return OnlineSamples(z, grad, state_grad)

    def _online_directional(
        self, obs: PyTorchObs, actions: th.Tensor, noise: th.Tensor, directions: th.Tensor | None
    ) -> OnlineSamples:
        """Return samples and their ``k`` directional derivatives ``u_j . dz/dx`` along each row's directions."""
        assert directions is not None
        return OnlineSamples(*self.critic.forward_with_directional_grad(obs, actions, noise, directions))

    # Targets, one method per variant.

    @property
    def target_options(self) -> TargetOptions:
        """The sample counts and noise of the TD targets."""
        return TargetOptions(
            n_samples=self.n_samples,
            n_model_draws=self.n_target_model_draws,
            target_policy_noise=self.target_policy_noise,
            target_noise_clip=self.target_noise_clip,
            deterministic_critic=not self.distributional,
            sobolev_inputs=self.sobolev_inputs,
            reward_fn=self._target_reward_fn(),
            hold_latent=self.hybrid_latent == "fixed",
        )

    def _target_reward_fn(self) -> Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor] | None:
        """
        The reward the targets take in place of the world model's, in the critic's units: the learned reward model
        itself (fitted in them; the targets carry tangents through its MLP by hand), ``reward_fn`` divided by
        ``reward_scale``, or None (the world model's).
        """
        if self.reward_fn == "learned":
            return self.reward_model
        return None if self.reward_fn is None else self._scaled_reward_fn

    def _scaled_reward_fn(self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor) -> th.Tensor:
        """``reward_fn`` in the critic's units (divided by ``reward_scale``)."""
        assert self.reward_fn is not None and not isinstance(self.reward_scale, str)
        reward_fn = self._known_reward_fn() if self.reward_fn == "known" else self.reward_fn
        return reward_fn(obs, actions, next_obs) / self.reward_scale

    def _known_reward_fn(self) -> Callable[[th.Tensor, th.Tensor, th.Tensor], th.Tensor]:
        """The training env's known reward for ``reward_fn="known"``, found once per env and kept out of the zip."""
        env = self.get_env()
        cached = getattr(self, "_known_reward", None)
        if cached is None or cached[0] is not env:
            try:
                self._known_reward = (env, known_reward_fn(self._training_env()))
            except ValueError as error:
                raise ValueError(f"reward_fn='known': {error}") from error
        return self._known_reward[1]

    def _training_env(self) -> GymEnv:
        """The first env of the training VecEnv, for ``reward_fn="known"`` (raw observations: no VecNormalize)."""
        venv = self.get_env()
        if venv is None:
            raise ValueError("reward_fn='known' needs the training env: pass env= to load or call set_env first.")
        while isinstance(venv, VecEnvWrapper):
            if isinstance(venv, VecNormalize):
                raise ValueError(
                    "reward_fn='known' computes the reward from raw observations, which VecNormalize changes: train "
                    "without VecNormalize (normalize: false in the zoo) or pass your own reward_fn."
                )
            venv = venv.venv
        return venv.envs[0] if isinstance(venv, DummyVecEnv) else venv.get_attr("spec")[0].id

    def _sobolev_targets(
        self,
        data: ReplayBufferSamples,
        discount: float | th.Tensor,
        directions: th.Tensor | None,
        real_outcome: tuple[PyTorchObs, th.Tensor] | None = None,
    ) -> TDTargets:
        """Sobolev target samples ``(B, K, N)`` and their gradient part, through the world model (see ``real_outcome``
        of :func:`sobolev_td_targets` for the hybrid)."""
        assert self.world_model is not None
        networks = (self.world_model, self.actor_target, self.critic_target, self.observation_space)
        batch = (data.observations, data.actions, data.dones)
        return sobolev_td_targets(*networks, *batch, discount, self.target_options, directions, real_outcome=real_outcome)

    def _hybrid_targets(
        self, data: ReplayBufferSamples, discount: float | th.Tensor, directions: th.Tensor | None
    ) -> TDTargets:
        """The hybrid Sobolev target: returns from the real ``(s', r)``, the gradient part through the world model."""
        return self._sobolev_targets(data, discount, directions, real_outcome=(data.next_observations, data.rewards))

    def _model_return_targets(
        self, data: ReplayBufferSamples, discount: float | th.Tensor, directions: th.Tensor | None = None
    ) -> tuple[th.Tensor, None]:
        """Return-only target samples ``(B, K, N)`` with next state and reward drawn from the world model."""
        assert self.world_model is not None
        options, actions = self.target_options, data.actions
        flat_obs = flatten_obs(self.observation_space, data.observations, actions.dtype)
        networks = (self.world_model, self.actor_target, self.critic_target, self.observation_space)
        with th.no_grad():
            draws = target_draws(self.world_model, self.critic_target, flat_obs, actions, options)
            discount = discount_not_done(discount, data.dones, actions.dtype)
            y = one_step_targets(*networks, flat_obs, actions, discount, *draws, options.reward_fn)
        return y, None

    def _return_targets(
        self, data: ReplayBufferSamples, discount: float | th.Tensor, directions: th.Tensor | None = None
    ) -> tuple[th.Tensor, None]:
        """Return-only target samples ``(B, K, N)`` from the batch's next states and rewards (``directions`` unused)."""
        options = self.target_options
        y = return_td_targets(
            self.actor_target, self.critic_target, data.next_observations, data.rewards, data.dones, discount, options
        )
        return y, None

    # Critic objectives, one method per variant.

    def _distributional_objective(
        self, data: ReplayBufferSamples, targets: TDTargets, directions: th.Tensor | None
    ) -> CriticLoss:
        """DSDPG: the sample distance between online joint samples and the pooled targets, largest returns dropped."""
        y, grads = targets
        target = truncate_pooled(y, grads, self.top_samples_to_drop_per_critic * self.critic.n_critics)
        noise = self.critic.sample_noise(y.shape[0], self.n_samples)
        online = self._online_samples(data.observations, data.actions, noise, directions)
        return CriticLoss(self._distribution_loss(online.joint(), target), online)

    def _deterministic_objective(
        self, data: ReplayBufferSamples, targets: TDTargets, directions: th.Tensor | None
    ) -> CriticLoss:
        """MAGE's deterministic Sobolev loss of each critic against the smallest target of the critics, with its gradient."""
        y, grads = targets
        assert grads is not None  # distributional=False needs sobolev=True
        batch_size = y.shape[0]
        idx = y[..., 0].argmin(dim=1)  # (B,)
        rows = th.arange(batch_size, device=y.device)
        y_min, g_min = y[rows, idx, 0], grads[rows, idx, 0]
        noise = th.zeros(batch_size, self.critic.n_critics, 1, self.critic.noise_dim, device=self.device)
        online = self._online_samples(data.observations, data.actions, noise, directions)
        gradient = th.cat(online.gradient_parts(), dim=-1)[:, :, 0]  # (B, K, A), state_action: (dz/ds, dz/da)
        losses = [
            sobolev_huber_loss(online.z[:, k, 0], gradient[:, k], y_min, g_min, self.huber_delta, self.mage_gradient_weight)
            for k in range(self.critic.n_critics)
        ]
        return CriticLoss(sum(losses[1:], start=losses[0]), online)

    def _td_objective(self, data: ReplayBufferSamples, targets: TDTargets, directions: th.Tensor | None) -> CriticLoss:
        """TD3: each critic's squared TD error against the smallest of the critics' targets (one Q each, ``xi = 0``)."""
        y, _ = targets
        y_min = y[:, :, 0].min(dim=1).values  # (B,)
        noise = th.zeros(y.shape[0], self.critic.n_critics, 1, self.critic.noise_dim, device=self.device)
        online = self._online_samples(data.observations, data.actions, noise, directions)
        losses = [F.mse_loss(online.z[:, k, 0], y_min) for k in range(self.critic.n_critics)]
        return CriticLoss(sum(losses[1:], start=losses[0]), online)

    # The steps of train().

    def _critic_batch(self, data: ReplayBufferSamples) -> ReplayBufferSamples:
        """The critic's batch: the replay's, with the current actor's actions ``pi(s)`` for ``critic_actions="policy"``."""
        if self.critic_actions != "policy":
            return data
        with th.no_grad():
            return data._replace(actions=self.actor(data.observations))

    def _critic_loss(
        self, data: ReplayBufferSamples, discount: float | th.Tensor, directions: th.Tensor | None = None
    ) -> CriticLoss:
        """
        The critic's loss on a replay batch: the critic's batch, its TD targets, and the variant's objective between
        the online samples and the targets, all at the same ``directions`` (directional Sobolev samples, else None).
        """
        data = self._critic_batch(data)
        targets = self._critic_targets(data, discount, directions)
        return self._critic_objective(data, targets, directions)

    def _critic_step(self, loss: CriticLoss, logs: defaultdict[str, list[float]]) -> None:
        """One gradient step of the critic on ``loss``; logs it and the online samples' means."""
        logs["critic_loss"].append(self._check_finite(loss.loss, "critic loss", f"update {self._n_updates}"))
        logs["return_mean"].append(loss.online.z.mean().item())
        if loss.online.grad is not None:
            logs["grad_norm_mean"].append(loss.online.grad.norm(dim=-1).mean().item())
        if loss.online.state_grad is not None:
            logs["state_grad_norm_mean"].append(loss.online.state_grad.norm(dim=-1).mean().item())
        self.critic.optimizer.zero_grad()
        loss.loss.backward()
        self.critic.optimizer.step()

    def _model_target_gap(self, data: ReplayBufferSamples, discount: float | th.Tensor) -> float:
        """
        RMS over the batch of the gap between one-step return targets at the replay's ``(s, a)`` with next state and
        reward drawn from the world model and with the real ones (same target networks, means over the critics'
        samples): how far the world model moves the critic's targets, whatever actions the critic learns at.
        """
        assert self.world_model is not None
        with th.no_grad():
            obs_flat = flatten_obs(self.observation_space, data.observations)
            next_flat, rewards = self.world_model.sample(obs_flat, data.actions)
            imagined = data._replace(
                next_observations=unflatten_obs(self.observation_space, next_flat[:, 0]), rewards=rewards[:, :1]
            )
            model, _ = self._return_targets(imagined, discount)
            real, _ = self._return_targets(data, discount)
        return (model.mean(dim=(1, 2)) - real.mean(dim=(1, 2))).pow(2).mean().sqrt().item()

    def _sample_batch(self, batch_size: int) -> ReplayBufferSamples:
        """A replay batch, its rewards divided by ``reward_scale``."""
        assert self.replay_buffer is not None
        data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
        if isinstance(self.reward_scale, int | float) and self.reward_scale != 1.0:
            data = data._replace(rewards=data.rewards / self.reward_scale)
        return data

    def _replay_reward_std(self) -> float:
        """Standard deviation of the rewards in the replay buffer (as ``sample`` returns them), 1 if they do not vary."""
        buffer = self.replay_buffer
        assert buffer is not None
        size = buffer.buffer_size if buffer.full else buffer.pos
        rewards = buffer._normalize_reward(buffer.rewards[:size], self._vec_normalize_env)
        std = float(np.std(rewards)) if size > 0 else 0.0
        return std if np.isfinite(std) and std > 1e-8 else 1.0

    def _before_first_update(self, batch_size: int) -> None:
        """Fix ``reward_scale="auto"`` from the replay buffer, then warm the world model up on replay batches."""
        if self.reward_scale == "auto":
            self.reward_scale = self._replay_reward_std()
            self.logger.record("train/reward_scale", self.reward_scale)
        steps = int(self.learning_starts) if self.world_model_warmup_steps == "auto" else self.world_model_warmup_steps
        if self.world_model is None or steps == 0:
            return
        logs: defaultdict[str, list[float]] = defaultdict(list)
        for step in range(steps):
            data = self._sample_batch(batch_size)
            self._world_model_step(data, logs, 1, f"world-model warm-up step {step + 1}")
            if self.reward_model is not None:
                self._reward_model_step(data, logs, 1, f"reward-model warm-up step {step + 1}")
        self.logger.record("train/world_model_warmup_loss", float(np.mean(logs["world_model_loss"][-100:])))

    def _world_model_step(
        self, data: ReplayBufferSamples, logs: defaultdict[str, list[float]], n_steps: int | None = None, where: str = ""
    ) -> None:
        """
        ``n_steps`` (default ``world_model_gradient_steps``) updates of the world model's objective on the batch;
        ``where`` names the step in errors (default: the update).
        """
        assert self.world_model is not None
        obs_flat = flatten_obs(self.observation_space, data.observations)
        next_flat = flatten_obs(self.observation_space, data.next_observations)
        for _ in range(self.world_model_gradient_steps if n_steps is None else n_steps):
            wm_loss, parts = self.world_model.loss(obs_flat, data.actions, next_flat, data.rewards)
            logs["world_model_loss"].append(
                self._check_finite(wm_loss, "world-model loss", where or f"update {self._n_updates}")
            )
            for part, value in parts.items():  # cVAE: recon, kl; RealNVP: nll
                logs[f"world_model_{part}"].append(value)
            self.world_model.optimizer.zero_grad()
            wm_loss.backward()
            self.world_model.optimizer.step()

    def _reward_model_step(
        self, data: ReplayBufferSamples, logs: defaultdict[str, list[float]], n_steps: int | None = None, where: str = ""
    ) -> None:
        """
        ``n_steps`` (default ``reward_model_gradient_steps``) regression steps of the learned reward
        (``reward_fn="learned"``): the first on ``data``, the others on fresh replay batches of its size.
        """
        assert self.reward_model is not None
        for step in range(self.reward_model_gradient_steps if n_steps is None else n_steps):
            if step > 0:
                data = self._sample_batch(data.actions.shape[0])
            obs_flat = flatten_obs(self.observation_space, data.observations)
            next_flat = flatten_obs(self.observation_space, data.next_observations)
            loss, _ = self.reward_model.loss(obs_flat, data.actions, next_flat, data.rewards)
            logs["reward_model_loss"].append(
                self._check_finite(loss, "reward-model loss", where or f"update {self._n_updates}")
            )
            self.reward_model.optimizer.zero_grad()
            loss.backward()
            self.reward_model.optimizer.step()

    def _actor_step(self, data: ReplayBufferSamples, logs: defaultdict[str, list[float]]) -> None:
        """
        Ascend the expected return, averaged over critics and samples; then the Polyak updates.

        The backward runs into the actor's parameters only (``inputs=``): the critic's weight gradients and its noise
        branch, which TD3's ``backward()`` also computes and the next critic step discards, are skipped. The actor's
        gradient is the same to the bit; the actor's loss and backward cost about 30% less, a whole update a few
        percent at most (docs/benchmarks.md). The mean over each critic's samples is taken through the mean of the
        noise features (:meth:`GenerativeCritic.mean_over_samples`), the same objective up to float round-off; with
        ``actor_mean="exact"`` over ``ACTOR_MEAN_DRAWS`` draws shared by the batch, the expectation every row reads.
        """
        if not self.distributional:
            actor_noise = th.zeros(data.actions.shape[0], self.critic.n_critics, 1, self.critic.noise_dim, device=self.device)
        elif self.actor_mean == "exact" and self.critic.architecture == "factorized":
            actor_noise = th.randn(1, self.critic.n_critics, ACTOR_MEAN_DRAWS, self.critic.noise_dim, device=self.device)
        else:
            actor_noise = self.critic.sample_noise(data.actions.shape[0], self.n_samples)
        actor_loss = -self.critic.mean_over_samples(data.observations, self.actor(data.observations), actor_noise).mean()
        logs["actor_loss"].append(self._check_finite(actor_loss, "actor loss", f"update {self._n_updates}"))
        self.actor.optimizer.zero_grad()
        trainable = [param for param in self.actor.parameters() if param.requires_grad]
        if trainable:  # a user may freeze the whole actor
            actor_loss.backward(inputs=trainable)
        self.actor.optimizer.step()
        polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
        polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
        polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        logs: defaultdict[str, list[float]] = defaultdict(list)  # filled by the steps, recorded as means
        if self._n_updates == 0:
            self._before_first_update(batch_size)
        for _ in range(gradient_steps):
            self._n_updates += 1
            data = self._sample_batch(batch_size)
            discount = self.gamma if data.discounts is None else data.discounts
            # 1. World model: its own objective on the replay's real transitions.
            if self.world_model is not None:
                self._world_model_step(data, logs)
            if self.reward_model is not None:
                self._reward_model_step(data, logs)
            # 2. Targets and the critic's objective, as the variant picked in _setup_model computes them.
            critic_loss = self._critic_loss(data, discount, self.sample_directions(batch_size))
            # 3. Critic step.
            self._critic_step(critic_loss, logs)
            if self.world_model is not None and self._n_updates % MODEL_GAP_INTERVAL == 0:
                logs["model_target_gap"].append(self._model_target_gap(data, discount))
            # 4. Delayed actor step and target updates.
            if self._n_updates % self.policy_delay == 0:
                self._actor_step(data, logs)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))

    def learn(
        self: SelfDSDPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DSDPG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDSDPG:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    @classmethod
    def load(cls: type[SelfDSDPG], path: str | pathlib.Path | io.BufferedIOBase, *args: Any, **kwargs: Any) -> SelfDSDPG:  # type: ignore[override]
        """SB3's ``load``; an argument the zip lacks (written by an older version) gets the value that version used."""
        data = _saved_data(path)
        saved = None if data is None else set(data)
        saved_by = _saved_algorithm(data)
        if saved_by is not None and not saved_by.startswith("sb3_dsdpg"):
            raise ValueError(
                f"This zip was saved by {saved_by} (its policy class), not by DSDPG: load it with that algorithm's "
                "load(), e.g. stable_baselines3.TD3.load or sb3_contrib.TQC.load."
            )
        legacy = {
            name: value
            for name, value in LEGACY_DEFAULTS.items()
            if saved is not None and name not in saved and name not in kwargs
        }
        if "target_returns" in legacy:  # written while SiLU was the policy's default activation
            policy_kwargs = _saved_policy_kwargs(data)
            if policy_kwargs is not None and "activation_fn" not in policy_kwargs:
                custom_objects = dict(kwargs.pop("custom_objects", None) or {})
                custom_objects.setdefault("policy_kwargs", {**policy_kwargs, "activation_fn": th.nn.SiLU})
                kwargs["custom_objects"] = custom_objects
        # As load kwargs, so that they are in place before the model is set up (an argument like reward_fn decides
        # which modules are built, whose saved parameters must then match the zip's).
        model = super().load(path, *args, **{**legacy, **kwargs})
        for name, value in legacy.items():
            setattr(model, name, value)
        if legacy:
            model._select_critic_variant()
        return model

    def _excluded_save_params(self) -> list[str]:
        # bound methods, re-bound at load; the env's known reward, found again from the env
        variant = ["_critic_targets", "_online_samples", "_critic_objective", "_known_reward"]
        excluded = ["actor", "critic", "actor_target", "critic_target", "world_model", "reward_model", "_blocks", *variant]
        return [*super()._excluded_save_params(), *excluded]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        if self.world_model is not None:
            state_dicts += ["world_model", "world_model.optimizer"]
        if self.reward_model is not None:
            state_dicts += ["reward_model", "reward_model.optimizer"]
        return state_dicts, []
