"""The max-sliced search of the multiquadric MMD^2 as one compiled loop (numba), for CPU tensors.

The critic's distance (max-sliced MMD, arXiv 2601.20071, Sec. 4) looks for the unit direction along which the
projected online and target samples differ most. :func:`sb3_dsdpg.losses.max_sliced_mmd2` runs that search as torch
operations, each a pass over every pair difference of every batch element: about ten operations per evaluated
direction and some sixteen directions an update, so that on a CPU the search pays more for launching operations and
for the round trips of its buffers through memory than for arithmetic. This module runs the same search (same
starting directions, same ascent steps, same acceptance rule) as one numba function that evaluates each pair once,
in registers, vectorised along the batch: 4.5-5.2x faster, forward and backward, at the defaults' 2-D samples
(docs/benchmarks.md).

It owns :func:`search`, which returns the best direction, its value and the value's derivative in the points'
projections, and :func:`available`, which says whether numba is installed. It imports nothing from the rest of the
package; without numba, :mod:`sb3_dsdpg.losses` keeps its torch search.
"""

import numpy as np
import torch as th

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; a platform without its wheels keeps the torch search
    numba = None

# IEEE division (error_model="numpy": no ZeroDivisionError branch, which stops the vectoriser) and the fast-math
# flags that let the loops vectorise and reorder sums, but neither approximate square roots or reciprocals nor assume
# finite values: a NaN or infinite sample gives a NaN loss, as in the torch search, and DSDPG's finite-loss check
# names it. (Without the "nnan" and "ninf" flags the machine code gave the same numbers at the same speed.)
_FLAGS = {"nsz", "contract", "reassoc"}


def available() -> bool:
    """Whether the compiled search can run (numba imports)."""
    return numba is not None


def _jit(function):  # type: ignore[no-untyped-def]
    """
    The function compiled on its first call for the argument types it gets. The machine code is cached beside this
    file (or in numba's per-user cache), so that only the first process after an install pays the compilation
    (a few seconds); where no cache can be written, every process does.
    """
    options = dict(fastmath=_FLAGS, error_model="numpy", boundscheck=False, nogil=True)
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(cache=False, **options)(function)


def _evaluate(proj, pair_weight, bias, value, coef):  # type: ignore[no-untyped-def]
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
            # One pass per pair: value and both points' derivatives (with error_model="numpy" this loop vectorises,
            # and ran a fifth faster than three passes of one store each).
            coef_i, coef_j = coef[i], coef[j]
            for b in range(batch):
                d = row_j[b] - row_i[b]
                radicand = one + d * d
                inverse = one / np.sqrt(radicand)
                value[b] += weight * (radicand * inverse)
                slope = weight * d * inverse
                coef_j[b] += slope
                coef_i[b] -= slope


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


def _starts(x, y, rand, candidates):  # type: ignore[no-untyped-def]
    """
    The starting directions ``(C, D, B)`` of the search: the first axis, then (``D > 1``) the difference of the sets'
    means and the random normal draws ``rand`` ``(B, C - 2, D)``, each divided by its norm (floored at 1e-12).
    """
    n_candidates, dim, batch = candidates.shape
    tiny = candidates.dtype.type(1e-12)
    for k in range(dim):
        for b in range(batch):
            candidates[0, k, b] = 1.0 if k == 0 else 0.0
    if n_candidates == 1:
        return
    n, m = x.shape[1], y.shape[1]
    for b in range(batch):
        for k in range(dim):
            mean_x, mean_y = x.dtype.type(0.0), y.dtype.type(0.0)
            for i in range(n):
                mean_x += x[b, i, k]
            for i in range(m):
                mean_y += y[b, i, k]
            candidates[1, k, b] = mean_x / n - mean_y / m
        for c in range(2, n_candidates):
            for k in range(dim):
                candidates[c, k, b] = rand[b, c - 2, k]
        for c in range(1, n_candidates):
            norm = candidates.dtype.type(0.0)
            for k in range(dim):
                norm += candidates[c, k, b] * candidates[c, k, b]
            norm = max(np.sqrt(norm), tiny)
            for k in range(dim):
                candidates[c, k, b] /= norm


