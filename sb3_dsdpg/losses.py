"""Distribution losses between sets of samples: MMD^2, sliced and max-sliced MMD^2, plus the MAGE Sobolev loss.

These are the sample-set distances the critic is trained with (arXiv 2601.20071, Section 5: MMD and max-sliced
MMD; the sliced MMD averaged over random directions and the unbiased (U-statistic) estimator are ours). Every
function is batched over a leading batch dimension and contains no Python loop over samples or batch elements.
It imports only :mod:`sb3_dsdpg.sliced_search` and :mod:`sb3_dsdpg.compiled_mmd` from the rest of the package (the
compiled max-sliced search and the compiled MMD).

Shapes: ``x`` is ``(B, N, D)`` (online samples), ``y`` is ``(B, M, D)`` (target samples); results are ``(B,)``.
"""

import functools
import math
import numbers
import threading
from collections.abc import Sequence

import torch as th
from torch.autograd.function import once_differentiable

from sb3_dsdpg import compiled_mmd, sliced_search

KERNELS = ("multiquadric", "gaussian")
SEARCH_BACKENDS = ("auto", "torch", "compiled")

# Bandwidths of the Gaussian mixture kernel when none are given, after MMD-DQN's mixture of scales.
DEFAULT_GAUSSIAN_BANDWIDTHS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)


def kernel_bandwidths(bandwidth: float | Sequence[float]) -> tuple[float, ...]:
    """
    The kernel bandwidth as a tuple of floats: ``(h,)`` for a number, the values of a sequence (the bandwidths of the
    Gaussian mixture; the multiquadric kernel uses the first). A ValueError unless they are finite and positive.
    """
    try:
        values = (float(bandwidth),) if isinstance(bandwidth, numbers.Real) else tuple(float(h) for h in bandwidth)
    except (TypeError, ValueError):
        values = ()
    if len(values) == 0 or not all(math.isfinite(h) and h > 0 for h in values):
        raise ValueError(
            f"kernel_bandwidth must be positive (a float, or a list of floats for 'gaussian'), got {bandwidth!r}."
        )
    return values


def check_kernel(kernel: str, bandwidth: float | Sequence[float]) -> tuple[float, ...]:
    """Check the kernel's name and bandwidth; return the bandwidths (:func:`kernel_bandwidths`)."""
    if kernel not in KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}: kernel must be one of {KERNELS}.")
    return kernel_bandwidths(bandwidth)


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
    hs = check_kernel(kernel, bandwidth)
    if kernel == "multiquadric":
        return -th.sqrt(1.0 + hs[0] * hs[0] * sq_dist)
    h2 = sq_dist.new_tensor(hs).pow(2)
    return th.exp(-sq_dist.unsqueeze(-1) / (2.0 * h2)).mean(dim=-1)


def pair_weights(n: int, m: int, unbiased: bool = False, dtype: th.dtype = th.float64) -> th.Tensor:
    """
    ``(N + M, N + M)``: the weight of each pair of pooled points (online first) in ``MMD^2 = sum_ij W_ij k(p_i, p_j)``,
    the products ``w_i w_j`` of signed weights (``1/N``, ``-1/M``). ``unbiased``: within each set the pairs
    ``i != j`` weigh ``1 / (N (N - 1))`` and a point with itself 0 (the U-statistic; a set of one point keeps its V
    weight). The torch path and the compiled pass (:mod:`sb3_dsdpg.compiled_mmd`) both take it from here.
    """
    w = th.cat([th.full((n,), 1.0 / n, dtype=dtype), th.full((m,), -1.0 / m, dtype=dtype)])
    ww = w.unsqueeze(-1) * w.unsqueeze(0)
    if unbiased:
        for start, size in ((0, n), (n, m)):
            if size > 1:
                block = ww[start : start + size, start : start + size]
                block.fill_(1.0 / (size * (size - 1))).fill_diagonal_(0.0)
    return ww


