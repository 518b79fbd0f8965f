"""The max-sliced search of the multiquadric MMD^2 as one compiled loop (numba), for CPU tensors.

The critic's distance (max-sliced MMD, arXiv 2601.20071, Sec. 4) looks for the unit direction along which the
projected online and target samples differ most. :func:`sb3_dsdpg.losses.max_sliced_mmd2` runs that search as torch
operations, each a pass over every pair difference of every batch element: about ten operations per evaluated
direction and some sixteen directions an update, so that on a CPU the search pays more for launching operations and
for the round trips of its buffers through memory than for arithmetic. This module runs the same search (same
starting directions, same ascent steps, same acceptance rule) as one numba function that evaluates each pair once,
in registers, vectorised along the batch: about five times faster at the defaults' shapes (docs/benchmarks.md).

It owns :func:`search`, which returns the best direction, its value and the value's derivative in the points'
projections, and :func:`available`, which says whether numba is installed. It imports nothing from the rest of the
package; without numba, :mod:`sb3_dsdpg.losses` keeps its torch search.
"""

import functools

import numpy as np
import torch as th

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; a platform without its wheels keeps the torch search
    numba = None

# IEEE division (error_model="numpy": no ZeroDivisionError branch, which stops the vectoriser) and the fast-math
# flags that let the loops vectorise and reorder sums, but not approximate square roots or reciprocals.
_FLAGS = {"nnan", "ninf", "nsz", "contract", "reassoc"}


def available() -> bool:
    """Whether the compiled search can run (numba imports)."""
    return numba is not None


def _jit(function):  # type: ignore[no-untyped-def]
    return numba.njit(fastmath=_FLAGS, error_model="numpy", boundscheck=False, cache=True, nogil=True)(function)


def _evaluate(proj, pair_weight, bias, value, coef, slope):  # type: ignore[no-untyped-def]
    """
    1-D MMD^2 ``value`` ``(B,)`` of the projections ``proj`` ``(P, B)``, and if ``coef`` ``(P, B)`` has rows its
    derivative in each projection. Kernel ``-sqrt(1 + d^2)`` on the pair differences ``d = proj_j - proj_i``,
    ``pair_weight[i, j]`` the pair's weight (``2 w_i w_j`` and the kernel's sign), ``bias`` the diagonal's share.
    """
    n_points, batch = proj.shape
    one = proj.dtype.type(1.0)
    need_coef = coef.shape[0] > 0
    for b in range(batch):
        value[b] = bias
    if need_coef:
        for i in range(n_points):
            for b in range(batch):
                coef[i, b] = 0.0
    for i in range(n_points - 1):
        row_i = proj[i]
        for j in range(i + 1, n_points):
            row_j, weight = proj[j], pair_weight[i, j]
            if not need_coef:
                for b in range(batch):
                    d = row_j[b] - row_i[b]
                    value[b] += weight * np.sqrt(one + d * d)
                continue
            # Three loops of one store each: a loop that writes two arrays is not vectorised.
            for b in range(batch):
                d = row_j[b] - row_i[b]
                slope[b] = one / np.sqrt(one + d * d)
            for b in range(batch):
                d = row_j[b] - row_i[b]
                value[b] += weight * ((one + d * d) * slope[b])
            for b in range(batch):
                slope[b] *= weight * (row_j[b] - row_i[b])
            coef_i, coef_j = coef[i], coef[j]
            for b in range(batch):
                coef_j[b] += slope[b]
            for b in range(batch):
                coef_i[b] -= slope[b]


def _project(points, theta, proj):  # type: ignore[no-untyped-def]
    """``proj[i, b] = points[i, :, b] . theta[:, b]``; ``points`` ``(P, D, B)``, ``theta`` ``(D, B)``."""
    n_points, dim, batch = points.shape
    for i in range(n_points):
        row = proj[i]
        for b in range(batch):
            row[b] = 0.0
        for k in range(dim):
            p, t = points[i, k], theta[k]
            for b in range(batch):
                row[b] += p[b] * t[b]


