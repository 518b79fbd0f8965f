"""The multiquadric MMD^2 of whole sample vectors, value and gradient in one compiled pass (numba), for CPU tensors.

The critic's default distance (plain MMD on the joint (return, gradient) samples; arXiv 2601.20071, Sec. 4 names
MMD beside its max-sliced form) compares ``B`` pairs of sets of ``N`` and ``M`` points. As torch operations it forms
every pair difference ``(B, N + M, N + M, D)`` and its kernel, then autograd keeps and walks them back: some fifteen
passes over memory for a few arithmetic operations per pair, 15 ms forward and backward at the defaults' shapes
(``B`` = 512 row-critics, 10 + 18 points of 2 coordinates). This module evaluates each pair once, in registers,
vectorised along the batch, and writes the value and its derivative in every point: about a tenth of that
(docs/benchmarks.md).

It owns :func:`mmd2_and_grad`. It shares the compilation options of :mod:`sb3_dsdpg.sliced_search` and imports
nothing else from the package; without numba, :func:`sb3_dsdpg.losses.mmd2` keeps its torch path.
"""

import numpy as np
import torch as th

from sb3_dsdpg.sliced_search import _jit, available, numba

__all__ = ["available", "mmd2_and_grad"]


def _mmd2(points, pair_weight, bias, value, grad, square):  # type: ignore[no-untyped-def]
    """
    ``value`` ``(B,)`` = ``bias + sum_{i < j} pair_weight[i, j] sqrt(1 + ||p_j - p_i||^2)`` for ``points``
    ``(P, D, B)`` (already times the bandwidth), and its derivative in each point ``grad`` ``(P, D, B)``.
    ``square`` ``(B,)`` is scratch.
    """
    n_points, dim, batch = points.shape
    one = points.dtype.type(1.0)
    for b in range(batch):
        value[b] = bias
    for i in range(n_points):
        for k in range(dim):
            for b in range(batch):
                grad[i, k, b] = 0.0
    for i in range(n_points - 1):
        for j in range(i + 1, n_points):
            weight = pair_weight[i, j]
            for b in range(batch):
                square[b] = one
            for k in range(dim):
                p_i, p_j = points[i, k], points[j, k]
                for b in range(batch):
                    d = p_j[b] - p_i[b]
                    square[b] += d * d
            for b in range(batch):
                inverse = one / np.sqrt(square[b])
                value[b] += weight * (square[b] * inverse)
                square[b] = weight * inverse  # now the slope's factor
            for k in range(dim):
                p_i, p_j, g_i, g_j = points[i, k], points[j, k], grad[i, k], grad[j, k]
                for b in range(batch):
                    slope = square[b] * (p_j[b] - p_i[b])
                    g_j[b] += slope
                    g_i[b] -= slope


if numba is not None:
    _mmd2 = _jit(_mmd2)


def mmd2_and_grad(x: th.Tensor, y: th.Tensor, bandwidth: float, weights: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    The multiquadric MMD^2 ``sum_ij W_ij k(p_i, p_j)`` (kernel ``-sqrt(1 + h^2 ||a - b||^2)``) of the pooled sets
    ``x`` ``(B, N, D)`` and ``y`` ``(B, M, D)``, and its derivatives in their points, compiled.

    :param bandwidth: the kernel's ``h``
    :param weights: the pair weights ``W`` ``(N + M, N + M)``, symmetric (:func:`sb3_dsdpg.losses.pair_weights`:
        the V- or the U-statistic)
    :return: the value ``(B,)`` and its gradients ``(B, N, D)`` and ``(B, M, D)`` (new tensors on the CPU, in the
        samples' dtype, float32 or float64)
    """
    if numba is None:
        raise RuntimeError("The compiled MMD needs numba: pip install numba.")
    (batch, n, dim), m = x.shape, y.shape[1]
    if x.dtype not in (th.float32, th.float64):
        raise ValueError(f"The compiled MMD takes float32 or float64 samples, got {x.dtype}.")
    dtype = np.dtype(np.float32 if x.dtype == th.float32 else np.float64)
    scale = dtype.type(bandwidth)
    points = th.cat([x.detach(), y.detach().to(x.dtype)], dim=1).permute(1, 2, 0).mul(float(scale)).contiguous()
    # Each pair i < j twice, the kernel's sign folded in; a point with itself adds W_ii k(0) = -W_ii.
    pair_weight = (-2.0 * weights).to(x.dtype).numpy()
    bias = dtype.type(-float(weights.diagonal().sum()))
    value, grad = np.empty(batch, dtype), np.empty((n + m, dim, batch), dtype)
    _mmd2(points.numpy(), pair_weight, bias, value, grad, np.empty(batch, dtype))
    grad_points = th.from_numpy(grad).permute(2, 0, 1).mul_(float(scale))  # (B, P, D), in unscaled coordinates
    return th.from_numpy(value), grad_points[:, :n], grad_points[:, n:]