def _pool(x: th.Tensor, y: th.Tensor, unbiased: bool = False) -> tuple[th.Tensor, th.Tensor]:
    """Stack both sets into ``p`` ``(B, N + M, D)``, with :func:`pair_weights`: one pairwise matrix instead of three."""
    ww = pair_weights(x.shape[1], y.shape[1], unbiased, x.dtype).to(x.device)
    return th.cat([x, y], dim=1), ww


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
    unbiased: bool = False,
    backend: str = "auto",
) -> th.Tensor:
    """
    Squared maximum mean discrepancy between two batches of sample sets.

    ``mean k(x, x') + mean k(y, y') - 2 mean k(x, y)``. The V-statistic (default) takes every mean over all pairs,
    a point with itself included; ``unbiased=True`` the U-statistic, whose within-set means skip those pairs. A
    generator fitted by the V-statistic comes out too narrow, because its own points repel each other with weight
    ``1 / N^2`` instead of ``1 / (N (N - 1))`` (a Gaussian ``mu + sigma xi`` fitted to N(0, 1) with 10 draws learns
    ``sigma = 0.83``); the U-statistic is minimised in expectation by the target law itself.

    :param x: samples ``(B, N, D)`` (or ``(B, N)`` for scalars)
    :param y: samples ``(B, M, D)`` (or ``(B, M)``)
    :param kernel: ``"multiquadric"`` or ``"gaussian"``, see :func:`kernel_from_sq_dist`
    :param bandwidth: kernel bandwidth ``h``
    :param unbiased: the U-statistic instead of the V-statistic
    :param backend: ``"auto"`` (default): the compiled pass of :mod:`sb3_dsdpg.compiled_mmd` where it runs (numba
        installed, multiquadric kernel, CPU, float32/64; once differentiable), else torch operations; ``"torch"`` or
        ``"compiled"`` to choose. Both agree to float round-off.
    :return: ``(B,)``
    """
    hs = check_kernel(kernel, bandwidth)
    x, y = _as_sets(x, y, "mmd2")
    if backend not in SEARCH_BACKENDS:
        raise ValueError(f"backend must be one of {SEARCH_BACKENDS}, got {backend!r}.")
    dtype = th.promote_types(x.dtype, y.dtype)
    if _compiled_search(backend, kernel, x, dtype):
        weights = pair_weights(x.shape[1], y.shape[1], unbiased, dtype)
        value, grad_x, grad_y = compiled_mmd.mmd2_and_grad(x.to(dtype), y.to(dtype), hs[0], weights)
        return _PrecomputedMMD.apply(x, y, value.to(x.dtype), grad_x, grad_y)  # type: ignore[no-any-return]
    p, ww = _pool(x, y, unbiased)
    sq_dist = (p.unsqueeze(2) - p.unsqueeze(1)).pow(2).sum(-1)  # (B, P, P), exact zeros on the diagonal
    return (kernel_from_sq_dist(sq_dist, kernel, bandwidth) * ww).sum(dim=(-2, -1))


def sliced_mmd2(
    x: th.Tensor,
    y: th.Tensor,
    kernel: str = "multiquadric",
    bandwidth: float | Sequence[float] = 100.0,
    n_directions: int = 8,
    unbiased: bool = False,
    generator: th.Generator | None = None,
) -> th.Tensor:
    """
    Sliced MMD^2: the mean over ``n_directions`` random unit directions ``theta`` (fresh for every batch element) of
    the 1-D MMD^2 of the projections ``x . theta`` and ``y . theta``.

    Unlike the maximum over directions (:func:`max_sliced_mmd2`), a mean of MMD^2s is linear in the target law, so
    a batch of one-transition target sets is minimised by the mixture over transitions (the law of the return
    and its gradient), not by a blob between them. The projections of all directions fix a joint law
    (Cramer-Wold), so in expectation over the directions it is zero only where the laws agree.

    :param x: ``(B, N, D)`` (or ``(B, N)``); ``y``: ``(B, M, D)``
    :param n_directions: random directions per batch element
    :param unbiased: U-statistics (see :func:`mmd2`)
    :param generator: torch generator for the directions
    :return: ``(B,)``
    """
    check_kernel(kernel, bandwidth)
    x, y = _as_sets(x, y, "sliced_mmd2")
    if isinstance(n_directions, bool) or not isinstance(n_directions, int) or n_directions < 1:
        raise ValueError(f"n_directions must be a positive int, got {n_directions!r}.")
    batch, _, dim = x.shape
    theta = th.randn(batch, dim, n_directions, dtype=x.dtype, device=x.device, generator=generator)
    theta = theta / theta.norm(dim=1, keepdim=True).clamp_min(1e-12)
    px = (x @ theta).transpose(1, 2).reshape(batch * n_directions, -1, 1)  # (B L, N, 1)
    py = (y.to(x.dtype) @ theta).transpose(1, 2).reshape(batch * n_directions, -1, 1)
    return mmd2(px, py, kernel, bandwidth, unbiased).reshape(batch, n_directions).mean(dim=1)


