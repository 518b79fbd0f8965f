"""Learned one-step world models that make the Sobolev TD target differentiable (the cVAE of arXiv 2601.20071).

This module owns the world models of ``(Delta s, r)`` given ``(s, a)`` and the running normalisation statistics
they use:

- :class:`CVAEWorldModel`, a conditional VAE with an encoder ``q(eps | s, a, s', r)``, a learned prior
  ``p(eps | s, a)`` and a decoder ``g(s, a, eps)``. All randomness of a sample enters through ``eps``: the
  decoder's mean *is* the sample, so ``(s', r) = g(s, a, mu_p(s, a) + sigma_p(s, a) * u)`` with ``u ~ N(0, I)``
  is reparameterised and differentiable in ``s`` and ``a``.
- :class:`RealNVPWorldModel`, a conditional RealNVP flow (affine coupling layers whose conditioners see
  ``(s, a)``, standard normal base) trained by maximum likelihood; its sample ``f(u; s, a)`` is a smooth
  bijection of the base draw ``u``, reparameterised and differentiable in ``s`` and ``a`` likewise.

Both subclass :class:`WorldModel`, which fixes the interface DSDPG uses (``loss``, ``sample``, ``latent_dim``)
and owns the normalisation. :class:`RewardModel` is a deterministic reward ``r(s, a, s')`` learned by regression
beside them (ours): the reward of MuJoCo's tasks and of the package's toys is a deterministic function of the
transition, and the Sobolev target's ``dr/da`` through it does not depend on the cVAE's latent, which carries
much of the reward where a bonus is hit (arXiv 2601.20071, Section 5 learns the reward in the cVAE). The module
works on flat observation vectors and imports nothing from the rest of the package.
"""

import math

import torch as th
from stable_baselines3.common.torch_layers import create_mlp
from torch import nn


