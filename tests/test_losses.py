"""Closed-form and property checks of the distribution losses."""

import math

import numpy as np
import pytest
import torch as th

from sb3_dsdpg import DSDPG
from sb3_dsdpg.losses import (
    check_kernel,
    kernel_bandwidths,
    kernel_from_sq_dist,
    max_sliced_mmd2,
    mmd2,
    slice_direction_gradient,
    sobolev_huber_loss,
)


def _mq(d: float, h: float) -> float:
    return -math.sqrt(1.0 + h * h * d * d)


def _gauss(d: float, hs: list[float]) -> float:
    return sum(math.exp(-d * d / (2 * h * h)) for h in hs) / len(hs)


def _reference_slice_values(x, y, theta, kernel, bandwidth):
    """
    The 1-D MMD^2 at directions ``theta`` ``(B, C, D)`` by the plain pair-difference formula (the former implementation):
    ``sum_i w_i^2 k(0) + 2 sum_{i<j} w_i w_j k((p_i - p_j) . theta)``.
    """
    n, m = x.shape[1], y.shape[1]
    p = th.cat([x, y], dim=1)
    w = th.cat([x.new_full((n,), 1.0 / n), x.new_full((m,), -1.0 / m)])
    i, j = th.triu_indices(n + m, n + m, offset=1)
    diff = th.einsum("bqd,bcd->bcq", p[:, i] - p[:, j], theta)
    k0 = kernel_from_sq_dist(x.new_zeros(()), kernel, bandwidth)
    return k0 * (w * w).sum() + (kernel_from_sq_dist(diff.square(), kernel, bandwidth) * (2.0 * w[i] * w[j])).sum(-1)


def _reproduced_candidates(x, y, n_slice_candidates, seed):
    """The starting directions of max_sliced_mmd2 with a generator seeded ``seed``: axis, mean difference, random."""
    batch, _, dim = x.shape
    axis = th.zeros(batch, 1, dim, dtype=x.dtype)
    axis[..., 0] = 1.0
    rand = th.randn(batch, n_slice_candidates, dim, dtype=x.dtype, generator=th.Generator().manual_seed(seed))
    extra = th.cat([(x.mean(1) - y.mean(1)).unsqueeze(1), rand], dim=1)
    return th.cat([axis, extra / extra.norm(dim=-1, keepdim=True)], dim=1)


# The torch search, and the compiled one wherever it runs (the multiquadric cases; "auto" is torch for the Gaussian).
BACKENDS = ["torch", "auto"]

MS_CASES = [
    # (N, M, D, kernel, bandwidth): P even and odd, the smallest sets, one dimension, both kernels
    (10, 18, 7, "multiquadric", 3.0),
    (4, 5, 3, "multiquadric", 100.0),
    (1, 1, 2, "multiquadric", 1.5),
    (6, 9, 1, "multiquadric", 2.0),
    (5, 8, 4, "gaussian", [0.5, 1.0, 3.0]),
    (3, 3, 2, "gaussian", 2.0),
]


@pytest.mark.parametrize("kernel", ["multiquadric", "gaussian"])
def test_mmd_zero_on_identical_sets_and_symmetric(kernel):
    gen = th.Generator().manual_seed(0)
    x = th.randn(4, 6, 3, generator=gen, dtype=th.float64)
    y = th.randn(4, 9, 3, generator=gen, dtype=th.float64) + 0.3
    assert th.allclose(mmd2(x, x, kernel), th.zeros(4, dtype=th.float64), atol=1e-10)
    assert th.allclose(mmd2(x, y, kernel), mmd2(y, x, kernel))
    assert (mmd2(x, y, kernel) > 0).all()