@functools.lru_cache(maxsize=64)
def _circulant_pairs(n: int, m: int) -> tuple[th.Tensor, th.Tensor, float]:
    """
    Pair bookkeeping of the 1-D MMD^2 between ``n`` online and ``m`` target points, in circulant order (float64, CPU).

    The pooled points are numbered ``0..P-1`` (``P = n + m``). Shift ``s = 1..S`` (``S = P // 2``) pairs point ``i``
    with point ``(i + s) mod P``: together the shifts cover every unordered pair once, except the shift ``P / 2`` of
    an even ``P``, which covers its pairs twice and so gets half the weight. The pair differences of a projection
    ``v`` are then the strided view ``unfold([v, v])[1:S+1]`` minus ``v``: one subtraction, no gather.

    :return: the weights ``2 w_i w_j`` ``(S * P,)`` of the pairs (signed point weights ``w``: ``1/n`` online,
        ``-1/m`` target); the transposed incidence of each pair difference on the points times its weight
        ``(P, S * P)`` (``+1`` on ``(i + s) mod P``, ``-1`` on ``i``), which maps the kernel slopes of the pairs to the
        derivative of the MMD^2 in each point's projection; and the diagonal's constant share ``sum_i w_i^2``
        (times ``k(0)``)
    """
    n_points, n_shifts = n + m, (n + m) // 2
    w = th.cat([th.full((n,), 1.0 / n, dtype=th.float64), th.full((m,), -1.0 / m, dtype=th.float64)])
    first = th.arange(n_points).expand(n_shifts, n_points).flatten()
    second = (first.view(n_shifts, n_points) + th.arange(1, n_shifts + 1).unsqueeze(-1)).flatten() % n_points
    weight = 2.0 * w[first] * w[second]
    if n_points % 2 == 0:
        weight[-n_points:] *= 0.5
    pairs = th.arange(n_shifts * n_points)
    incidence = th.zeros(n_points, n_shifts * n_points, dtype=th.float64)
    incidence[second, pairs] = 1.0
    incidence[first, pairs] = -1.0
    return weight, incidence * weight, (w * w).sum().item()


