"""Distribution losses between sets of samples: MMD^2 and max-sliced MMD^2, plus the MAGE Sobolev loss.

This module owns the sample-set distances the critic is trained with (SPEC section 4). Every function is
batched over a leading batch dimension and contains no Python loop over samples or batch elements.
It imports nothing from the rest of the package.

Shapes: ``x`` is ``(B, N, D)`` (online samples), ``y`` is ``(B, M, D)`` (target samples); results are ``(B,)``.
"""

from collections.abc import Sequence

import torch as th

KERNELS = ("multiquadric", "gaussian")

# Bandwidths of the Gaussian mixture kernel when none are given, after MMD-DQN's mixture of scales.
DEFAULT_GAUSSIAN_BANDWIDTHS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)


def _check_kernel(kernel: str, bandwidth: float | Sequence[float]) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}: use one of {KERNELS}.")
    values = [bandwidth] if isinstance(bandwidth, int | float) else list(bandwidth)
    if len(values) == 0 or any(not (float(h) > 0) for h in values):
        raise ValueError(f"kernel_bandwidth must be positive (got {bandwidth!r}).")


def kernel_from_sq_dist(
    sq_dist: th.Tensor, kernel: str = "multiquadric", bandwidth: float | Sequence[float] = 100.0
) -> th.Tensor:
    """
    Evaluate a kernel on squared distances.

    :param sq_dist: squared Euclidean distances, any shape
    :param kernel: ``"multiquadric"``: ``-sqrt(1 + h^2 d^2)`` (the paper's kernel, ``h = bandwidth``);
        ``"gaussian"``: mean over bandwidths ``h`` of ``exp(-d^2 / (2 h^2))``
    :param bandwidth: ``h`` (a float), or for ``"gaussian"`` also a sequence of bandwidths
    :return: kernel values, same shape as ``sq_dist``
    """
    if kernel == "multiquadric":
        h = float(bandwidth) if isinstance(bandwidth, int | float) else float(bandwidth[0])
        return -th.sqrt(1.0 + h * h * sq_dist)
    if kernel == "gaussian":
        hs = [float(bandwidth)] if isinstance(bandwidth, int | float) else [float(h) for h in bandwidth]
        h2 = sq_dist.new_tensor(hs).pow(2)
        return th.exp(-sq_dist.unsqueeze(-1) / (2.0 * h2)).mean(dim=-1)
    raise ValueError(f"Unknown kernel {kernel!r}: use one of {KERNELS}.")


def _kernel_and_slope(diff: th.Tensor, kernel: str, bandwidth: float | Sequence[float]) -> tuple[th.Tensor, th.Tensor]:
    """Kernel value and its derivative ``dk/dd`` at signed 1-D differences ``d`` (shared square roots and exps)."""
    if kernel == "multiquadric":
        h2 = float(bandwidth if isinstance(bandwidth, int | float) else bandwidth[0]) ** 2
        root = th.sqrt(1.0 + h2 * diff * diff)
        return -root, -h2 * diff / root
    hs = [float(bandwidth)] if isinstance(bandwidth, int | float) else [float(h) for h in bandwidth]
    inv = 1.0 / diff.new_tensor(hs).pow(2)
    gauss = th.exp(-0.5 * (diff * diff).unsqueeze(-1) * inv)
    return gauss.mean(-1), -(gauss * inv).mean(-1) * diff


def _pool(x: th.Tensor, y: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """
    Stack both sets into ``p`` ``(B, N + M, D)`` and the products ``w_i w_j`` of signed weights (``1/N``, ``-1/M``).

    Then ``MMD^2 = sum_ij w_i w_j k(p_i, p_j)``: one pairwise matrix instead of three.
    """
    n, m = x.shape[1], y.shape[1]
    w = th.cat([x.new_full((n,), 1.0 / n), x.new_full((m,), -1.0 / m)])
    return th.cat([x, y], dim=1), w.unsqueeze(-1) * w.unsqueeze(0)


def _as_sets(x: th.Tensor, y: th.Tensor, name: str) -> tuple[th.Tensor, th.Tensor]:
    x = x.unsqueeze(-1) if x.dim() == 2 else x
    y = y.unsqueeze(-1) if y.dim() == 2 else y
    if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{name} needs x (B, N, D) and y (B, M, D) with equal B and D, got {tuple(x.shape)}, {tuple(y.shape)}."
        )
    return x, y