def test_mmd_two_point_closed_form_multiquadric():
    h = 2.0
    x = th.tensor([[[0.0], [1.0]]], dtype=th.float64)
    y = th.tensor([[[3.0]]], dtype=th.float64)
    kxx = (2 * _mq(0, h) + 2 * _mq(1, h)) / 4
    kyy = _mq(0, h)
    kxy = (_mq(3, h) + _mq(2, h)) / 2
    assert mmd2(x, y, "multiquadric", h).item() == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-12)
    # Two-dimensional points use the Euclidean distance.
    x2 = th.tensor([[[0.0, 0.0], [3.0, 4.0]]], dtype=th.float64)
    y2 = th.tensor([[[0.0, 0.0]]], dtype=th.float64)
    expected = (2 * _mq(0, h) + 2 * _mq(5, h)) / 4 + _mq(0, h) - 2 * (_mq(0, h) + _mq(5, h)) / 2
    assert mmd2(x2, y2, "multiquadric", h).item() == pytest.approx(expected, rel=1e-12)


def test_mmd_two_point_closed_form_gaussian():
    hs = [0.5, 2.0]
    x = th.tensor([[[0.0], [1.0]]], dtype=th.float64)
    y = th.tensor([[[3.0]]], dtype=th.float64)
    expected = (2 * _gauss(0, hs) + 2 * _gauss(1, hs)) / 4 + _gauss(0, hs) - (_gauss(3, hs) + _gauss(2, hs))
    assert mmd2(x, y, "gaussian", hs).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kernel", ["multiquadric", "gaussian"])
def test_mmd_grows_with_shift(kernel):
    gen = th.Generator().manual_seed(1)
    x = th.randn(8, 16, 2, generator=gen, dtype=th.float64)
    base = th.randn(8, 16, 2, generator=gen, dtype=th.float64)
    small, large = mmd2(x, base + 0.5, kernel, 1.0), mmd2(x, base + 2.0, kernel, 1.0)
    assert (large > small).all()


def test_max_sliced_at_least_every_fixed_direction():
    gen = th.Generator().manual_seed(2)
    x = th.randn(16, 10, 4, generator=gen, dtype=th.float64)
    y = th.randn(16, 12, 4, generator=gen, dtype=th.float64) * th.tensor([1.0, 2.0, 0.5, 1.0], dtype=th.float64) + 0.2
    msm = max_sliced_mmd2(x, y, bandwidth=3.0, generator=gen)
    for _ in range(30):
        theta = th.randn(4, generator=gen, dtype=th.float64)
        theta = theta / theta.norm()
        fixed = mmd2(x @ theta.unsqueeze(-1), y @ theta.unsqueeze(-1), bandwidth=3.0)
        # The search is a local ascent from 9 starts: allow a small slack below a lucky random direction.
        assert (msm >= fixed * 0.98 - 1e-9).all()
    # Never below the return axis, which is always a candidate.
    assert (msm >= mmd2(x[..., :1], y[..., :1], bandwidth=3.0) - 1e-12).all()


def test_max_sliced_finds_discriminating_coordinate():
    gen = th.Generator().manual_seed(3)
    x = th.randn(32, 20, 5, generator=gen, dtype=th.float64)
    y = th.randn(32, 20, 5, generator=gen, dtype=th.float64)
    y[..., 3] += 3.0
    loss, theta = max_sliced_mmd2(x, y, bandwidth=2.0, return_direction=True, generator=gen)
    assert (theta[:, 3].abs() > 0.9).float().mean() > 0.9
    assert (loss > mmd2(x[..., :1], y[..., :1], bandwidth=2.0)).all()


def test_max_sliced_loss_gradient_flows_to_samples_only():
    gen = th.Generator().manual_seed(4)
    x = th.randn(3, 5, 3, generator=gen, dtype=th.float64, requires_grad=True)
    y = th.randn(3, 6, 3, generator=gen, dtype=th.float64)
    loss, theta = max_sliced_mmd2(x, y, bandwidth=5.0, return_direction=True, generator=gen)
    loss.sum().backward()
    # Envelope theorem: the gradient is that of the 1-D MMD at the fixed direction.
    x2 = x.detach().clone().requires_grad_(True)
    proj = lambda s: th.einsum("bnd,bd->bn", s, theta)
    mmd2(proj(x2), proj(y), bandwidth=5.0).sum().backward()
    assert th.allclose(x.grad, x2.grad)