def _search(x, y, rand, scale, n_steps, step_size, theta_out, value, coef_out):  # type: ignore[no-untyped-def]
    """
    The search of :func:`sb3_dsdpg.losses.max_sliced_mmd2` on ``x`` ``(B, N, D)`` and ``y`` ``(B, M, D)`` times
    ``scale`` (the bandwidth: the kernel is then ``-sqrt(1 + d^2)``): the best of the starts of :func:`_starts`, then
    ``n_steps`` projected gradient-ascent steps on the sphere, each kept only if it improves, the step length growing
    by half after a gain and halving after a loss. Writes the best direction ``theta_out`` ``(B, D)``, its ``value``
    ``(B,)`` and the value's derivative in the unscaled projections ``coef_out`` ``(B, P)``.
    """
    batch, n, dim = x.shape
    m = y.shape[1]
    n_points = n + m
    dtype = value.dtype
    # The pooled points, online first, times the scale, batch last: each pass below runs along the batch.
    points = np.empty((n_points, dim, batch), dtype)
    for b in range(batch):
        for i in range(n):
            for k in range(dim):
                points[i, k, b] = x[b, i, k] * scale
        for i in range(m):
            for k in range(dim):
                points[n + i, k, b] = y[b, i, k] * scale
    w_x, w_y = 1.0 / n, -1.0 / m
    pair_weight = np.empty((n_points, n_points), dtype)  # 2 w_i w_j times the kernel's sign
    for i in range(n_points):
        for j in range(n_points):
            pair_weight[i, j] = -2.0 * (w_x if i < n else w_y) * (w_x if j < n else w_y)
    bias = dtype.type(-(n * w_x * w_x + m * w_y * w_y))  # the diagonal's share, k(0) = -1
    candidates = np.empty((rand.shape[1] + 2 if dim > 1 else 1, dim, batch), dtype)
    _starts(x, y, rand, candidates)
    n_candidates = candidates.shape[0]
    proj = np.empty((n_points, batch), dtype)
    no_coef = np.empty((0, batch), dtype)
    trial_value = np.empty(batch, dtype)
    theta = np.empty((dim, batch), dtype)
    coef = np.empty((n_points, batch), dtype)
    # The best start: values only, the first best kept on ties (as torch's max over the candidates).
    for c in range(n_candidates):
        _project(points, candidates[c], proj)
        _evaluate(proj, pair_weight, bias, trial_value, no_coef)
        for b in range(batch):
            if c == 0 or trial_value[b] > value[b]:
                value[b] = trial_value[b]
                for k in range(dim):
                    theta[k, b] = candidates[c, k, b]
    _project(points, theta, proj)
    _evaluate(proj, pair_weight, bias, trial_value, coef)
    if dim > 1:
        _ascend(points, pair_weight, bias, n_steps, step_size, theta, value, coef, proj)
    for b in range(batch):
        for k in range(dim):
            theta_out[b, k] = theta[k, b]
        for i in range(n_points):
            coef_out[b, i] = coef[i, b] * scale


def _ascend(points, pair_weight, bias, n_steps, step_size, theta, value, coef, proj):  # type: ignore[no-untyped-def]
    """``n_steps`` ascent steps from ``theta`` ``(D, B)``, updating it, ``value`` and ``coef`` ``(P, B)`` in place."""
    n_points, dim, batch = points.shape
    dtype = value.dtype
    trial_coef = np.empty((n_points, batch), dtype)
    trial_value = np.empty(batch, dtype)
    step = np.full(batch, step_size, dtype)
    grad = np.empty((dim, batch), dtype)
    direction = np.empty((dim, batch), dtype)
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
        _evaluate(proj, pair_weight, bias, trial_value, trial_coef)
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
    _starts = _jit(_starts)
    _ascend = _jit(_ascend)
    _search = _jit(_search)


def search(
    x: th.Tensor, y: th.Tensor, rand: th.Tensor, scale: float, n_steps: int, step_size: float
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    The max-sliced search of the multiquadric MMD^2 ``-sqrt(1 + scale^2 d^2)``, compiled.

    :param x: online samples ``(B, N, D)``; ``y``: target samples ``(B, M, D)``, both float32 or both float64
    :param rand: standard normal draws ``(B, C, D)`` for the random starting directions (used when ``D > 1``)
    :param scale: the kernel's bandwidth ``h``
    :param n_steps: ascent steps; ``step_size``: their first length
    :return: the best unit direction ``(B, D)``, its MMD^2 ``(B,)`` and that value's derivative in the projections of
        the ``N + M`` points ``(B, N + M)`` (new tensors, on the CPU)
    """
    if numba is None:
        raise RuntimeError("The compiled max-sliced search needs numba: pip install numba.")
    np_x, np_y = x.detach().contiguous().numpy(), y.detach().contiguous().numpy()
    np_rand = rand.detach().to(x.dtype).contiguous().numpy()
    (batch, n, dim), dtype = np_x.shape, np_x.dtype
    theta, value = np.empty((batch, dim), dtype), np.empty(batch, dtype)
    coef = np.empty((batch, n + np_y.shape[1]), dtype)
    _search(np_x, np_y, np_rand, dtype.type(scale), int(n_steps), dtype.type(step_size), theta, value, coef)
    return th.from_numpy(theta), th.from_numpy(value), th.from_numpy(coef)
