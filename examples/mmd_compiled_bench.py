"""The max-sliced MMD^2 timed alone with each search backend, forward and backward (mmd_compiled_2026-12-04.txt).

Run: ``python examples/mmd_compiled_bench.py`` (1 torch thread, an idle machine).
"""

import time

import torch as th

from sb3_dsdpg.losses import max_sliced_mmd2


def ms_per_call(function, n_calls: int = 200, warm_up: int = 30) -> float:
    for _ in range(warm_up):
        function()
    start = time.perf_counter()
    for _ in range(n_calls):
        function()
    return (time.perf_counter() - start) / n_calls * 1e3


def forward_backward(x: th.Tensor, y: th.Tensor, backend: str) -> None:
    max_sliced_mmd2(x, y, "multiquadric", 100.0, 8, 5, backend=backend).mean().backward()


def main() -> None:
    th.set_num_threads(1)
    start = time.perf_counter()
    x0 = th.randn(4, 10, 2)
    max_sliced_mmd2(x0, x0 + 0.1, backend="compiled")
    print("import+first call s", round(time.perf_counter() - start, 3))
    for batch, dim in ((256, 2), (512, 2), (512, 7)):
        x, y = th.randn(batch, 10, dim, requires_grad=True), th.randn(batch, 18, dim)
        times: dict[str, list[float]] = {"torch": [], "compiled": []}
        for _ in range(3):  # interleaved rounds
            for backend, values in times.items():
                values.append(ms_per_call(lambda x=x, y=y, backend=backend: forward_backward(x, y, backend)))
        rounded = {backend: [round(v, 3) for v in values] for backend, values in times.items()}
        print(batch, dim, rounded, "ratio", round(min(times["torch"]) / min(times["compiled"]), 2))


if __name__ == "__main__":
    main()