@functools.lru_cache(maxsize=64)
def _pair_constants(
    n: int, m: int, kernel: str, bandwidths: tuple[float, ...], dtype: th.dtype, device: th.device
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    :func:`_circulant_pairs` with the kernel's signs and means folded in, for :meth:`_ProjectedMMD.evaluate`:
    ``value = bias + weight . part`` and ``coef = coef_matrix @ slope_part``.
    """
    weight, weighted_incidence, diagonal = _circulant_pairs(n, m)
    if kernel == "multiquadric":  # k = -sqrt(1 + d^2), k(0) = -1
        weight, weighted_incidence, diagonal = -weight, -weighted_incidence, -diagonal
    else:  # mean over the bandwidths, k(0) = 1
        weight, weighted_incidence = weight / len(bandwidths), weighted_incidence / -len(bandwidths)
    as_used = {"dtype": dtype, "device": device}
    return weight.to(**as_used), weighted_incidence.to(**as_used), th.tensor(diagonal, **as_used)


_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype: th.dtype, device: th.device) -> th.Tensor:
    """
    An uninitialised work tensor of ``shape`` that is kept between calls on the CPU, per thread, name and dtype.

    A fresh CPU allocation of the size of the pair buffers (about a megabyte each) goes back to the system when
    released, so every call paid its page faults again (about a fifth of the time of the max-sliced search).
    Only for work buffers that no result aliases. Elsewhere (caching allocators) a plain allocation.
    """
    if device.type != "cpu":
        return th.empty(shape, dtype=dtype, device=device)
    numel, buffers = int(th.Size(shape).numel()), _SCRATCH.__dict__.setdefault("buffers", {})
    storage = buffers.get((name, dtype))
    if storage is None or storage.numel() < numel:
        with th.inference_mode(False):  # writable in and out of inference mode
            storage = buffers[(name, dtype)] = th.empty(numel, dtype=dtype)
    return storage[:numel].view(shape)


class _ProjectedMMD:
    """
    1-D MMD^2 of the projections of ``x`` ``(B, N, D)`` and ``y`` ``(B, M, D)`` on directions, with its derivative in
    the projected points, for the max-sliced search. Holds the pooled points, the pair constants and the buffers
    reused by the evaluations; no autograd (build it from detached tensors or under ``no_grad``).

    Everything is batch last, ``(..., B)``, so that every elementwise pass runs along the batch. For the
    multiquadric kernel the projections are taken times ``h`` (``scale``): the kernel is then ``-sqrt(1 + d^2)``
    and its slope ``-d / sqrt(1 + d^2)``. A value is evaluated on the ``P (P - 1) / 2`` projected pair differences
    of :func:`_circulant_pairs`, one direction after the other for the whole batch, so the pair buffers
    ``(S * P, B)`` stay in cache. The derivative ``c`` ``(P, B)`` in the (scaled) projections gives the gradient in
    ``theta``, ``scale sum_i c_i p_i`` (what :meth:`gradient` returns), and in the sample ``p_i``, ``scale c_i theta``.
    """

    def __init__(self, x: th.Tensor, y: th.Tensor, kernel: str, hs: tuple[float, ...]) -> None:
        self.kernel, self.n = kernel, x.shape[1]
        self.scale = hs[0] if kernel == "multiquadric" else 1.0
        self.inv_h2 = [1.0 / (h * h) for h in hs]
        (batch, _, dim), n_points = x.shape, x.shape[1] + y.shape[1]
        self.n_points, self.n_shifts = n_points, n_points // 2
        self.dtype, self.device = th.promote_types(x.dtype, y.dtype), x.device
        self.p = th.cat([x, y], dim=1, out=self._work("p", batch, n_points, dim))  # (B, P, D)
        # Batch last by a 2-D transpose, which torch copies blockwise (a 3-D permute copies element by element).
        self.points = self._work("points", n_points, dim, batch)
        self.points.view(n_points * dim, batch).copy_(self.p.view(batch, n_points * dim).t())
        if self.scale != 1.0:
            self.points.mul_(self.scale)
        self.weight, self.coef_matrix, self.bias = _pair_constants(
            self.n, n_points - self.n, kernel, hs, self.dtype, self.device
        )
        self.one = th.ones((), dtype=self.dtype, device=self.device)
        self.diff = self._work("diff", self.n_shifts, n_points, batch)
        self.flat = self.diff.view(self.n_shifts * n_points, batch)  # (S * P, B): the pair differences
        self.total = self._work("total", *self.flat.shape)
        if kernel == "multiquadric":
            self.inverse = self._work("inverse", *self.flat.shape)
        if kernel == "gaussian":
            self.square, self.term, self.slope = (self._work(name, *self.flat.shape) for name in ("square", "term", "slope"))
        # For one direction at a time: its projections twice over, and the products of points and direction.
        self.proj = self._work("proj", 1, 2 * n_points, batch)
        self.product = self._work("product", n_points, dim, batch)

    def _work(self, name: str, *shape: int) -> th.Tensor:
        return _scratch(name, shape, self.dtype, self.device)

    @staticmethod
    def _windows(proj: th.Tensor, n_points: int, n_shifts: int) -> th.Tensor:
        """``windows[c, s - 1, i] = proj[c, i + s]``: the projection of the point ``s`` places after ``i`` (circularly)."""
        return proj.unfold(1, n_points, 1).permute(0, 1, 3, 2)[:, 1 : n_shifts + 1]  # (C, S, P, B) view

    def project(self, theta: th.Tensor) -> th.Tensor:
        """Scaled projections, twice over, ``(C, 2P, B)``, on the directions ``theta`` ``(B, C, D)`` (work buffer)."""
        batch, n_dirs = theta.shape[:2]
        proj = th.bmm(
            theta.to(self.dtype) * self.scale, self.p.transpose(1, 2), out=self._work("bmm", batch, n_dirs, self.n_points)
        )
        once = self._work("once", n_dirs * self.n_points, batch)
        once.copy_(proj.view(batch, n_dirs * self.n_points).t())  # batch last by a blockwise 2-D transpose
        once = once.view(n_dirs, self.n_points, batch)
        return th.cat([once, once], dim=1, out=self._work("twice", n_dirs, 2 * self.n_points, batch))

    def gradient(self, coef: th.Tensor) -> th.Tensor:
        """The gradient in ``theta`` ``(D, B)`` from the derivative ``(P, B)`` in the projections."""
        return th.mul(self.points, coef.unsqueeze(1), out=self.product).sum(0)

    def evaluate_one(self, theta: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Value ``(B,)`` and derivative ``(P, B)`` at one direction per batch element ``theta`` ``(D, B)``."""
        head = self.proj[0, : self.n_points]
        th.sum(th.mul(self.points, theta, out=self.product), dim=1, out=head)
        self.proj[0, self.n_points :].copy_(head)
        value, coef = self.evaluate(self.proj, need_coef=True)
        return value[0], coef[0]  # type: ignore[index]

    def evaluate(self, proj: th.Tensor, need_coef: bool) -> tuple[th.Tensor, th.Tensor | None]:
        """Value ``(C, B)`` and, if ``need_coef``, derivative ``(C, P, B)`` at the projections ``(C, 2P, B)``."""
        n_dirs, batch, flat = proj.shape[0], proj.shape[2], self.flat
        windows = self._windows(proj, self.n_points, self.n_shifts)
        value = proj.new_empty(n_dirs, batch)
        coef = proj.new_empty(n_dirs, self.n_points, batch) if need_coef else None
        for c in range(n_dirs):
            th.sub(windows[c], proj[c, : self.n_points], out=self.diff)
            if self.kernel == "multiquadric":
                # sqrt(1 + d^2) as (1 + d^2) * rsqrt(1 + d^2), and the slope d / sqrt(1 + d^2) as d * rsqrt(1 + d^2):
                # torch's CPU sqrt cost twice its rsqrt on an AVX-512 machine (torch 2.13), and a product less than a
                # division. Within 2 float32 ulp of the square root. Without the derivative in place.
                radicand = th.addcmul(self.one, flat, flat, out=flat if coef is None else self.total)
                inverse = th.rsqrt(radicand, out=self.inverse)
                if coef is not None:
                    th.mm(self.coef_matrix, flat.mul_(inverse), out=coef[c])
                th.addmv(self.bias, radicand.mul_(inverse).t(), self.weight, out=value[c])
                continue
            # Gaussian mixture: k = mean over h of exp(-d^2 / (2 h^2)), slope -d mean(exp(-d^2 / (2 h^2)) / h^2).
            th.mul(flat, flat, out=self.square)
            self.total.zero_()
            if coef is not None:
                self.slope.zero_()
            for inv in self.inv_h2:
                th.mul(self.square, -0.5 * inv, out=self.term).exp_()
                self.total.add_(self.term)
                if coef is not None:
                    self.slope.add_(self.term, alpha=inv)
            th.addmv(self.bias, self.total.t(), self.weight, out=value[c])
            if coef is not None:
                th.mm(self.coef_matrix, self.slope.mul_(flat), out=coef[c])
        return value, coef


class _PrecomputedMMD(th.autograd.Function):
    """An MMD^2 ``value`` ``(B,)`` evaluated beforehand with its gradients in ``x`` and ``y``; no graph kept."""

    @staticmethod
    def forward(ctx, x: th.Tensor, y: th.Tensor, value: th.Tensor, grad_x: th.Tensor, grad_y: th.Tensor) -> th.Tensor:  # type: ignore[override]
        ctx.save_for_backward(grad_x, grad_y)
        ctx.dtypes = (x.dtype, y.dtype)
        return value.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_value: th.Tensor) -> tuple[th.Tensor | None, ...]:  # type: ignore[override]
        grad_x, grad_y = ctx.saved_tensors
        scale = grad_value.reshape(-1, 1, 1)
        out_x = (scale * grad_x).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        out_y = (scale * grad_y).to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        return out_x, out_y, None, None, None


