"""Networks of DSDPG: the generative Sobolev critic and the policy that holds actor, critic and their targets.

This module owns :class:`GenerativeCritic` (the generative Sobolev critic of arXiv 2601.20071), which maps
``(s, a, xi)`` with ``xi ~ N(0, I_k)`` to return samples ``z`` and, on request, their action gradients ``dz/da``
(the joint Sobolev sample) or directional derivatives ``u . dz/da``, and :class:`DSDPGPolicy`, the TD3-shaped
container (deterministic tanh actor from SB3's TD3) that the algorithm trains. Two critic architectures:

- ``"factorized"`` (default): ``z = w . (psi(s, a) * (1 + phi(xi))) + b``; ``psi`` runs once per ``(s, a)`` and
  its Jacobian in ``a`` is carried forward layer by layer, so ``dz/da = J_psi^T (w * (1 + phi(xi)))`` is an
  ordinary differentiable tensor (no double backward).
- ``"concat"``: an MLP on ``[features(s), a, xi]``; ``dz/da`` by autograd with ``create_graph=True``.

Two or more factorized critics are evaluated as one stacked ensemble (:class:`StackedFactorizedNets`): one batched
matrix product per layer for all critics, the same numbers as running them one by one.
"""

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim, is_image_space
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.td3.policies import Actor
from torch import nn
from torch.nn import functional as F

CRITIC_ARCHITECTURES = ("factorized", "concat")