def batch_variance(x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """
    Mean and (biased) variance over the first dimension of ``x`` ``(n, d)``, in two passes: the mean, then the mean
    of the squared deviations. The same numbers as ``x.var(0, unbiased=False)`` up to float round-off, and about
    ten times faster on a CPU for a replay batch (torch's column-wise ``var`` took 0.9 ms on ``(256, 348)``).
    """
    mean = x.mean(0)
    deviation = x - mean
    return mean, (deviation * deviation).mean(0)


class RunningNormalizer(nn.Module):
    """
    Running mean and variance of a vector, merged batch by batch (Chan et al.), kept as buffers so it is saved.

    :param dim: vector size
    :param eps: floor on the standard deviation
    """

    def __init__(self, dim: int, eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", th.zeros(dim))
        self.register_buffer("var", th.ones(dim))
        self.register_buffer("count", th.zeros(()))

    @th.no_grad()
    def update(self, x: th.Tensor) -> None:
        """
        Merge the batch ``x`` ``(n, dim)``: with ``w = n / (count + n)`` and ``delta`` the batch mean minus the running
        one, ``mean += w delta`` and ``var = (1 - w) var + w batch_var + w (1 - w) delta^2``, in place (Chan et al.'s
        pairwise update, written with the weights as numbers: six tensor operations besides the batch's own).
        """
        x = x.reshape(-1, self.mean.shape[0]).to(self.mean.dtype)
        n = x.shape[0]
        batch_mean, batch_var = batch_variance(x)
        total = float(self.count) + n
        weight = n / total
        delta = batch_mean - self.mean
        self.mean.add_(delta, alpha=weight)
        self.var.mul_(1.0 - weight).add_(batch_var, alpha=weight).addcmul_(delta, delta, value=weight * (1.0 - weight))
        self.count.fill_(total)

    @property
    def std(self) -> th.Tensor:
        """``sqrt(var)``, at least ``eps``."""
        return self.var.clamp_min(self.eps * self.eps).sqrt()

    def normalize(self, x: th.Tensor) -> th.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: th.Tensor) -> th.Tensor:
        return x * self.std + self.mean


class WorldModel(nn.Module):
    """
    What every world model of ``(Delta s, r)`` given ``(s, a)`` provides to DSDPG, and the parts they share.

    A subclass defines :meth:`loss` (its training objective on a batch of transitions) and
    :meth:`_sample_normalized` (normalised targets from standard normal draws of size ``latent_dim``). This class
    owns the running statistics of observations and targets, the conditioning input ``(normalised s, a)`` and the
    public :meth:`sample`, which un-normalises the draws into next observations and rewards.

    :param obs_dim: size of the flat observation vector
    :param action_dim: size of the action vector
    :param latent_dim: size of the standard normal noise of one sample
    """

    def __init__(self, obs_dim: int, action_dim: int, latent_dim: int):
        super().__init__()
        self.obs_dim, self.action_dim, self.latent_dim = obs_dim, action_dim, latent_dim
        self.target_dim = obs_dim + 1  # (Delta s, r)
        self.obs_normalizer = RunningNormalizer(obs_dim)
        self.target_normalizer = RunningNormalizer(self.target_dim)

    def _condition(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        return th.cat([self.obs_normalizer.normalize(obs), actions], dim=-1)

    def _targets(self, obs: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor, update_normalizers: bool = False) -> th.Tensor:
        """Normalised ``(Delta s, r)`` ``(B, S + 1)``, after merging the batch into the running statistics if asked."""
        target = th.cat([next_obs - obs, rewards.reshape(-1, 1)], dim=-1)
        if update_normalizers:
            self.obs_normalizer.update(obs)
            self.target_normalizer.update(target)
        return self.target_normalizer.normalize(target)

    def loss(
        self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor, update_normalizers: bool = True
    ) -> tuple[th.Tensor, dict[str, float]]:
        """
        The training objective on a batch of transitions, in normalised units.

        :param obs: ``(B, S)``; ``actions``: ``(B, A)``; ``next_obs``: ``(B, S)``; ``rewards``: ``(B,)`` or ``(B, 1)``
        :param update_normalizers: merge this batch into the running statistics first
        :return: the loss (a scalar tensor) and its logged parts
        """
        raise NotImplementedError

    def _sample_normalized(self, noise: th.Tensor, obs: th.Tensor, actions: th.Tensor, hold_latent: bool = False) -> th.Tensor:
        """
        Normalised ``(Delta s, r)`` ``(B, n, S + 1)`` from standard normal ``noise`` ``(B, n, latent_dim)``;
        ``hold_latent``: see :meth:`sample`.
        """
        raise NotImplementedError

    def posterior_noise(
        self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor, n_samples: int = 1
    ) -> th.Tensor:
        """
        Standard normal draws ``(B, n, latent_dim)`` that explain an observed transition: the noise :meth:`sample`
        maps to (about) the real ``(s', r)`` of ``(s, a)``. The hybrid Sobolev target takes the model's Jacobian
        at these draws, so that the derivative belongs to the transition that happened (the noise inference of
        SVG(1), Heess et al. 2015).

        :param obs: ``(B, S)``; ``actions``: ``(B, A)``; ``next_obs``: ``(B, S)``; ``rewards``: ``(B,)`` or ``(B, 1)``
        :raises NotImplementedError: for a world model that cannot infer its noise (callers fall back to the prior)
        """
        raise NotImplementedError

    def sample(
        self,
        obs: th.Tensor,
        actions: th.Tensor,
        n_samples: int = 1,
        noise: th.Tensor | None = None,
        hold_latent: bool = False,
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Reparameterised samples of the next observation and reward, differentiable in ``obs`` and ``actions``.

        :param obs: ``(B, S)``; ``actions``: ``(B, A)``
        :param n_samples: draws per ``(s, a)``
        :param noise: optional standard normal draws ``(B, n_samples, latent_dim)`` (fixed noise for tests and
            targets); when given, its second dimension sets the number of draws
        :param hold_latent: differentiate at a fixed latent ``eps`` rather than at fixed standard noise: the
            cVAE's learned prior's mean and scale are held where they are, so that ``d(s', r)/d(s, a)`` is the
            decoder's alone (the derivative of the transition that ``eps`` explains; the values are the same). For
            noise inferred from a real transition (:meth:`posterior_noise`); a flow has no prior, so it ignores it
        :return: next observations ``(B, n, S)`` and rewards ``(B, n)``
        """
        if noise is None:
            noise = th.randn(obs.shape[0], n_samples, self.latent_dim, dtype=obs.dtype, device=obs.device)
        out = self.target_normalizer.denormalize(self._sample_normalized(noise, obs, actions, hold_latent))  # (B, n, S + 1)
        return obs.unsqueeze(1) + out[..., : self.obs_dim], out[..., self.obs_dim]


class CVAEWorldModel(WorldModel):
    """
    Conditional VAE world model ``p(Delta s, r | s, a)`` with a learned prior (the paper's one-step model).

    :param obs_dim: size of the flat observation vector
    :param action_dim: size of the action vector
    :param latent_dim: size of ``eps``
    :param encoder_arch: hidden widths of the encoder ``q(eps | s, a, s', r)``
    :param decoder_arch: hidden widths of the decoder ``g(s, a, eps)``
    :param prior_arch: hidden widths of the prior ``p(eps | s, a)``
    :param activation_fn: activation (smooth by default: the Sobolev target differentiates through the decoder)
    :param kl_weight: weight of the KL term of the ELBO
    :param max_decoder_std: upper bound of the decoder's learned per-dimension standard deviation, in normalised
        units. Samples are the decoder mean, so noise the likelihood absorbs is lost from samples; the bound
        makes the latent carry the transition noise (ours: without it the latent collapses on small noise).
    :param min_decoder_std: lower bound of that standard deviation
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        latent_dim: int = 8,
        encoder_arch: list[int] | None = None,
        decoder_arch: list[int] | None = None,
        prior_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.SiLU,
        kl_weight: float = 1.0,
        max_decoder_std: float = 0.05,
        min_decoder_std: float = 1e-3,
    ):
        if obs_dim < 1 or action_dim < 1 or latent_dim < 1:
            raise ValueError(
                f"obs_dim, action_dim and latent_dim must be positive, got {obs_dim}, {action_dim}, {latent_dim}."
            )
        if not 0 < min_decoder_std < max_decoder_std:
            raise ValueError(f"Need 0 < min_decoder_std < max_decoder_std, got {min_decoder_std}, {max_decoder_std}.")
        super().__init__(obs_dim, action_dim, latent_dim)
        self.kl_weight = kl_weight
        self.max_decoder_std, self.min_decoder_std = max_decoder_std, min_decoder_std
        encoder_arch = [256, 256] if encoder_arch is None else list(encoder_arch)
        decoder_arch = [256, 256] if decoder_arch is None else list(decoder_arch)
        prior_arch = [256, 256] if prior_arch is None else list(prior_arch)
        cond_dim = obs_dim + action_dim
        self.encoder = nn.Sequential(*create_mlp(cond_dim + self.target_dim, 2 * latent_dim, encoder_arch, activation_fn))
        self.prior = nn.Sequential(*create_mlp(cond_dim, 2 * latent_dim, prior_arch, activation_fn))
        self.decoder = nn.Sequential(*create_mlp(cond_dim + latent_dim, self.target_dim, decoder_arch, activation_fn))
        # Parameterised through a sigmoid between the bounds; starts in the middle (log scale).
        self.decoder_std_logit = nn.Parameter(th.zeros(self.target_dim))

    def _gaussian(self, net: nn.Module, inputs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        mean, log_std = net(inputs).chunk(2, dim=-1)
        return mean, log_std.clamp(-7.0, 3.0)

    def decoder_std(self) -> th.Tensor:
        lo, hi = math.log(self.min_decoder_std), math.log(self.max_decoder_std)
        return th.exp(lo + (hi - lo) * th.sigmoid(self.decoder_std_logit))

    def loss(
        self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor, update_normalizers: bool = True
    ) -> tuple[th.Tensor, dict[str, float]]:
        """
        Negative ELBO on a batch of transitions, in normalised units.

        :param obs: ``(B, S)``; ``actions``: ``(B, A)``; ``next_obs``: ``(B, S)``; ``rewards``: ``(B,)`` or ``(B, 1)``
        :param update_normalizers: merge this batch into the running statistics first
        :return: the loss (a scalar tensor) and its logged parts ``{"recon", "kl"}``
        """
        target_n = self._targets(obs, next_obs, rewards, update_normalizers)
        cond = self._condition(obs, actions)
        q_mean, q_log_std = self._gaussian(self.encoder, th.cat([cond, target_n], dim=-1))
        p_mean, p_log_std = self._gaussian(self.prior, cond)
        eps = q_mean + q_log_std.exp() * th.randn_like(q_mean)
        recon_mean = self.decoder(th.cat([cond, eps], dim=-1))
        std = self.decoder_std()
        # Gaussian negative log-likelihood, summed over dimensions
        nll = (0.5 * ((target_n - recon_mean) / std).pow(2) + std.log() + 0.5 * math.log(2 * math.pi)).sum(-1).mean()
        # KL(q || p) between diagonal Gaussians, summed over latent dimensions
        kl = (
            (p_log_std - q_log_std + ((2 * q_log_std).exp() + (q_mean - p_mean).pow(2)) / (2 * (2 * p_log_std).exp()) - 0.5)
            .sum(-1)
            .mean()
        )
        total = nll + self.kl_weight * kl
        return total, {"recon": nll.item(), "kl": kl.item()}

    def posterior_noise(
        self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor, n_samples: int = 1
    ) -> th.Tensor:
        """Draws ``eps ~ q(eps | s, a, s', r)`` of the encoder, in the prior's standard units ``(eps - mu_p) / sigma_p``."""
        target_n = self._targets(obs, next_obs, rewards)
        cond = self._condition(obs, actions)
        q_mean, q_log_std = self._gaussian(self.encoder, th.cat([cond, target_n], dim=-1))
        p_mean, p_log_std = self._gaussian(self.prior, cond)
        draws = th.randn(q_mean.shape[0], n_samples, self.latent_dim, dtype=q_mean.dtype, device=q_mean.device)
        eps = q_mean.unsqueeze(1) + q_log_std.exp().unsqueeze(1) * draws
        return (eps - p_mean.unsqueeze(1)) * (-p_log_std).exp().unsqueeze(1)

    def _sample_normalized(self, noise: th.Tensor, obs: th.Tensor, actions: th.Tensor, hold_latent: bool = False) -> th.Tensor:
        """
        The decoder's mean at ``eps = mu_p(s, a) + sigma_p(s, a) * noise``: all randomness is in the latent.
        ``hold_latent``: the prior's ``mu_p`` and ``sigma_p`` carry no derivative (the same values).
        """
        cond = self._condition(obs, actions)
        p_mean, p_log_std = self._gaussian(self.prior, cond)
        if hold_latent:
            p_mean, p_log_std = p_mean.detach(), p_log_std.detach()
        eps = p_mean.unsqueeze(1) + p_log_std.exp().unsqueeze(1) * noise  # (B, n, L)
        cond_rep = cond.unsqueeze(1).expand(-1, noise.shape[1], -1)
        return self.decoder(th.cat([cond_rep, eps], dim=-1))


class RealNVPWorldModel(WorldModel):
    """
    Conditional RealNVP world model ``p(Delta s, r | s, a)`` (the paper's world-model ablation).

    In normalised units (the targets ``(Delta s, r)`` and the observations are standardised by running statistics,
    as in :class:`CVAEWorldModel`), a sample is ``x = loc(c) + scale(c) * T_K(... T_1(u; c) ...; c)`` with
    ``u ~ N(0, I_D)``, ``D = obs_dim + 1``, ``c = (normalised s, a)`` and ``T_k`` affine couplings
    ``y -> m * y + (1 - m) * (y * exp(s_k(m * y, c)) + t_k(m * y, c))`` under alternating binary masks ``m``.
    The last, elementwise affine layer lets a dimension be (nearly) deterministic: its scale is bounded below by
    ``min_std``, the couplings' log-scales by ``coupling_scale_bound`` in absolute value, which keeps the
    likelihood bounded on deterministic dimensions and the Jacobians of samples tame.

    ``forward`` maps base draws to normalised targets (the sampling direction), ``inverse`` the reverse; both
    return the log-absolute-determinant of their Jacobian. ``latent_dim`` equals ``D``: the noise of
    :meth:`sample` *is* the base draw.

    :param obs_dim: size of the flat observation vector
    :param action_dim: size of the action vector
    :param n_couplings: number of affine coupling layers (masks alternate, so each dimension is transformed in
        half of them)
    :param hidden_arch: hidden widths of each coupling's conditioner and of the elementwise affine layer's
    :param activation_fn: activation (smooth by default: the Sobolev target differentiates through the flow)
    :param coupling_scale_bound: bound ``b`` of the couplings' log-scales, ``b * tanh(raw)``
    :param min_std: lower bound of the elementwise affine layer's scale, in normalised units
    :param max_std: upper bound of that scale
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        n_couplings: int = 4,
        hidden_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.SiLU,
        coupling_scale_bound: float = 2.0,
        min_std: float = 1e-3,
        max_std: float = 2.0,
    ):
        if obs_dim < 1 or action_dim < 1 or n_couplings < 0:
            raise ValueError(
                f"obs_dim and action_dim must be positive and n_couplings >= 0, got {obs_dim}, {action_dim}, {n_couplings}."
            )
        if not 0 < min_std < 1.0 < max_std:
            raise ValueError(f"Need 0 < min_std < 1 < max_std, got {min_std}, {max_std}.")
        if coupling_scale_bound <= 0:
            raise ValueError(f"coupling_scale_bound must be positive, got {coupling_scale_bound}.")
        super().__init__(obs_dim, action_dim, latent_dim=obs_dim + 1)  # the base draw has the target's size
        self.coupling_scale_bound = coupling_scale_bound
        self.min_std, self.max_std = min_std, max_std
        hidden_arch = [256, 256] if hidden_arch is None else list(hidden_arch)
        cond_dim = obs_dim + action_dim
        dims = th.arange(self.target_dim)
        # Alternating masks: 1 marks the dimensions a coupling passes through unchanged and conditions on.
        masks = (
            th.stack([((dims + k) % 2 == 0).float() for k in range(n_couplings)]) if n_couplings else th.zeros(0, len(dims))
        )
        self.register_buffer("masks", masks)
        # Where each coupling's (log-scale, shift) output acts: the dimensions it transforms, twice.
        self.register_buffer("output_masks", (1.0 - masks).repeat(1, 2), persistent=False)
        self.couplings = nn.ModuleList(
            nn.Sequential(*create_mlp(self.target_dim + cond_dim, 2 * self.target_dim, hidden_arch, activation_fn))
            for _ in range(n_couplings)
        )
        self.affine = nn.Sequential(*create_mlp(cond_dim, 2 * self.target_dim, hidden_arch, activation_fn))
        with th.no_grad():
            # Start as the identity map: zero couplings, unit scale.
            for net in self.couplings:
                net[-1].weight.zero_()
                net[-1].bias.zero_()
            self.affine[-1].weight.mul_(0.01)
            self.affine[-1].bias.zero_()
            lo, hi = math.log(min_std), math.log(max_std)
            self.affine[-1].bias[self.target_dim :] = math.log(-lo / hi)  # logit of the unit scale's position

    def _affine(self, cond: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Location and log-scale of the elementwise affine layer, ``(B, D)`` each."""
        loc, raw = self.affine(cond).chunk(2, dim=-1)
        lo, hi = math.log(self.min_std), math.log(self.max_std)
        return loc, lo + (hi - lo) * th.sigmoid(raw)

    def _coupling(self, k: int, y: th.Tensor, cond: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Log-scale and shift of coupling ``k`` at ``y`` ``(B, n, D)``: zero on the masked part, the only part read."""
        # Few operations on purpose: the Sobolev target runs this under forward-mode AD with one tangent per input.
        raw_scale, shift = (self.couplings[k](th.cat([y * self.masks[k], cond], dim=-1)) * self.output_masks[k]).chunk(
            2, dim=-1
        )
        return self.coupling_scale_bound * th.tanh(raw_scale), shift

    def _expand_condition(self, obs: th.Tensor, actions: th.Tensor, n: int) -> th.Tensor:
        return self._condition(obs, actions).unsqueeze(1).expand(-1, n, -1)

    def forward(self, noise: th.Tensor, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        Base draws to normalised targets (the sampling direction).

        :param noise: base draws ``u`` ``(B, n, D)``
        :param obs: ``(B, S)``; ``actions``: ``(B, A)``
        :return: normalised ``(Delta s, r)`` ``(B, n, D)`` and ``log |det dx/du|`` ``(B, n)``
        """
        return self._generate(noise, obs, actions, with_log_det=True)  # type: ignore[return-value]

    def _generate(
        self, noise: th.Tensor, obs: th.Tensor, actions: th.Tensor, with_log_det: bool
    ) -> tuple[th.Tensor, th.Tensor | None]:
        cond = self._expand_condition(obs, actions, noise.shape[1])
        y, log_det = noise, th.zeros(noise.shape[:-1], dtype=noise.dtype, device=noise.device) if with_log_det else None
        for k in range(len(self.couplings)):
            log_scale, shift = self._coupling(k, y, cond)
            y = th.addcmul(shift, y, log_scale.exp())  # masked dimensions have log_scale = shift = 0
            if log_det is not None:
                log_det = log_det + log_scale.sum(-1)
        loc, log_scale = self._affine(cond)
        out = th.addcmul(loc, log_scale.exp(), y)
        return out, None if log_det is None else log_det + log_scale.sum(-1)

    def inverse(self, targets: th.Tensor, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        Normalised targets to base draws (the density direction).

        :param targets: normalised ``(Delta s, r)`` ``(B, n, D)``
        :param obs: ``(B, S)``; ``actions``: ``(B, A)``
        :return: base draws ``u`` ``(B, n, D)`` and ``log |det du/dx|`` ``(B, n)``
        """
        cond = self._expand_condition(obs, actions, targets.shape[1])
        loc, log_scale = self._affine(cond)
        y = (targets - loc) * th.exp(-log_scale)
        log_det = -log_scale.sum(-1)
        for k in reversed(range(len(self.couplings))):
            log_scale, shift = self._coupling(k, y, cond)  # reads y * mask, which the coupling left unchanged
            y = (y - shift) * th.exp(-log_scale)
            log_det = log_det - log_scale.sum(-1)
        return y, log_det

    def posterior_noise(
        self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor, n_samples: int = 1
    ) -> th.Tensor:
        """The flow's inverse of the real transition, exact, repeated ``n_samples`` times: ``(B, n, latent_dim)``."""
        target_n = self._targets(obs, next_obs, rewards).unsqueeze(1)
        return self.inverse(target_n, obs, actions)[0].expand(-1, n_samples, -1)

    def log_prob(self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor) -> th.Tensor:
        """Log-density ``(B,)`` of the normalised target ``(Delta s, r)`` given ``(s, a)``."""
        return self._log_prob_normalized(self._targets(obs, next_obs, rewards), obs, actions)

    def _log_prob_normalized(self, target: th.Tensor, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        base, log_det = self.inverse(target.unsqueeze(1), obs, actions)
        base_log_prob = -0.5 * base.pow(2).sum(-1) - 0.5 * self.target_dim * math.log(2 * math.pi)
        return (base_log_prob + log_det).squeeze(1)

    def loss(
        self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor, update_normalizers: bool = True
    ) -> tuple[th.Tensor, dict[str, float]]:
        """
        Negative log-likelihood of a batch of transitions, in normalised units (maximum likelihood).

        :param obs: ``(B, S)``; ``actions``: ``(B, A)``; ``next_obs``: ``(B, S)``; ``rewards``: ``(B,)`` or ``(B, 1)``
        :param update_normalizers: merge this batch into the running statistics first
        :return: the loss (a scalar tensor) and its logged parts ``{"nll"}``
        """
        target = self._targets(obs, next_obs, rewards, update_normalizers)
        nll = -self._log_prob_normalized(target, obs, actions).mean()
        return nll, {"nll": nll.item()}

    def _sample_normalized(self, noise: th.Tensor, obs: th.Tensor, actions: th.Tensor, hold_latent: bool = False) -> th.Tensor:
        """The flow's forward map of the base draws ``noise``."""
        return self._generate(noise, obs, actions, with_log_det=False)[0]


class RewardModel(nn.Module):
    """
    A deterministic reward ``r(s, a, s')`` learned by regression on replay transitions (ours).

    The hybrid Sobolev target takes its values from the real transition and its derivative from models; the reward's
    share of that derivative, ``dr/da + dr/ds' ds'/da``, comes from here. A cVAE that learns ``(Delta s, r)`` jointly
    puts much of a rare reward (a bonus hit) in its latent, so that at the latent that explains the transition its
    decoder's ``dr/da`` is a fraction of the true one; a regression on ``(s, a, s')`` has no latent to hide it in.
    Inputs are normalised with running statistics (``s`` and ``s'`` share the observation's), and so is the
    regression target, so the model learns in the same units on every task.

    :param obs_dim: size of the flat observation vector
    :param action_dim: size of the action vector
    :param net_arch: hidden widths of the MLP
    :param activation_fn: activation (smooth by default: the target differentiates through it)
    """

    def __init__(
        self, obs_dim: int, action_dim: int, net_arch: list[int] | None = None, activation_fn: type[nn.Module] = nn.SiLU
    ):
        super().__init__()
        if obs_dim < 1 or action_dim < 1:
            raise ValueError(f"obs_dim and action_dim must be positive, got {obs_dim} and {action_dim}.")
        net_arch = [64, 64] if net_arch is None else list(net_arch)
        if any(not isinstance(width, int) or width < 1 for width in net_arch):
            raise ValueError(f"net_arch of the reward model must be positive ints, got {net_arch!r}.")
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.obs_normalizer = RunningNormalizer(obs_dim)
        self.reward_normalizer = RunningNormalizer(1)
        self.net = nn.Sequential(*create_mlp(2 * obs_dim + action_dim, 1, net_arch, activation_fn))

    def forward(self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor) -> th.Tensor:
        """
        The predicted reward, in the units of the rewards it was fitted to; leading dimensions broadcast.

        :param obs: ``(..., S)``; ``actions``: ``(..., A)``; ``next_obs``: ``(..., S)``
        :return: ``(...)``
        """
        lead = th.broadcast_shapes(obs.shape[:-1], actions.shape[:-1], next_obs.shape[:-1])
        inputs = th.cat(
            [
                self.obs_normalizer.normalize(obs).expand(*lead, self.obs_dim),
                actions.expand(*lead, self.action_dim),
                self.obs_normalizer.normalize(next_obs).expand(*lead, self.obs_dim),
            ],
            dim=-1,
        )
        return self.reward_normalizer.denormalize(self.net(inputs)).squeeze(-1)

    def loss(
        self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor, update_normalizers: bool = True
    ) -> tuple[th.Tensor, dict[str, float]]:
        """
        Mean squared error of the normalised reward on a batch of transitions.

        :param obs: ``(B, S)``; ``actions``: ``(B, A)``; ``next_obs``: ``(B, S)``; ``rewards``: ``(B,)`` or ``(B, 1)``
        :param update_normalizers: merge this batch into the running statistics first
        :return: the loss (a scalar tensor) and its logged parts ``{"mse"}`` (in normalised units)
        """
        rewards = rewards.reshape(-1, 1)
        if update_normalizers:
            self.obs_normalizer.update(obs)
            self.reward_normalizer.update(rewards)
        predicted = self.net(
            th.cat([self.obs_normalizer.normalize(obs), actions, self.obs_normalizer.normalize(next_obs)], dim=-1)
        )
        mse = (predicted - self.reward_normalizer.normalize(rewards)).pow(2).mean()
        return mse, {"mse": mse.item()}