class _FixedDirectionMMD(th.autograd.Function):
    """
    The 1-D MMD^2 ``value`` ``(B,)`` at a fixed direction ``theta`` ``(B, D)``, evaluated beforehand together with its
    derivative ``coef`` ``(B, N + M)`` in the points' projections; the gradient in point ``i`` is ``coef_i theta``.

    Same value and gradient in ``x`` and ``y`` as autograd through the pairwise kernel, without its graph.
    """

    @staticmethod
    def forward(ctx, x: th.Tensor, y: th.Tensor, value: th.Tensor, coef: th.Tensor, theta: th.Tensor) -> th.Tensor:  # type: ignore[override]
        ctx.save_for_backward(coef, theta)
        ctx.n = x.shape[1]
        return value.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_value: th.Tensor) -> tuple[th.Tensor | None, ...]:  # type: ignore[override]
        coef, theta = ctx.saved_tensors
        grad_p = (grad_value.unsqueeze(-1) * coef).unsqueeze(-1) * theta.unsqueeze(1)  # (B, N + M, D)
        grad_x = grad_p[:, : ctx.n] if ctx.needs_input_grad[0] else None
        grad_y = grad_p[:, ctx.n :] if ctx.needs_input_grad[1] else None
        return grad_x, grad_y, None, None, None