def mmd2(
    x: th.Tensor,
    y: th.Tensor,
    kernel: str = "multiquadric",
    bandwidth: float | Sequence[float] = 100.0,
) -> th.Tensor:
    """
    Squared maximum mean discrepancy between two batches of sample sets (V-statistic).

    ``mean k(x, x') + mean k(y, y') - 2 mean k(x, y)``, every mean over all pairs, diagonal included.

    :param x: samples ``(B, N, D)`` (or ``(B, N)`` for scalars)
    :param y: samples ``(B, M, D)`` (or ``(B, M)``)
    :param kernel: ``"multiquadric"`` or ``"gaussian"``, see :func:`kernel_from_sq_dist`
    :param bandwidth: kernel bandwidth ``h``
    :return: ``(B,)``
    """
    _check_kernel(kernel, bandwidth)
    x, y = _as_sets(x, y, "mmd2")
    p, ww = _pool(x, y)
    sq_dist = (p.unsqueeze(2) - p.unsqueeze(1)).pow(2).sum(-1)  # (B, P, P), exact zeros on the diagonal
    return (kernel_from_sq_dist(sq_dist, kernel, bandwidth) * ww).sum(dim=(-2, -1))


def _pairs(p: th.Tensor, ww: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    Differences ``p_i - p_j`` over the pairs ``i < j`` ``(B, Q, D)``, their weights ``2 w_i w_j`` ``(Q,)``, and the
    diagonal's constant share ``sum_i w_i^2`` of the MMD^2 (times ``k(0)``). Half the pairs of the full matrix.
    """
    i, j = th.triu_indices(p.shape[1], p.shape[1], offset=1, device=p.device)
    return p[:, i] - p[:, j], 2.0 * ww[i, j], ww.diagonal().sum()


def _slice_value(
    delta: th.Tensor, weights: th.Tensor, theta: th.Tensor, kernel: str, bandwidth: float | Sequence[float]
) -> th.Tensor:
    """Off-diagonal part of the 1-D MMD^2 along each ``theta`` ``(B, C, D)``: ``(B, C)``."""
    diff = th.einsum("bqd,bcd->bcq", delta, theta)
    if kernel == "multiquadric":
        h2 = float(bandwidth if isinstance(bandwidth, int | float) else bandwidth[0]) ** 2
        return -(diff.square_().mul_(h2).add_(1.0).sqrt_() @ weights)
    return kernel_from_sq_dist(diff.square_(), kernel, bandwidth) @ weights


def _slice_value_and_grad(
    delta: th.Tensor, weights: th.Tensor, theta: th.Tensor, kernel: str, bandwidth: float | Sequence[float]
) -> tuple[th.Tensor, th.Tensor]:
    """:func:`_slice_value` and its gradient in ``theta`` ``(B, C, D)``."""
    diff = th.einsum("bqd,bcd->bcq", delta, theta)  # (B, C, Q)
    value, slope = _kernel_and_slope(diff, kernel, bandwidth)
    return value @ weights, th.einsum("bcq,bqd->bcd", slope * weights, delta)


def slice_direction_gradient(
    x: th.Tensor, y: th.Tensor, theta: th.Tensor, kernel: str = "multiquadric", bandwidth: float | Sequence[float] = 100.0
) -> tuple[th.Tensor, th.Tensor]:
    """
    Value and analytic gradient in ``theta`` of the 1-D MMD^2 of the projections ``x . theta`` and ``y . theta``.

    With pooled samples ``p``, weights ``w`` and ``d_ij = (p_i - p_j) . theta``, the value is
    ``sum_i w_i^2 k(0) + 2 sum_{i<j} w_i w_j k(d_ij)`` and the gradient ``2 sum_{i<j} w_i w_j k'(d_ij) (p_i - p_j)``.

    :param x: ``(B, N, D)``; ``y``: ``(B, M, D)``; ``theta``: ``(B, C, D)`` candidate directions
    :return: value ``(B, C)`` and gradient ``(B, C, D)``
    """
    x, y = _as_sets(x, y, "slice_direction_gradient")
    delta, weights, diagonal = _pairs(*_pool(x, y))
    value, grad = _slice_value_and_grad(delta, weights, theta, kernel, bandwidth)
    k0 = kernel_from_sq_dist(x.new_zeros(()), kernel, bandwidth)
    return value + k0 * diagonal, grad


def max_sliced_mmd2(
    x: th.Tensor,
    y: th.Tensor,
    kernel: str = "multiquadric",
    bandwidth: float | Sequence[float] = 100.0,
    n_slice_candidates: int = 8,
    n_slice_steps: int = 5,
    step_size: float = 0.5,
    return_direction: bool = False,
    generator: th.Generator | None = None,
) -> th.Tensor | tuple[th.Tensor, th.Tensor]:
    """
    Max-sliced MMD^2: the largest 1-D MMD^2 over unit directions ``theta`` of the projected samples.

    One direction per batch element. The search starts from the best of ``n_slice_candidates`` random unit
    directions, the first axis (the return axis of a joint (return, gradient) sample) and the difference of
    the two sets' means, then takes ``n_slice_steps`` projected gradient-ascent steps on detached samples,
    each kept only if it improves (adaptive step length).
    The returned loss is the 1-D MMD^2 at that detached direction, differentiable in ``x`` and ``y``
    (envelope theorem: the direction's own dependence on the samples does not enter the gradient).

    :param x: ``(B, N, D)`` (or ``(B, N)``); ``y``: ``(B, M, D)``
    :param n_slice_candidates: random starting directions besides the first axis
    :param n_slice_steps: projected gradient-ascent steps on the sphere
    :param step_size: length of a step along the normalised tangent gradient (radians, roughly)
    :param return_direction: also return the directions ``(B, D)``
    :param generator: torch generator for the random candidates
    :return: ``(B,)``, and the directions if asked
    """
    _check_kernel(kernel, bandwidth)
    x, y = _as_sets(x, y, "max_sliced_mmd2")
    batch, dim = x.shape[0], x.shape[-1]
    delta, weights, diagonal = _pairs(*_pool(x, y))
    with th.no_grad():
        dd = delta.detach()
        candidates = th.zeros(batch, 1, dim, dtype=x.dtype, device=x.device)
        candidates[..., 0] = 1.0
        if dim > 1:
            # Ours, beside the spec's random starts: the difference of the means, the direction of a pure shift.
            shift = (x.detach().mean(1) - y.detach().mean(1)).unsqueeze(1)
            rand = th.randn(batch, n_slice_candidates, dim, dtype=x.dtype, device=x.device, generator=generator)
            extra = th.cat([shift, rand], dim=1)
            candidates = th.cat([candidates, extra / extra.norm(dim=-1, keepdim=True).clamp_min(1e-12)], dim=1)
        # Values only for the candidates; the gradient only at the best of them.
        best_value, idx = _slice_value(dd, weights, candidates, kernel, bandwidth).max(dim=1)
        best_theta = candidates[th.arange(batch, device=x.device), idx]  # (B, D)
        grad = _slice_value_and_grad(dd, weights, best_theta.unsqueeze(1), kernel, bandwidth)[1].squeeze(1)
        # Ascent on the sphere with a per-element step that grows after a gain and halves after a loss;
        # a step that does not improve is not taken, so the result never falls below the best candidate.
        step = th.full((batch, 1), step_size, dtype=x.dtype, device=x.device)
        for _ in range(n_slice_steps if dim > 1 else 0):
            tangent = grad - (grad * best_theta).sum(-1, keepdim=True) * best_theta
            trial = best_theta + step * tangent / tangent.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            trial = trial / trial.norm(dim=-1, keepdim=True)
            value, trial_grad = _slice_value_and_grad(dd, weights, trial.unsqueeze(1), kernel, bandwidth)
            improved = (value.squeeze(1) > best_value).unsqueeze(-1)
            best_value = th.where(improved.squeeze(-1), value.squeeze(1), best_value)
            best_theta = th.where(improved, trial, best_theta)
            grad = th.where(improved, trial_grad.squeeze(1), grad)
            step = th.where(improved, step * 1.5, step * 0.5)
    value, _ = _kernel_and_slope(th.einsum("bqd,bd->bq", delta, best_theta), kernel, bandwidth)
    loss = value @ weights + kernel_from_sq_dist(x.new_zeros(()), kernel, bandwidth) * diagonal
    if return_direction:
        return loss, best_theta
    return loss


def sobolev_huber_loss(
    q: th.Tensor,
    q_grad: th.Tensor,
    target: th.Tensor,
    target_grad: th.Tensor,
    delta: float = 1.0,
    gradient_weight: float = 5.0,
) -> th.Tensor:
    """
    MAGE's deterministic Sobolev TD loss: ``Huber(q - y) + w * Huber(||dq/da - dy/da||)``, batch mean.

    :param q: ``(B,)`` online values; ``q_grad``: ``(B, A)`` their action gradients
    :param target: ``(B,)``; ``target_grad``: ``(B, A)``
    :param delta: Huber threshold
    :param gradient_weight: weight of the gradient term (MAGE: 5)
    """
    value_term = th.nn.functional.huber_loss(q, target, delta=delta)
    grad_err = (q_grad - target_grad).pow(2).sum(-1).add(1e-12).sqrt()
    grad_term = th.nn.functional.huber_loss(grad_err, th.zeros_like(grad_err), delta=delta)
    return value_term + gradient_weight * grad_term