@pytest.mark.parametrize("kernel", ["multiquadric", "gaussian"])
def test_slice_direction_gradient_matches_finite_differences(kernel):
    gen = th.Generator().manual_seed(5)
    x = th.randn(2, 4, 3, generator=gen, dtype=th.float64)
    y = th.randn(2, 5, 3, generator=gen, dtype=th.float64) + 0.5
    theta = th.randn(2, 2, 3, generator=gen, dtype=th.float64)
    value, grad = slice_direction_gradient(x, y, theta, kernel, 1.5)
    for c in range(2):
        direct = mmd2(th.einsum("bnd,bd->bn", x, theta[:, c]), th.einsum("bnd,bd->bn", y, theta[:, c]), kernel, 1.5)
        assert th.allclose(value[:, c], direct)
    eps = 1e-6
    for d in range(3):
        step = th.zeros_like(theta)
        step[..., d] = eps
        numeric = (
            slice_direction_gradient(x, y, theta + step, kernel, 1.5)[0]
            - slice_direction_gradient(x, y, theta - step, kernel, 1.5)[0]
        ) / (2 * eps)
        assert th.allclose(grad[..., d], numeric, atol=1e-7)


@pytest.mark.parametrize(("n", "m", "dim", "kernel", "bandwidth"), MS_CASES)
def test_slice_value_matches_pair_difference_reference(n, m, dim, kernel, bandwidth):
    gen = th.Generator().manual_seed(6)
    x = th.randn(5, n, dim, generator=gen, dtype=th.float64) * 2.0
    y = th.randn(5, m, dim, generator=gen, dtype=th.float64) + 0.7
    theta = th.randn(5, 3, dim, generator=gen, dtype=th.float64)
    theta = theta / theta.norm(dim=-1, keepdim=True)
    value, _ = slice_direction_gradient(x, y, theta, kernel, bandwidth)
    assert th.allclose(value, _reference_slice_values(x, y, theta, kernel, bandwidth), rtol=0.0, atol=1e-10)
    # The 1-D value is the plain MMD^2 of the projected samples.
    for c in range(3):
        proj = lambda s, c=c: th.einsum("bnd,bd->bn", s, theta[:, c])
        assert th.allclose(value[:, c], mmd2(proj(x), proj(y), kernel, bandwidth), rtol=0.0, atol=1e-10)