def _activation_and_derivative(module: nn.Module, pre: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """Value and elementwise derivative of a supported activation at ``pre``."""
    if isinstance(module, nn.SiLU):
        sig = th.sigmoid(pre)
        return pre * sig, sig * (1.0 + pre * (1.0 - sig))
    if isinstance(module, nn.Tanh):
        out = th.tanh(pre)
        return out, 1.0 - out * out
    if isinstance(module, nn.Softplus):
        return F.softplus(pre, module.beta, module.threshold), th.sigmoid(module.beta * pre)
    if isinstance(module, nn.ELU):
        out = F.elu(pre, module.alpha)
        return out, th.where(pre > 0, th.ones_like(pre), out + module.alpha)
    if isinstance(module, nn.ReLU):
        out = F.relu(pre)
        return out, th.sign(out.detach())  # 1 where pre > 0, else 0: one pass, no graph (a.e. zero derivative)
    if isinstance(module, nn.Sigmoid):
        out = th.sigmoid(pre)
        return out, out * (1.0 - out)
    raise ValueError(f"Activation {type(module).__name__} is not supported by the factorized critic: {JACOBIAN_ACTIVATIONS}.")


class _RowDot(th.autograd.Function):
    """``x @ y^T`` for batches of small matrices; see :func:`row_dot`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: th.Tensor, y: th.Tensor) -> th.Tensor:  # type: ignore[override]
        return th.bmm(x, y.transpose(1, 2))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[th.Tensor, th.Tensor], output: th.Tensor) -> None:
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx: Any, grad: th.Tensor) -> tuple[th.Tensor | None, th.Tensor | None]:  # type: ignore[override]
        x, y = ctx.saved_tensors
        grad_x = th.bmm(grad, y) if ctx.needs_input_grad[0] else None
        grad_y = th.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        return grad_x, grad_y

    @staticmethod
    def jvp(ctx: Any, x_dot: th.Tensor | None, y_dot: th.Tensor | None) -> th.Tensor:  # type: ignore[override]
        x, y = ctx.saved_tensors
        out = None if x_dot is None else th.bmm(x_dot, y.transpose(1, 2))
        if y_dot is not None:
            term = th.bmm(x, y_dot.transpose(1, 2))
            out = term if out is None else out + term
        return out if out is not None else x.new_zeros(x.shape[0], x.shape[1], y.shape[1])


def row_dot(x: th.Tensor, y: th.Tensor) -> th.Tensor:
    """
    ``x @ y^T`` ``(b, n, c)`` for ``x`` ``(b, n, r)`` and ``y`` ``(b, c, r)``: each batch row's samples dotted with its
    own few vectors. The same numbers as ``th.bmm(x, y.transpose(1, 2))`` forward; the backward takes the input
    gradients as ``g @ y`` and ``g^T @ x``, where autograd's own backward of the product takes ``x^T @ g`` for ``y``,
    a batched product of ``(r, n) x (n, c)`` matrices that a CPU BLAS does up to six times slower at the critic's
    shapes (``b = 256, n = 10, r = 64, c = 2``: 263 against 46 us). Differentiable twice, in forward mode and
    under ``vmap``; other shapes (broadcast batches) go through ``th.matmul``.
    """
    if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0]:
        return th.matmul(x, y.transpose(-1, -2))
    return _RowDot.apply(x, y)  # type: ignore[no-any-return]


def _mix(head_weight: th.Tensor, last_weight: th.Tensor, last_bias: th.Tensor) -> th.Tensor:
    """
    ``[w * (1 + c), w * W]`` ``(..., H, 1 + r)``: the head's weights ``w`` ``(..., H)`` times ``1 + phi(xi) = 1 + W u + c``
    split into its constant and its ``u`` part (phi's last layer: ``W`` ``(..., H, r)``, ``c`` ``(..., H)``).
    """
    return th.cat([(head_weight * (1.0 + last_bias)).unsqueeze(-1), head_weight.unsqueeze(-1) * last_weight], dim=-1)


JACOBIAN_ACTIVATIONS = ("SiLU", "Tanh", "Softplus", "ELU", "ReLU", "Sigmoid")


class FactorizedSampleNet(nn.Module):
    """
    One factorized critic: ``z = w . (psi(f, a) * (1 + phi(xi))) + b``.

    :param features_dim: size of the state features ``f``
    :param action_dim: size of ``a``
    :param noise_dim: size of ``xi``
    :param net_arch: hidden widths of ``psi`` (its output is the last hidden layer, activated)
    :param noise_net_arch: hidden widths of ``phi``
    :param activation_fn: activation of both
    """

    def __init__(
        self,
        features_dim: int,
        action_dim: int,
        noise_dim: int,
        net_arch: list[int],
        noise_net_arch: list[int],
        activation_fn: type[nn.Module],
    ):
        super().__init__()
        if len(net_arch) == 0:
            raise ValueError(
                "The factorized critic (critic_architecture='factorized', the default) needs at least one hidden layer "
                "in net_arch: its psi(s, a) is that layer. Give net_arch a hidden layer, or use "
                "policy_kwargs=dict(net_arch=[], critic_architecture='concat') for critics linear in [s, a, xi]."
            )
        self.features_dim = features_dim
        self.psi_layers = nn.ModuleList()
        last = features_dim + action_dim
        for width in net_arch:
            self.psi_layers.append(nn.Linear(last, width))
            last = width
        self.activation = activation_fn()
        _activation_and_derivative(self.activation, th.zeros(1))  # fail early on an unsupported activation
        self.phi = nn.Sequential(*create_mlp(noise_dim, last, noise_net_arch, activation_fn))
        self.head = nn.Linear(last, 1)

    def psi(
        self,
        features: th.Tensor,
        actions: th.Tensor,
        with_jacobian: bool,
        wrt_features: bool = False,
        directions: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """
        ``psi(f, a)`` ``(B, H)`` and, if asked, its Jacobian in ``a`` laid out as ``(B, A, H)``, or with
        ``wrt_features`` in ``(f, a)`` laid out as ``(B, F + A, H)``; with ``directions`` ``(B, k, A)`` (or
        ``(B, k, F + A)``) only the ``k`` directional derivatives ``(B, k, H)`` are carried.
        """
        h = th.cat([features, actions], dim=-1)
        jac = None
        first_input = 0 if wrt_features else self.features_dim
        for i, layer in enumerate(self.psi_layers):
            pre = layer(h)
            if with_jacobian and i == 0:
                # Tangents of the differentiated inputs: the first layer's columns of them (or those columns applied
                # to each row's directions), then through each layer.
                first = layer.weight[:, first_input:]
                jac = first.T.unsqueeze(0) if directions is None else directions @ first.T
            elif with_jacobian:
                jac = jac @ layer.weight.T
            h, deriv = _activation_and_derivative(self.activation, pre)
            if with_jacobian:
                jac = deriv.unsqueeze(1) * jac
        return h, jac

    def _psi_and_input_vjp(self, features: th.Tensor, actions: th.Tensor, coef: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        ``psi(f, a)`` ``(B, H)`` and ``J_psi^T coef`` in ``(f, a)`` ``(B, N, F + A)`` in reverse mode: the vectors
        ``coef`` ``(B or 1, N, H)`` are carried back through the layers instead of ``F + A`` tangents forward,
        cheaper when ``N < F + A``. Plain tensor operations, differentiable by ordinary autograd.
        """
        h = th.cat([features, actions], dim=-1)
        derivs = []
        for layer in self.psi_layers:
            h, deriv = _activation_and_derivative(self.activation, layer(h))
            derivs.append(deriv)
        vec = coef * derivs[-1].unsqueeze(1)  # (B, N, H_L)
        for i in range(len(self.psi_layers) - 1, 0, -1):
            vec = (vec @ self.psi_layers[i].weight) * derivs[i - 1].unsqueeze(1)
        return h, vec @ self.psi_layers[0].weight

    def forward(
        self,
        features: th.Tensor,
        actions: th.Tensor,
        noise: th.Tensor,
        with_grad: bool = False,
        wrt_features: bool = False,
        directions: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """
        :param features: ``(B, F)``; ``actions``: ``(B, A)``; ``noise``: ``(B, N, k)``, or ``(1, N, k)`` shared by the batch
        :param wrt_features: with ``with_grad``, differentiate in ``(f, a)`` instead of ``a`` alone
        :param directions: with ``with_grad``, ``(B, k, A)`` (``(B, k, F + A)`` with ``wrt_features``): return the
            directional derivatives ``u_j . dz/da`` instead of the full gradient (``k`` tangents instead of ``A``)
        :return: ``z`` ``(B, N)`` and, with ``with_grad``, ``dz/da`` ``(B, N, A)`` (with ``wrt_features``:
            ``dz/d(f, a)`` ``(B, N, F + A)``; with ``directions``: ``(B, N, k)``)
        """
        shared = noise.shape[0] == 1
        if self.reverse_mode(noise.shape[1], with_grad, wrt_features, directions):
            # Fewer samples than inputs: reverse mode is the cheaper way to the same gradient.
            coef = self.coefficients(noise)
            psi, grad = self._psi_and_input_vjp(features, actions, coef)
            z = psi @ coef[0].T if shared else th.einsum("bh,bnh->bn", psi, coef)
            return z + self.head.bias, grad
        psi, jac = self.psi(features, actions, with_grad, wrt_features, directions)
        if shared:
            # Noise shared across the batch: plain matrix products with the (N, H) coefficients.
            coef = self.coefficients(noise)[0]
            z = psi @ coef.T + self.head.bias
            grad = (jac @ coef.T).transpose(1, 2) if with_grad else None  # type: ignore[union-attr]
            return z, grad
        rows = th.cat([psi.unsqueeze(1), jac], dim=1) if with_grad else psi.unsqueeze(1)  # type: ignore[list-item]
        out = self.dot_coefficients(rows, noise)  # (B, N, 1 + tangents)
        return out[..., 0] + self.head.bias, out[..., 1:] if with_grad else None

    def reverse_mode(self, n_samples: int, with_grad: bool, wrt_features: bool, directions: th.Tensor | None) -> bool:
        """Whether :meth:`forward` takes the gradient in ``(f, a)`` in reverse mode: fewer samples than inputs."""
        n_inputs = self.psi_layers[0].in_features  # F + A
        return with_grad and wrt_features and directions is None and n_samples < n_inputs

    def coefficients(self, noise: th.Tensor) -> th.Tensor:
        """The per-sample coefficients ``w * (1 + phi(xi))`` ``(B or 1, N, H)`` that ``psi`` is dotted with."""
        return self.head.weight.squeeze(0) * (1.0 + self.phi(noise))

    def dot_coefficients(self, rows: th.Tensor, noise: th.Tensor) -> th.Tensor:
        """
        ``rows`` ``(B, C, H)`` (``psi`` and its tangents) dotted with each row's own coefficients ``(B, N, H)``:
        ``(B, N, C)``, without forming the coefficients. ``phi``'s last layer is linear, ``phi(xi) = W u + c`` with
        ``u`` its input (the noise's hidden features, ``r`` wide), so ``rows . (w * (1 + W u + c))`` splits into
        ``rows @ (w * (1 + c))`` plus ``(rows @ (w W)) . u``: one matrix product of the batch's rows and a contraction
        over ``r`` (64 by default) instead of ``phi``'s output layer on ``B x N`` draws and a contraction over ``H``.
        The same numbers as :meth:`coefficients` up to float round-off, at a fraction of the cost.
        """
        *body, last = self.phi
        hidden = noise
        for layer in body:
            hidden = layer(hidden)  # (B, N, r)
        mix = _mix(self.head.weight.squeeze(0), last.weight, last.bias)  # (H, 1 + r)
        proj = rows @ mix  # (B, C, 1 + r)
        return proj[..., 0].unsqueeze(1) + row_dot(hidden, proj[..., 1:])


class StackedFactorizedNets(NamedTuple):
    """
    The weights of ``K`` factorized critics of one shape stacked along a leading critic dimension, for evaluating
    the ensemble in one pass: each linear layer is one batched matrix product over the critics instead of ``K``
    products, so an update dispatches about half the operations for two critics. The stacks are made from the
    critics' parameters at each call (``th.stack`` is differentiable), so the parameters, the optimizer and saved
    models are those of the critics as separate modules. The same numbers as evaluating each critic on its own, up to
    float round-off. Built by :meth:`of`.
    """

    psi_layers: list[tuple[th.Tensor, th.Tensor]]  # per layer: weights (K, out, in), biases (K, out)
    phi_body: list[tuple[th.Tensor, th.Tensor] | nn.Module]  # phi's layers before its last (linear: stacked)
    mix: th.Tensor  # (K, H, 1 + r): the head's weights times [1 + phi's last bias, phi's last weights]
    head_bias: th.Tensor  # (K,)
    activation: nn.Module
    features_dim: int

    @classmethod
    def of(cls, nets: list[FactorizedSampleNet]) -> "StackedFactorizedNets":
        """Stack the weights of ``nets`` (factorized critics of the same shape)."""

        def stacked(layers: list[nn.Linear]) -> tuple[th.Tensor, th.Tensor]:
            return th.stack([layer.weight for layer in layers]), th.stack([layer.bias for layer in layers])

        first = nets[0]
        psi = [stacked([net.psi_layers[i] for net in nets]) for i in range(len(first.psi_layers))]
        *body, _ = first.phi
        phi_body = [
            stacked([net.phi[i] for net in nets]) if isinstance(layer, nn.Linear) else layer for i, layer in enumerate(body)
        ]
        last_weight, last_bias = stacked([net.phi[len(body)] for net in nets])  # (K, H, r), (K, H)
        head_weight, head_bias = stacked([net.head for net in nets])  # (K, 1, H), (K, 1)
        mix = _mix(head_weight.squeeze(1), last_weight, last_bias)  # (K, H, 1 + r)
        return cls(psi, phi_body, mix, head_bias.squeeze(1), first.activation, first.features_dim)

    def psi(
        self,
        features: th.Tensor,
        actions: th.Tensor,
        with_jacobian: bool,
        wrt_features: bool = False,
        directions: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """Every critic's :meth:`FactorizedSampleNet.psi`: ``(K, B, H)`` and tangents ``(K, B, C, H)`` or None."""
        h = th.cat([features, actions], dim=-1)
        batch, n_critics = h.shape[0], self.mix.shape[0]
        first_input = 0 if wrt_features else self.features_dim
        jac = None
        for i, (weight, bias) in enumerate(self.psi_layers):
            width = weight.shape[1]
            if i == 0:
                # The critics share the input: one product with their weights side by side.
                flat = weight.reshape(n_critics * width, -1)
                pre = th.addmm(bias.reshape(-1), h, flat.T).reshape(batch, n_critics, width).transpose(0, 1)
                if with_jacobian and directions is None:
                    jac = weight[:, :, first_input:].transpose(1, 2).unsqueeze(1)  # (K, 1, C, H)
                elif with_jacobian:
                    assert directions is not None
                    rows = directions.reshape(-1, directions.shape[-1]) @ flat[:, first_input:].T  # (B k, K H)
                    jac = rows.reshape(batch, -1, n_critics, width).permute(2, 0, 1, 3)  # (K, B, k, H)
            else:
                pre = th.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
                if jac is not None:
                    jac = th.bmm(jac.reshape(n_critics, -1, jac.shape[-1]), weight.transpose(1, 2))
                    jac = jac.reshape(n_critics, batch, -1, width)
            h, deriv = _activation_and_derivative(self.activation, pre)
            if jac is not None:
                jac = deriv.unsqueeze(2) * jac
        return h, jac

    def dot_coefficients(self, rows: th.Tensor, noise: th.Tensor) -> th.Tensor:
        """
        Every critic's :meth:`FactorizedSampleNet.dot_coefficients`: ``rows`` ``(K, B, C, H)`` with the noise
        ``(B, K, N, k)`` (each critic its own draws): ``(K, B, N, C)``.
        """
        n_critics, batch, n_rows, _ = rows.shape
        n = noise.shape[2]
        hidden = self.noise_features(noise)
        proj = th.bmm(rows.reshape(n_critics, batch * n_rows, -1), self.mix).reshape(n_critics * batch, n_rows, -1)
        out = proj[..., 0].unsqueeze(1) + row_dot(hidden.reshape(n_critics * batch, n, -1), proj[..., 1:])
        return out.reshape(n_critics, batch, n, n_rows)

    def noise_features(self, noise: th.Tensor) -> th.Tensor:
        """The input ``u`` of phi's last layer for each critic's draws: noise ``(B, K, N, k)`` to ``(K, B N, r)``."""
        n_critics = self.mix.shape[0]
        hidden = noise.transpose(0, 1).reshape(n_critics, -1, noise.shape[-1])
        for layer in self.phi_body:
            if isinstance(layer, nn.Module):
                hidden = layer(hidden)
            else:
                hidden = th.baddbmm(layer[1].unsqueeze(1), hidden, layer[0].transpose(1, 2))
        return hidden

    def mean_over_samples(self, features: th.Tensor, actions: th.Tensor, noise: th.Tensor) -> th.Tensor:
        """
        Each critic's mean return over its ``N`` samples ``(B, K)``: ``z`` is affine in phi's last-layer input ``u``,
        so the mean of ``z`` is ``z`` at the mean of ``u`` over the draws. The same number as averaging
        :meth:`forward`'s samples up to float round-off, without the per-sample products. Noise ``(1, K, N, k)``,
        shared by the batch, gives every row the same mean of ``u``, computed once (the actor's exact mean).
        """
        psi, _ = self.psi(features, actions, False)  # (K, B, H)
        n_critics = psi.shape[0]
        mean_features = self.noise_features(noise).reshape(n_critics, noise.shape[0], noise.shape[2], -1).mean(dim=2)
        proj = th.bmm(psi, self.mix)  # (K, B, 1 + r)
        z = proj[..., 0] + (proj[..., 1:] * mean_features).sum(dim=-1) + self.head_bias.unsqueeze(-1)
        return z.transpose(0, 1)

    def forward(
        self,
        features: th.Tensor,
        actions: th.Tensor,
        noise: th.Tensor,
        with_grad: bool = False,
        wrt_features: bool = False,
        directions: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """
        Every critic's :meth:`FactorizedSampleNet.forward` (forward-mode tangents; noise ``(B, K, N, k)``, one row
        per batch row): ``z`` ``(B, K, N)`` and, with ``with_grad``, the gradients ``(B, K, N, C)``.
        """
        psi, jac = self.psi(features, actions, with_grad, wrt_features, directions)
        rows = th.cat([psi.unsqueeze(2), jac], dim=2) if jac is not None else psi.unsqueeze(2)
        out = self.dot_coefficients(rows, noise).transpose(0, 1)  # (B, K, N, C)
        z = out[..., 0] + self.head_bias.unsqueeze(-1)
        return z, out[..., 1:] if with_grad else None


class GenerativeCritic(BaseModel):
    """
    Ensemble of ``n_critics`` generative Sobolev critics ``Z_k(s, a, xi)``.

    :param observation_space: observation space
    :param action_space: action space (Box)
    :param net_arch: hidden widths
    :param features_extractor: features extractor module
    :param features_dim: its output size
    :param activation_fn: activation of ``psi`` and ``phi`` (ReLU by default; one of ``JACOBIAN_ACTIVATIONS``)
    :param normalize_images: SB3's image normalisation flag (images are refused by the policy)
    :param n_critics: number of critics
    :param noise_dim: size ``k`` of the critic noise ``xi``
    :param architecture: ``"factorized"`` or ``"concat"``
    :param noise_net_arch: hidden widths of the noise embedding ``phi`` (factorized only)
    :param share_features_extractor: whether the features extractor is the actor's
    :param share_noise: draw the ``N`` noise samples once per call and share them across the batch (each
        ``phi(xi)`` is computed once; the batch's samples are then correlated, each one's are not biased)

    The attribute ``stack_critics`` (``True``) evaluates two or more factorized critics with per-row noise as one
    stacked ensemble (:class:`StackedFactorizedNets`); ``False`` runs them one by one, the same numbers up to
    float round-off.
    """

    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 2,
        noise_dim: int = 8,
        architecture: str = "factorized",
        noise_net_arch: list[int] | None = None,
        share_features_extractor: bool = False,
        share_noise: bool = False,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        if architecture not in CRITIC_ARCHITECTURES:
            raise ValueError(f"critic_architecture must be one of {CRITIC_ARCHITECTURES}, got {architecture!r}.")
        if n_critics < 1 or noise_dim < 1:
            raise ValueError(f"n_critics and critic_noise_dim must be >= 1, got {n_critics} and {noise_dim}.")
        self.action_dim = get_action_dim(action_space)
        self.n_critics, self.noise_dim, self.architecture = n_critics, noise_dim, architecture
        self.share_features_extractor = share_features_extractor
        self.share_noise = share_noise
        noise_net_arch = [64] if noise_net_arch is None else list(noise_net_arch)
        nets: list[nn.Module] = []
        for _ in range(n_critics):
            if architecture == "factorized":
                nets.append(
                    FactorizedSampleNet(features_dim, self.action_dim, noise_dim, net_arch, noise_net_arch, activation_fn)
                )
            else:
                nets.append(nn.Sequential(*create_mlp(features_dim + self.action_dim + noise_dim, 1, net_arch, activation_fn)))
        self.nets = nn.ModuleList(nets)
        # Evaluate two or more factorized critics as one stacked ensemble (StackedFactorizedNets): the same numbers,
        # fewer operations. False evaluates them one by one, as before (for comparisons).
        self.stack_critics = True

    def stacked_nets(
        self, noise: th.Tensor, with_grad: bool = False, wrt_features: bool = False, directions: th.Tensor | None = None
    ) -> StackedFactorizedNets | None:
        """
        The critics stacked for one call with ``noise`` ``(B, K, N, k)``, or None where they run one by one: the concat
        architecture, a single critic, noise shared across the batch, ``stack_critics=False``, and the reverse-mode
        gradient in ``(f, a)`` that :meth:`FactorizedSampleNet.forward` picks for fewer samples than inputs.
        """
        if not self.stack_critics or self.architecture != "factorized" or self.n_critics < 2 or noise.shape[0] == 1:
            return None
        first = self.nets[0]
        assert isinstance(first, FactorizedSampleNet)
        if first.reverse_mode(noise.shape[2], with_grad, wrt_features, directions):
            return None
        return StackedFactorizedNets.of(list(self.nets))  # type: ignore[arg-type]

    def sample_noise(self, batch_size: int, n_samples: int) -> th.Tensor:
        """Fresh critic noise ``(B, n_critics, n_samples, k)``, or ``(1, ...)`` when shared across the batch."""
        return th.randn(1 if self.share_noise else batch_size, self.n_critics, n_samples, self.noise_dim, device=self.device)

    def _features(self, obs: PyTorchObs) -> th.Tensor:
        with th.set_grad_enabled(not self.share_features_extractor and th.is_grad_enabled()):
            return self.extract_features(obs, self.features_extractor)

    def forward(self, obs: PyTorchObs, actions: th.Tensor, noise: th.Tensor) -> th.Tensor:
        """
        Return samples.

        :param obs: observations (batch ``B``); ``actions``: ``(B, A)``; ``noise``: ``(B, n_critics, N, k)``
        :return: ``z`` ``(B, n_critics, N)``
        """
        features = self._features(obs)
        stacked = self.stacked_nets(noise)
        if stacked is not None:
            return stacked.forward(features, actions, noise)[0]
        if self.architecture == "factorized":
            return th.stack([net(features, actions, noise[:, k])[0] for k, net in enumerate(self.nets)], dim=1)
        return th.stack([self._concat_forward(net, features, actions, noise[:, k]) for k, net in enumerate(self.nets)], dim=1)

    def mean_over_samples(self, obs: PyTorchObs, actions: th.Tensor, noise: th.Tensor) -> th.Tensor:
        """
        Each critic's mean return over the ``N`` draws of ``noise`` ``(B, n_critics, N, k)``: ``(B, n_critics)``, the
        mean over the last dimension of :meth:`forward`. The stacked factorized critics average the noise features
        instead of the samples (:meth:`StackedFactorizedNets.mean_over_samples`), which the actor's objective uses.
        """
        stacked = self.stacked_nets(noise)
        if stacked is None and self.architecture == "factorized" and noise.shape[0] == 1:  # shared draws: one mean
            stacked = StackedFactorizedNets.of(list(self.nets))  # type: ignore[arg-type]
        if stacked is not None:
            return stacked.mean_over_samples(self._features(obs), actions, noise)
        return self(obs, actions, noise).mean(dim=-1)

    @staticmethod
    def _concat_forward(net: nn.Module, features: th.Tensor, actions: th.Tensor, noise: th.Tensor) -> th.Tensor:
        n = noise.shape[1]
        noise = noise.expand(features.shape[0], -1, -1)
        rows = th.cat([features.unsqueeze(1).expand(-1, n, -1), actions.unsqueeze(1).expand(-1, n, -1), noise], dim=-1)
        return net(rows).squeeze(-1)  # (B, N)

    def forward_with_action_grad(
        self, obs: PyTorchObs, actions: th.Tensor, noise: th.Tensor, create_graph: bool = True
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Joint Sobolev samples: returns and their action gradients for fixed noise.

        :param create_graph: keep the gradient differentiable in the parameters (training); concat only
        :return: ``z`` ``(B, n_critics, N)`` and ``dz/da`` ``(B, n_critics, N, A)``
        """
        features = self._features(obs)
        stacked = self.stacked_nets(noise, with_grad=True)
        if stacked is not None:
            return stacked.forward(features, actions, noise, with_grad=True)  # type: ignore[return-value]
        if self.architecture == "factorized":
            outputs = [net(features, actions, noise[:, k], with_grad=True) for k, net in enumerate(self.nets)]
            return th.stack([z for z, _ in outputs], dim=1), th.stack([g for _, g in outputs], dim=1)  # type: ignore[misc]
        n = noise.shape[2]
        with th.enable_grad():
            # One copy of the action per sample, so one backward gives every sample its own gradient.
            rep = actions.detach().unsqueeze(1).expand(-1, n, -1).clone().requires_grad_(True)
            if actions.requires_grad:
                rep = rep + (actions - actions.detach()).unsqueeze(1)
            zs, grads = [], []
            for k, net in enumerate(self.nets):
                rows = th.cat([features.unsqueeze(1).expand(-1, n, -1), rep, noise[:, k].expand(rep.shape[0], -1, -1)], dim=-1)
                z = net(rows).squeeze(-1)
                (grad,) = th.autograd.grad(z.sum(), rep, create_graph=create_graph)
                zs.append(z)
                grads.append(grad)
        return th.stack(zs, dim=1), th.stack(grads, dim=1)

    def forward_with_directional_grad(
        self, obs: PyTorchObs, actions: th.Tensor, noise: th.Tensor, directions: th.Tensor, create_graph: bool = True
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Directional Sobolev samples: returns and their derivatives along ``k`` directions per batch row.

        The factorized critic carries ``k`` tangents through ``psi`` instead of the full Jacobian; the concat
        critic takes its full input gradient by autograd and projects it (no saving there).

        :param directions: ``(B, k, A)`` for derivatives in the action, or ``(B, k, S + A)`` for derivatives in the
            flat observation and the action (state part first; needs :meth:`check_state_gradient_support`)
        :param create_graph: keep the derivatives differentiable in the parameters (training); concat only
        :return: ``z`` ``(B, n_critics, N)`` and ``u_j . dz/dx`` ``(B, n_critics, N, k)``
        """
        wrt_state = directions.shape[-1] != self.action_dim
        if wrt_state:
            self.check_state_gradient_support()
        if self.architecture == "factorized":
            features = self._features(obs)
            stacked = self.stacked_nets(noise, True, wrt_state, directions)
            if stacked is not None:
                return stacked.forward(features, actions, noise, True, wrt_state, directions)  # type: ignore[return-value]
            outputs = [
                net(features, actions, noise[:, k], True, wrt_features=wrt_state, directions=directions)
                for k, net in enumerate(self.nets)
            ]
            return th.stack([z for z, _ in outputs], dim=1), th.stack([g for _, g in outputs], dim=1)  # type: ignore[misc]
        if wrt_state:
            z, state_grad, action_grad = self.forward_with_state_action_grad(obs, actions, noise, create_graph)
            grad = th.cat([state_grad, action_grad], dim=-1)
        else:
            z, grad = self.forward_with_action_grad(obs, actions, noise, create_graph)
        return z, th.einsum("bknd,bjd->bknj", grad, directions)

    def check_state_gradient_support(self) -> None:
        """Raise a ValueError unless ``dz/ds`` in the flat observation is available (Box observations, FlattenExtractor)."""
        if not isinstance(self.observation_space, spaces.Box) or not isinstance(self.features_extractor, FlattenExtractor):
            raise ValueError(
                "sobolev_inputs='state_action' needs a flat Box observation space and the FlattenExtractor (the state "
                f"gradient is taken in the flat observation), got {self.observation_space} and "
                f"{type(self.features_extractor).__name__}: use sobolev_inputs='action'."
            )

    def forward_with_state_action_grad(
        self, obs: PyTorchObs, actions: th.Tensor, noise: th.Tensor, create_graph: bool = True
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        Full Sobolev samples: returns and their gradients in the flat observation and in the action, for fixed noise.

        Needs Box observations and the FlattenExtractor, so that the features are the flat observation.

        :param create_graph: keep the gradients differentiable in the parameters (training); concat only
        :return: ``z`` ``(B, n_critics, N)``, ``dz/ds`` ``(B, n_critics, N, S)`` and ``dz/da`` ``(B, n_critics, N, A)``
        """
        self.check_state_gradient_support()
        features = self._features(obs)
        obs_dim = features.shape[-1]
        stacked = self.stacked_nets(noise, with_grad=True, wrt_features=True)
        if stacked is not None:
            z, grad = stacked.forward(features, actions, noise, with_grad=True, wrt_features=True)
            assert grad is not None
            return z, grad[..., :obs_dim], grad[..., obs_dim:]
        if self.architecture == "factorized":
            outputs = [net(features, actions, noise[:, k], True, wrt_features=True) for k, net in enumerate(self.nets)]
            grad = th.stack([g for _, g in outputs], dim=1)  # type: ignore[misc]  # (B, K, N, S + A)
            return th.stack([z for z, _ in outputs], dim=1), grad[..., :obs_dim], grad[..., obs_dim:]
        n = noise.shape[2]
        with th.enable_grad():
            # One copy of state and action per sample, so one backward gives every sample its own gradients.
            inputs = th.cat([features.detach(), actions.detach()], dim=-1)
            rep = inputs.unsqueeze(1).expand(-1, n, -1).clone().requires_grad_(True)
            if actions.requires_grad:
                rep = rep + th.cat([th.zeros_like(features), actions - actions.detach()], dim=-1).unsqueeze(1)
            zs, grads = [], []
            for k, net in enumerate(self.nets):
                z = net(th.cat([rep, noise[:, k].expand(rep.shape[0], -1, -1)], dim=-1)).squeeze(-1)
                (grad,) = th.autograd.grad(z.sum(), rep, create_graph=create_graph)
                zs.append(z)
                grads.append(grad)
        grad = th.stack(grads, dim=1)
        return th.stack(zs, dim=1), grad[..., :obs_dim], grad[..., obs_dim:]

    def action_gradient_samples(self, obs: PyTorchObs, actions: th.Tensor, n_samples: int) -> tuple[th.Tensor, th.Tensor]:
        """Fresh samples ``(z (B, K, n), dz/da (B, K, n, A))`` without a graph: for plots and diagnostics."""
        noise = self.sample_noise(actions.shape[0], n_samples)
        z, grad = self.forward_with_action_grad(obs, actions, noise, create_graph=False)
        return z.detach(), grad.detach()


class DSDPGPolicy(BasePolicy):
    """
    Policy of DSDPG: deterministic actor (SB3 TD3's), generative Sobolev critics, and target copies of both.

    :param observation_space: observation space (vectors or Dict of vectors; images are refused)
    :param action_space: action space
    :param lr_schedule: learning-rate schedule of actor and critic
    :param net_arch: hidden widths, a list for both or ``dict(pi=[...], qf=[...])``; default ``[256, 256]``
    :param activation_fn: activation of actor and critic (ReLU, TD3's, by default: the Sobolev loss and target use
        first derivatives only; SiLU, the default before the ladder of docs/ablations.md, lost return there)
    :param features_extractor_class: features extractor
    :param features_extractor_kwargs: its keyword arguments
    :param normalize_images: SB3's image normalisation flag
    :param optimizer_class: optimizer of actor and critic
    :param optimizer_kwargs: its keyword arguments, besides the learning rate (default for Adam: ``foreach=True``,
        one step over all parameter tensors, about twice as fast on a CPU for these small networks; DSDPG passes
        ``fused=True`` instead where torch has a fused Adam for its device, about three times faster again, see
        :mod:`sb3_dsdpg.updates`)
    :param n_critics: number of critics (paper: 2)
    :param critic_noise_dim: size ``k`` of the critic noise ``xi`` (ours: 8)
    :param critic_architecture: ``"factorized"`` (ours, default: faster) or ``"concat"``
    :param noise_net_arch: hidden widths of the factorized critic's noise embedding (ours: ``[64]``)
    :param share_features_extractor: share the features extractor between actor and critic
    :param share_critic_noise: share each update's critic noise draws across the batch (faster: one noise embedding
        per draw instead of one per batch row and draw; the default before the ladder of docs/ablations.md). Default
        ``False``: fresh draws per batch row, as the paper's sampling ``xi ~ N(0, I)`` per sample reads
    """

    actor: Actor
    actor_target: Actor
    critic: GenerativeCritic
    critic_target: GenerativeCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        critic_noise_dim: int = 8,
        critic_architecture: str = "factorized",
        noise_net_arch: list[int] | None = None,
        share_features_extractor: bool = False,
        share_critic_noise: bool = False,
    ):
        spaces_to_check = (
            observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else [observation_space]
        )
        if any(is_image_space(space, check_channels=False) for space in spaces_to_check):
            raise ValueError(
                "DSDPG does not support image observations (its world model works on flat vectors): "
                "use a vector observation space, or wrap the env to extract vector features first."
            )
        if optimizer_kwargs is None and optimizer_class is th.optim.Adam:
            optimizer_kwargs = {"foreach": True}
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        if net_arch is None:
            net_arch = [256, 256]
        actor_arch, critic_arch = get_actor_critic_arch(net_arch)
        for name, arch in (("net_arch", actor_arch), ("net_arch", critic_arch), ("noise_net_arch", noise_net_arch or [])):
            if any(isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 1 for width in arch):
                raise ValueError(f"{name} must list positive layer widths (ints >= 1), got {arch!r}.")
        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.share_features_extractor = share_features_extractor
        self.actor_kwargs = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": actor_arch,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
        }
        self.critic_kwargs = {
            **self.actor_kwargs,
            "net_arch": critic_arch,
            "n_critics": n_critics,
            "noise_dim": critic_noise_dim,
            "architecture": critic_architecture,
            "noise_net_arch": noise_net_arch,
            "share_features_extractor": share_features_extractor,
            "share_noise": share_critic_noise,
        }
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_actor(features_extractor=None)
        self.actor_target = self.make_actor(features_extractor=None)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.actor.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)
        if self.share_features_extractor:
            self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
            self.critic_target = self.make_critic(features_extractor=self.actor_target.features_extractor)
            critic_parameters = [p for name, p in self.critic.named_parameters() if "features_extractor" not in name]
        else:
            self.critic = self.make_critic(features_extractor=None)
            self.critic_target = self.make_critic(features_extractor=None)
            critic_parameters = list(self.critic.parameters())
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic.optimizer = self.optimizer_class(critic_parameters, lr=lr_schedule(1), **self.optimizer_kwargs)
        self.actor_target.set_training_mode(False)
        self.critic_target.set_training_mode(False)
        # Targets are never trained: their gradients are only taken with respect to inputs.
        self.actor_target.requires_grad_(False)
        self.critic_target.requires_grad_(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                activation_fn=self.activation_fn,
                n_critics=self.critic_kwargs["n_critics"],
                critic_noise_dim=self.critic_kwargs["noise_dim"],
                critic_architecture=self.critic_kwargs["architecture"],
                noise_net_arch=self.critic_kwargs["noise_net_arch"],
                share_critic_noise=self.critic_kwargs["share_noise"],
                lr_schedule=self._dummy_schedule,
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
                share_features_extractor=self.share_features_extractor,
            )
        )
        return data

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Actor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return Actor(**actor_kwargs).to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> GenerativeCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return GenerativeCritic(**critic_kwargs).to(self.device)

    def forward(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(observation, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        # The actor is deterministic; exploration comes from the algorithm's action noise.
        return self.actor(observation)

    def set_training_mode(self, mode: bool) -> None:
        """
        Put the actor and the critic in training or evaluation mode (batch normalisation, dropout), as TD3's policy
        does. ``nn.Module.train`` walks the module tree through ``nn.Module.__setattr__``, about 75 us a call at the
        quickstart's sizes, and SB3 calls this three times per environment step and update. So the modules of the
        actor and the critic are listed once (again when either is replaced) and their flags set directly: the same
        flags. A module whose class overrides ``train`` gets its own ``train(mode)`` called instead.
        """
        key = (id(self.actor), id(self.critic))
        cached = getattr(self, "_mode_modules", None)
        if cached is None or cached[0] != key:
            modules = list(dict.fromkeys([*self.actor.modules(), *self.critic.modules()]))
            custom = [module for module in modules if type(module).train is not nn.Module.train]
            plain = [module for module in modules if type(module).train is nn.Module.train]
            cached = self._mode_modules = (key, plain, custom)
        _, plain, custom = cached
        for module in plain:
            module.__dict__["training"] = mode
        for module in custom:
            module.train(mode)
        self.training = mode


MlpPolicy = DSDPGPolicy


class MultiInputPolicy(DSDPGPolicy):
    """:class:`DSDPGPolicy` for Dict observation spaces (features from SB3's ``CombinedExtractor``)."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        critic_noise_dim: int = 8,
        critic_architecture: str = "factorized",
        noise_net_arch: list[int] | None = None,
        share_features_extractor: bool = False,
        share_critic_noise: bool = True,
    ):
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
            n_critics,
            critic_noise_dim,
            critic_architecture,
            noise_net_arch,
            share_features_extractor,
            share_critic_noise,
        )
