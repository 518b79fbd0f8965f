"""Learned one-step world models that make the Sobolev TD target differentiable (SPEC section 2).

This module owns :class:`CVAEWorldModel`, a conditional VAE of ``(Delta s, r)`` given ``(s, a)`` with an
encoder ``q(eps | s, a, s', r)``, a learned prior ``p(eps | s, a)`` and a decoder ``g(s, a, eps)``, plus the
running normalisation statistics it uses. All randomness of a sample enters through ``eps``: the decoder's
mean *is* the sample, so ``(s', r) = g(s, a, mu_p(s, a) + sigma_p(s, a) * u)`` with ``u ~ N(0, I)`` is
reparameterised and differentiable in ``s`` and ``a``. It works on flat observation vectors and imports
nothing from the rest of the package.
"""

import math

import torch as th
from torch import nn


def build_mlp(in_dim: int, out_dim: int, net_arch: list[int], activation_fn: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """A plain MLP: Linear/activation pairs for ``net_arch``, then a linear output layer."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in net_arch:
        layers += [nn.Linear(last, width), activation_fn()]
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


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
        x = x.reshape(-1, self.mean.shape[0]).to(self.mean.dtype)
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total) / total)
        self.count.copy_(total)

    @property
    def std(self) -> th.Tensor:
        return self.var.clamp_min(0.0).sqrt().clamp_min(self.eps)

    def normalize(self, x: th.Tensor) -> th.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: th.Tensor) -> th.Tensor:
        return x * self.std + self.mean


class CVAEWorldModel(nn.Module):
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
        super().__init__()
        if obs_dim < 1 or action_dim < 1 or latent_dim < 1:
            raise ValueError(
                f"obs_dim, action_dim and latent_dim must be positive, got {obs_dim}, {action_dim}, {latent_dim}."
            )
        if not 0 < min_decoder_std < max_decoder_std:
            raise ValueError(f"Need 0 < min_decoder_std < max_decoder_std, got {min_decoder_std}, {max_decoder_std}.")
        self.obs_dim, self.action_dim, self.latent_dim = obs_dim, action_dim, latent_dim
        self.target_dim = obs_dim + 1  # (Delta s, r)
        self.kl_weight = kl_weight
        self.max_decoder_std, self.min_decoder_std = max_decoder_std, min_decoder_std
        encoder_arch = [256, 256] if encoder_arch is None else list(encoder_arch)
        decoder_arch = [256, 256] if decoder_arch is None else list(decoder_arch)
        prior_arch = [256, 256] if prior_arch is None else list(prior_arch)
        self.encoder = build_mlp(obs_dim + action_dim + self.target_dim, 2 * latent_dim, encoder_arch, activation_fn)
        self.prior = build_mlp(obs_dim + action_dim, 2 * latent_dim, prior_arch, activation_fn)
        self.decoder = build_mlp(obs_dim + action_dim + latent_dim, self.target_dim, decoder_arch, activation_fn)
        # Parameterised through a sigmoid between the bounds; starts in the middle (log scale).
        self.decoder_std_logit = nn.Parameter(th.zeros(self.target_dim))
        self.obs_normalizer = RunningNormalizer(obs_dim)
        self.target_normalizer = RunningNormalizer(self.target_dim)

    def _gaussian(self, net: nn.Module, inputs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        mean, log_std = net(inputs).chunk(2, dim=-1)
        return mean, log_std.clamp(-7.0, 3.0)

    def decoder_std(self) -> th.Tensor:
        lo, hi = math.log(self.min_decoder_std), math.log(self.max_decoder_std)
        return th.exp(lo + (hi - lo) * th.sigmoid(self.decoder_std_logit))

    def _condition(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        return th.cat([self.obs_normalizer.normalize(obs), actions], dim=-1)

    def loss(
        self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor, update_normalizers: bool = True
    ) -> tuple[th.Tensor, dict[str, float]]:
        """
        Negative ELBO on a batch of transitions, in normalised units.

        :param obs: ``(B, S)``; ``actions``: ``(B, A)``; ``next_obs``: ``(B, S)``; ``rewards``: ``(B,)`` or ``(B, 1)``
        :param update_normalizers: merge this batch into the running statistics first
        :return: the loss (a scalar tensor) and its logged parts ``{"recon", "kl"}``
        """
        target = th.cat([next_obs - obs, rewards.reshape(-1, 1)], dim=-1)
        if update_normalizers:
            self.obs_normalizer.update(obs)
            self.target_normalizer.update(target)
        cond = self._condition(obs, actions)
        target_n = self.target_normalizer.normalize(target)
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

    def sample(
        self, obs: th.Tensor, actions: th.Tensor, n_samples: int = 1, noise: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Reparameterised samples of the next observation and reward, differentiable in ``obs`` and ``actions``.

        :param obs: ``(B, S)``; ``actions``: ``(B, A)``
        :param n_samples: draws per ``(s, a)``
        :param noise: optional standard normal noise ``(B, n_samples, latent_dim)`` (fixed noise for tests)
        :return: next observations ``(B, n, S)`` and rewards ``(B, n)``
        """
        batch = obs.shape[0]
        if noise is None:
            noise = th.randn(batch, n_samples, self.latent_dim, dtype=obs.dtype, device=obs.device)
        cond = self._condition(obs, actions)
        p_mean, p_log_std = self._gaussian(self.prior, cond)
        eps = p_mean.unsqueeze(1) + p_log_std.exp().unsqueeze(1) * noise  # (B, n, L)
        cond_rep = cond.unsqueeze(1).expand(-1, noise.shape[1], -1)
        out = self.target_normalizer.denormalize(self.decoder(th.cat([cond_rep, eps], dim=-1)))  # (B, n, S + 1)
        next_obs = obs.unsqueeze(1) + out[..., : self.obs_dim]
        return next_obs, out[..., self.obs_dim]