@pytest.mark.parametrize(("n", "m", "dim", "kernel", "bandwidth"), MS_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_max_sliced_without_steps_is_best_candidate(n, m, dim, kernel, bandwidth, backend):
    gen = th.Generator().manual_seed(7)
    x = th.randn(6, n, dim, generator=gen, dtype=th.float64) * th.linspace(0.5, 2.0, dim, dtype=th.float64)
    y = th.randn(6, m, dim, generator=gen, dtype=th.float64) + 0.3
    loss, theta = max_sliced_mmd2(
        x,
        y,
        kernel,
        bandwidth,
        n_slice_candidates=5,
        n_slice_steps=0,
        return_direction=True,
        generator=th.Generator().manual_seed(11),
        backend=backend,
    )
    candidates = _reproduced_candidates(x, y, 5, 11)[:, : 1 if dim == 1 else None]
    best, idx = _reference_slice_values(x, y, candidates, kernel, bandwidth).max(dim=1)
    assert th.allclose(loss, best, rtol=0.0, atol=1e-10)
    assert th.allclose(theta, candidates[th.arange(6), idx], rtol=0.0, atol=1e-12)
    if dim == 1:  # a single direction: plain MMD^2
        assert th.allclose(loss, mmd2(x, y, kernel, bandwidth), rtol=0.0, atol=1e-10)


@pytest.mark.parametrize(("n", "m", "dim", "kernel", "bandwidth"), MS_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_max_sliced_never_below_a_candidate(n, m, dim, kernel, bandwidth, backend):
    gen = th.Generator().manual_seed(8)
    x = th.randn(16, n, dim, generator=gen, dtype=th.float64) * th.linspace(2.0, 0.5, dim, dtype=th.float64)
    y = th.randn(16, m, dim, generator=gen, dtype=th.float64) * 1.5
    loss, theta = max_sliced_mmd2(
        x, y, kernel, bandwidth, return_direction=True, generator=th.Generator().manual_seed(12), backend=backend
    )
    candidates = _reproduced_candidates(x, y, 8, 12)[:, : 1 if dim == 1 else None]
    assert (loss.unsqueeze(1) >= _reference_slice_values(x, y, candidates, kernel, bandwidth) - 1e-12).all()
    # The returned value is the reference value at the returned unit direction.
    assert th.allclose(theta.norm(dim=-1), th.ones(16, dtype=th.float64))
    at_theta = _reference_slice_values(x, y, theta.unsqueeze(1), kernel, bandwidth).squeeze(1)
    assert th.allclose(loss, at_theta, rtol=0.0, atol=1e-10)


@pytest.mark.parametrize(("n", "m", "dim", "kernel", "bandwidth"), [MS_CASES[1], MS_CASES[3], MS_CASES[4]])
@pytest.mark.parametrize("backend", BACKENDS)
def test_max_sliced_gradient_matches_finite_differences(n, m, dim, kernel, bandwidth, backend):
    gen = th.Generator().manual_seed(9)
    x = th.randn(2, n, dim, generator=gen, dtype=th.float64, requires_grad=True)
    y = (th.randn(2, m, dim, generator=gen, dtype=th.float64) + 0.5).requires_grad_(True)
    loss, theta = max_sliced_mmd2(x, y, kernel, bandwidth, return_direction=True, generator=gen, backend=backend)
    scale = th.tensor([0.7, -1.3], dtype=th.float64)  # a different weight per batch element
    (loss * scale).sum().backward()
    at_theta = lambda xs, ys: (_reference_slice_values(xs, ys, theta.unsqueeze(1), kernel, bandwidth).squeeze(1) * scale).sum()
    x0, y0, eps = x.detach(), y.detach(), 1e-6
    for which, grad in ((0, x.grad), (1, y.grad)):
        base = (x0, y0)[which]
        numeric = th.zeros_like(base)
        for k in range(base.numel()):
            step = th.zeros_like(base)
            step.view(-1)[k] = eps
            plus = (base + step, y0) if which == 0 else (x0, base + step)
            minus = (base - step, y0) if which == 0 else (x0, base - step)
            numeric.view(-1)[k] = (at_theta(*plus) - at_theta(*minus)) / (2 * eps)
        assert th.allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [th.float32, th.float64])
@pytest.mark.parametrize("dim", [1, 2, 7])
def test_compiled_search_matches_torch_search(dim, dtype):
    """
    Same starts, steps and acceptance: the same directions, values and gradients to float round-off. In float32 a
    step whose gain is within round-off of zero can be taken by one search and not the other (seen on 1 of 256 sets
    in 7-D): such a set ends at another direction with a value as high to round-off, so sets whose directions differ
    are held to the value only.
    """
    gen = th.Generator().manual_seed(13)
    x = (th.randn(64, 10, dim, generator=gen, dtype=dtype) * 0.05).requires_grad_(True)
    y = th.randn(64, 18, dim, generator=gen, dtype=dtype) * 0.05 + 0.01
    results = []
    for backend in ("torch", "compiled"):
        loss, theta = max_sliced_mmd2(
            x, y, "multiquadric", 100.0, return_direction=True, generator=th.Generator().manual_seed(3), backend=backend
        )
        results.append((loss.detach(), theta, th.autograd.grad(loss.sum(), x)[0]))
    (loss_t, theta_t, grad_t), (loss_c, theta_c, grad_c) = results
    rtol = 1e-4 if dtype == th.float32 else 1e-10
    same = (theta_t - theta_c).abs().amax(-1) <= rtol
    assert same.float().mean() >= (0.95 if dtype == th.float32 else 1.0)
    assert (loss_t - loss_c).abs().max() <= (1e-3 if dtype == th.float32 else rtol) * loss_t.abs().max()
    assert (loss_t - loss_c)[same].abs().max() <= rtol * loss_t.abs().max()
    assert (grad_t - grad_c)[same].abs().max() <= rtol * grad_t.abs().max()
    # Not a copy of one another's numbers: the compiled search sums in another order.
    assert dtype == th.float64 or not th.equal(loss_t, loss_c)


@pytest.mark.parametrize("backend", ["torch", "compiled"])
@pytest.mark.parametrize("dim", [1, 2])
def test_non_finite_samples_give_a_non_finite_loss(dim, backend):
    """A NaN or infinite sample makes its set's loss NaN (then DSDPG's finite-loss check stops training), others unharmed."""
    gen = th.Generator().manual_seed(15)
    x, y = th.randn(4, 10, dim, generator=gen), th.randn(4, 18, dim, generator=gen)
    x[1, 3, 0], y[2, 0, -1] = float("nan"), float("inf")
    loss = max_sliced_mmd2(x, y, generator=th.Generator().manual_seed(2), backend=backend)
    assert not loss[1].isfinite() and not loss[2].isfinite()
    assert loss[0].isfinite() and loss[3].isfinite()


def test_search_backend_is_checked():
    x = th.randn(2, 3, 2)
    with pytest.raises(ValueError, match="backend must be one of"):
        max_sliced_mmd2(x, x + 1.0, backend="numba")
    with pytest.raises(ValueError, match="backend='compiled' needs"):
        max_sliced_mmd2(x, x + 1.0, "gaussian", 1.0, backend="compiled")
    with pytest.raises(ValueError, match="backend='compiled' needs"):
        max_sliced_mmd2(x.half(), x.half() + 1.0, backend="compiled")


def test_without_numba_the_torch_search_runs(monkeypatch):
    """A platform without numba keeps the torch search under backend="auto" and is told how to get the compiled one."""
    from sb3_dsdpg import sliced_search

    gen = th.Generator().manual_seed(14)
    x, y = th.randn(8, 5, 2, generator=gen), th.randn(8, 7, 2, generator=gen) + 0.5
    compiled = max_sliced_mmd2(x, y, generator=th.Generator().manual_seed(1))
    monkeypatch.setattr(sliced_search, "numba", None)
    assert not sliced_search.available()
    fallback = max_sliced_mmd2(x, y, generator=th.Generator().manual_seed(1))
    assert th.allclose(fallback, compiled, rtol=1e-4)
    with pytest.raises(ValueError, match="needs numba"):
        max_sliced_mmd2(x, y, backend="compiled")
    with pytest.raises(RuntimeError, match="pip install numba"):
        sliced_search.search(x, y, th.randn(8, 3, 2), 100.0, 5, 0.5)


def test_bad_kernel_arguments_raise():
    x = th.zeros(1, 2, 1)
    with pytest.raises(ValueError, match="kernel_bandwidth"):
        mmd2(x, x, bandwidth=0.0)
    with pytest.raises(ValueError, match="Unknown kernel"):
        mmd2(x, x, kernel="laplace")
    with pytest.raises(ValueError, match="equal B and D"):
        mmd2(th.zeros(2, 3, 1), th.zeros(2, 3, 2))


def test_sobolev_huber_loss_closed_form():
    q, target = th.tensor([1.0, 0.0]), th.tensor([0.5, 3.0])
    grad, target_grad = th.tensor([[3.0, 4.0], [0.0, 0.0]]), th.zeros(2, 2)
    # Huber(0.5) = 0.125, Huber(3) = 2.5; gradient errors 5 and 0 -> Huber 4.5 and 0.
    expected = (0.125 + 2.5) / 2 + 5.0 * (4.5 + 0.0) / 2
    assert sobolev_huber_loss(q, grad, target, target_grad).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("bandwidth", [0.0, -3.0, float("nan"), float("inf"), [], [1.0, 0.0], "wide", None])
def test_bad_bandwidths_raise_one_error_everywhere(bandwidth):
    """The losses and DSDPG's argument check parse the bandwidth in one place, with one message."""
    x, theta = th.zeros(1, 2, 1), th.ones(1, 1, 1)
    calls = {
        "kernel_bandwidths": lambda: kernel_bandwidths(bandwidth),
        "kernel_from_sq_dist": lambda: kernel_from_sq_dist(x, "gaussian", bandwidth),
        "mmd2": lambda: mmd2(x, x, "gaussian", bandwidth),
        "max_sliced_mmd2": lambda: max_sliced_mmd2(x, x, "multiquadric", bandwidth),
        "slice_direction_gradient": lambda: slice_direction_gradient(x, x, theta, "gaussian", bandwidth),
        "DSDPG": lambda: DSDPG("MlpPolicy", "Pendulum-v1", kernel="gaussian", kernel_bandwidth=bandwidth),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"kernel_bandwidth must be positive \(a float, or a list of floats"):
            call()
            pytest.fail(name)


@pytest.mark.parametrize(
    "bandwidth, expected",
    [(2, (2.0,)), (np.float32(0.5), (0.5,)), ([1, 2.5], (1.0, 2.5)), (np.array([3.0, 4.0]), (3.0, 4.0)), ((7.0,), (7.0,))],
)
def test_bandwidths_parse_to_floats(bandwidth, expected):
    assert kernel_bandwidths(bandwidth) == expected
    assert check_kernel("gaussian", bandwidth) == expected


def test_unknown_kernel_names_the_argument():
    for call in (lambda: check_kernel("laplace", 1.0), lambda: DSDPG("MlpPolicy", "Pendulum-v1", kernel="laplace")):
        with pytest.raises(ValueError, match=r"Unknown kernel 'laplace': kernel must be one of"):
            call()


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize(("n", "m", "dim"), [(10, 18, 2), (1, 5, 3), (4, 1, 1), (3, 3, 4)])
def test_compiled_mmd_matches_the_torch_mmd(unbiased, n, m, dim):
    """The compiled pass (sb3_dsdpg.compiled_mmd) gives the torch path's value and gradients, V and U statistics."""
    pytest.importorskip("numba")
    gen = th.Generator().manual_seed(n * 100 + m)
    x = th.randn(6, n, dim, dtype=th.float64, generator=gen).requires_grad_(True)
    y = th.randn(6, m, dim, dtype=th.float64, generator=gen).requires_grad_(True)
    weights = th.arange(1.0, 7.0, dtype=th.float64)
    values, grads = [], []
    for backend in ("compiled", "torch"):
        value = mmd2(x, y, "multiquadric", 3.0, unbiased, backend=backend)
        values.append(value)
        grads.append(th.autograd.grad((value * weights).sum(), (x, y)))
    assert th.allclose(values[0], values[1], atol=1e-12, rtol=0)
    for compiled, reference in zip(grads[0], grads[1], strict=True):
        assert th.allclose(compiled, reference, atol=1e-12, rtol=0)
    # float32 samples: the same to float32 round-off, float32 out.
    value32 = mmd2(x.float(), y.float(), "multiquadric", 3.0, unbiased, backend="compiled")
    assert value32.dtype == th.float32 and th.allclose(value32.double(), values[1], rtol=1e-4, atol=1e-4)


def test_mmd_backend_is_checked_and_the_torch_path_runs_without_numba(monkeypatch):
    x, y = th.randn(2, 3, 2), th.randn(2, 4, 2)
    with pytest.raises(ValueError, match="backend must be one of"):
        mmd2(x, y, backend="fast")
    with pytest.raises(ValueError, match="backend='compiled' needs numba"):
        mmd2(x, y, "gaussian", 1.0, backend="compiled")
    from sb3_dsdpg import sliced_search

    expected = mmd2(x, y, backend="torch")
    monkeypatch.setattr(sliced_search, "numba", None)
    assert th.allclose(mmd2(x, y), expected)