def _search(points, candidates, pair_weight, bias, n_steps, step_size, theta, value, coef):  # type: ignore[no-untyped-def]
    """
    The search of :func:`sb3_dsdpg.losses.max_sliced_mmd2` on the scaled points ``(P, D, B)`` from the starting
    directions ``candidates`` ``(B, C, D)``: the best start, then ``n_steps`` projected gradient-ascent steps on the
    sphere, each kept only if it improves, the step length growing by half after a gain and halving after a loss.
    Writes the best direction ``theta`` ``(D, B)``, its ``value`` ``(B,)`` and the derivative ``coef`` ``(P, B)``.
    """
    n_points, dim, batch = points.shape
    n_candidates = candidates.shape[1]
    dtype = points.dtype
    proj = np.empty((n_points, batch), dtype)
    slope = np.empty(batch, dtype)
    no_coef = np.empty((0, batch), dtype)
    trial_value = np.empty(batch, dtype)
    direction = np.empty((dim, batch), dtype)
    # The best start: values only, the first best kept on ties (as torch's max over the candidates).
    for c in range(n_candidates):
        for k in range(dim):
            for b in range(batch):
                direction[k, b] = candidates[b, c, k]
        _project(points, direction, proj)
        _evaluate(proj, pair_weight, bias, trial_value, no_coef, slope)
        for b in range(batch):
            if c == 0 or trial_value[b] > value[b]:
                value[b] = trial_value[b]
                for k in range(dim):
                    theta[k, b] = direction[k, b]
    _project(points, theta, proj)
    _evaluate(proj, pair_weight, bias, trial_value, coef, slope)
    if dim == 1:
        return
    trial_coef = np.empty((n_points, batch), dtype)
    step = np.full(batch, step_size, dtype)
    grad = np.empty((dim, batch), dtype)
    along = np.empty(batch, dtype)
    norm = np.empty(batch, dtype)
    tiny = dtype.type(1e-12)
    for _ in range(n_steps):
        # The gradient in theta, sum_i coef_i p_i, its part tangent to the sphere, a step along it, back on the sphere.
        for k in range(dim):
            for b in range(batch):
                grad[k, b] = 0.0
            for i in range(n_points):
                p, c_i = points[i, k], coef[i]
                for b in range(batch):
                    grad[k, b] += c_i[b] * p[b]
        for b in range(batch):
            along[b] = 0.0
            norm[b] = 0.0
        for k in range(dim):
            for b in range(batch):
                along[b] += grad[k, b] * theta[k, b]
        for k in range(dim):
            for b in range(batch):
                grad[k, b] -= theta[k, b] * along[b]
                norm[b] += grad[k, b] * grad[k, b]
        for b in range(batch):
            norm[b] = step[b] / max(np.sqrt(norm[b]), tiny)
            along[b] = 0.0
        for k in range(dim):
            for b in range(batch):
                direction[k, b] = theta[k, b] + grad[k, b] * norm[b]
                along[b] += direction[k, b] * direction[k, b]
        for b in range(batch):
            along[b] = np.sqrt(along[b])
        for k in range(dim):
            for b in range(batch):
                direction[k, b] /= along[b]
        _project(points, direction, proj)
        _evaluate(proj, pair_weight, bias, trial_value, trial_coef, slope)
        for b in range(batch):
            if trial_value[b] > value[b]:
                value[b] = trial_value[b]
                for k in range(dim):
                    theta[k, b] = direction[k, b]
                for i in range(n_points):
                    coef[i, b] = trial_coef[i, b]
                step[b] *= 1.5
            else:
                step[b] *= 0.5


if numba is not None:
    _evaluate = _jit(_evaluate)
    _project = _jit(_project)
    _search = _jit(_search)


@functools.lru_cache(maxsize=64)
def _pair_weights(n: int, m: int, dtype: str) -> tuple[np.ndarray, np.generic]:
    """The weights ``-2 w_i w_j`` of the pairs and the diagonal's share ``-sum_i w_i^2`` (``w``: ``1/n``, ``-1/m``)."""
    w = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    pair_weight = (-2.0 * np.outer(w, w)).astype(dtype)  # k = -sqrt(1 + d^2)
    pair_weight.flags.writeable = False
    return pair_weight, np.dtype(dtype).type(-(w * w).sum())  # k(0) = -1 on the diagonal


def search(
    points: th.Tensor, n: int, candidates: th.Tensor, n_steps: int, step_size: float
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    The max-sliced search of the multiquadric MMD^2, compiled.

    :param points: the pooled points, the ``n`` online ones first, times the bandwidth ``h`` and batch last
        ``(P, D, B)`` (the kernel is then ``-sqrt(1 + d^2)`` on their projections; float32 or float64)
    :param candidates: unit starting directions ``(B, C, D)``
    :param n_steps: ascent steps; ``step_size``: their first length
    :return: the best direction ``(D, B)``, its MMD^2 ``(B,)`` and that value's derivative in the scaled
        projections ``(P, B)`` (new tensors, on the CPU)
    """
    if numba is None:
        raise RuntimeError("The compiled max-sliced search needs numba: pip install numba.")
    np_points = points.detach().contiguous().numpy()
    np_candidates = candidates.detach().to(points.dtype).contiguous().numpy()
    (n_points, dim, batch), dtype = np_points.shape, np_points.dtype
    pair_weight, bias = _pair_weights(n, n_points - n, dtype.name)
    theta, value, coef = np.empty((dim, batch), dtype), np.empty(batch, dtype), np.empty((n_points, batch), dtype)
    _search(np_points, np_candidates, pair_weight, bias, int(n_steps), dtype.type(step_size), theta, value, coef)
    return th.from_numpy(theta), th.from_numpy(value), th.from_numpy(coef)