def slice_direction_gradient(
    x: th.Tensor, y: th.Tensor, theta: th.Tensor, kernel: str = "multiquadric", bandwidth: float | Sequence[float] = 100.0
) -> tuple[th.Tensor, th.Tensor]:
    """
    Value and analytic gradient in ``theta`` of the 1-D MMD^2 of the projections ``x . theta`` and ``y . theta``.

    With pooled samples ``p``, weights ``w`` and ``d_ij = (p_i - p_j) . theta``, the value is
    ``sum_ij w_i w_j k(d_ij)`` and the gradient ``sum_i c_i p_i`` with ``c_i = 2 w_i sum_j w_j k'(d_ij)``
    (``k'`` is odd): computed on the projected points, never on the pair differences. No autograd graph.

    :param x: ``(B, N, D)``; ``y``: ``(B, M, D)``; ``theta``: ``(B, C, D)`` candidate directions
    :return: value ``(B, C)`` and gradient ``(B, C, D)``
    """
    hs = check_kernel(kernel, bandwidth)
    x, y = _as_sets(x, y, "slice_direction_gradient")
    with th.no_grad():
        mmd = _ProjectedMMD(x, y, kernel, hs)
        value, coef = mmd.evaluate(mmd.project(theta), need_coef=True)
        return value.t(), th.bmm(coef.permute(2, 0, 1), mmd.p).mul_(mmd.scale)  # type: ignore[union-attr]


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
    backend: str = "auto",
) -> th.Tensor | tuple[th.Tensor, th.Tensor]:
    """
    Max-sliced MMD^2: the largest 1-D MMD^2 over unit directions ``theta`` of the projected samples.

    One direction per batch element. The search starts from the best of ``n_slice_candidates`` random unit
    directions, the first axis (the return axis of a joint (return, gradient) sample) and the difference of
    the two sets' means, then takes ``n_slice_steps`` projected gradient-ascent steps on detached samples,
    each kept only if it improves (adaptive step length).
    The returned loss is the 1-D MMD^2 at that detached direction, differentiable in ``x`` and ``y``
    (envelope theorem: the direction's own dependence on the samples does not enter the gradient).

    The search works on the projections of the ``N + M`` points, never on their pair differences: the gradient in
    ``theta`` is ``sum_i c_i p_i`` with ``c_i`` the derivative of the 1-D MMD^2 in the projection of point ``p_i``,
    and the loss's gradient in ``p_i`` is ``c_i theta``, both from the ``c`` kept for the best direction.

    :param x: ``(B, N, D)`` (or ``(B, N)``); ``y``: ``(B, M, D)``
    :param n_slice_candidates: random starting directions besides the first axis
    :param n_slice_steps: projected gradient-ascent steps on the sphere
    :param step_size: length of a step along the normalised tangent gradient (radians, roughly)
    :param return_direction: also return the directions ``(B, D)``
    :param generator: torch generator for the random candidates
    :param backend: ``"auto"`` (default): the compiled search of :mod:`sb3_dsdpg.sliced_search` where it runs (numba
        installed, multiquadric kernel, CPU, float32/64), else torch operations; ``"torch"`` or ``"compiled"`` to
        choose. Both run the same search and agree to float round-off.
    :return: ``(B,)``, and the directions if asked
    """
    hs = check_kernel(kernel, bandwidth)
    x, y = _as_sets(x, y, "max_sliced_mmd2")
    if backend not in SEARCH_BACKENDS:
        raise ValueError(f"backend must be one of {SEARCH_BACKENDS}, got {backend!r}.")
    batch, _, dim = x.shape
    dtype = th.promote_types(x.dtype, y.dtype)
    # The random starting directions (none in 1-D), drawn once for either search.
    rand = x.new_empty(batch, 0, dim)
    if dim > 1:
        rand = th.randn(batch, n_slice_candidates, dim, dtype=x.dtype, device=x.device, generator=generator)
    if _compiled_search(backend, kernel, x, dtype):
        best_theta, best_value, coef = sliced_search.search(x.to(dtype), y.to(dtype), rand, hs[0], n_slice_steps, step_size)
        return _sliced_result(x, y, best_value, coef, best_theta, return_direction)
    with th.no_grad():
        candidates = th.zeros(batch, 1, dim, dtype=dtype, device=x.device)
        candidates[..., 0] = 1.0
        if dim > 1:
            # Beside the random starts: the difference of the means, the direction of a pure shift.
            shift = (x.mean(1) - y.mean(1)).unsqueeze(1).to(dtype)
            extra = th.cat([shift, rand.to(dtype)], dim=1)
            candidates = th.cat([candidates, extra / extra.norm(dim=-1, keepdim=True).clamp_min(1e-12)], dim=1)
        mmd = _ProjectedMMD(x, y, kernel, hs)
        # Values only for the candidates; the point coefficients only at the best of them.
        values, coef = mmd.evaluate(mmd.project(candidates), need_coef=candidates.shape[1] == 1)
        best_value, idx = values.max(dim=0)
        best_theta = candidates[th.arange(batch, device=x.device), idx].t().contiguous()  # (D, B), batch last
        coef = mmd.evaluate_one(best_theta)[1] if coef is None else coef[0]
        # Ascent on the sphere with a per-element step that grows after a gain and halves after a loss;
        # a step that does not improve is not taken, so the result never falls below the best candidate.
        step = th.full((batch,), step_size, dtype=mmd.dtype, device=x.device)
        for _ in range(n_slice_steps if dim > 1 else 0):
            grad = mmd.gradient(coef)  # (D, B), the gradient in theta at best_theta
            tangent = th.addcmul(grad, best_theta, (grad * best_theta).sum(0), value=-1.0)
            trial = th.addcmul(best_theta, tangent, step / (tangent * tangent).sum(0).sqrt_().clamp_min_(1e-12))
            trial = trial / (trial * trial).sum(0).sqrt_()
            value, trial_coef = mmd.evaluate_one(trial)
            improved = value > best_value
            best_value = th.where(improved, value, best_value)
            best_theta = th.where(improved, trial, best_theta)
            coef = th.where(improved, trial_coef, coef)
            step = th.where(improved, step * 1.5, step * 0.5)
        coef, best_theta = coef.t() * mmd.scale, best_theta.t().contiguous()  # (B, P): in unscaled projections; (B, D)
    return _sliced_result(x, y, best_value, coef, best_theta, return_direction)


def _compiled_search(backend: str, kernel: str, x: th.Tensor, dtype: th.dtype) -> bool:
    """Whether :func:`max_sliced_mmd2` runs the compiled search, or :func:`mmd2` the compiled pass (``backend="auto"``:
    wherever they can)."""
    can = sliced_search.available() and kernel == "multiquadric" and x.device.type == "cpu"
    can = can and dtype in (th.float32, th.float64)
    if backend == "compiled" and not can:
        raise ValueError(
            "backend='compiled' needs numba (pip install numba), the multiquadric kernel, CPU tensors and float32 or "
            "float64 samples; use backend='auto' to fall back to the torch search."
        )
    return can and backend != "torch"


def _sliced_result(
    x: th.Tensor, y: th.Tensor, value: th.Tensor, coef: th.Tensor, theta: th.Tensor, return_direction: bool
) -> th.Tensor | tuple[th.Tensor, th.Tensor]:
    """The loss at the searched direction, differentiable in ``x`` and ``y``; and the direction if asked."""
    loss = _FixedDirectionMMD.apply(x, y, value, coef, theta)
    if return_direction:
        return loss, theta.clone()  # not the tensor saved for the backward
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
