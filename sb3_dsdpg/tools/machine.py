"""What machine a timing ran on, for the benchmarks' printed output.

The ratio of DSDPG's update to TQC's moves with the CPU (docs/benchmarks.md, 2026-12-04: 1.42-1.99x on one
machine, 1.61-2.23x on the next day's, probably another CPU, with the same code), so every printed timing names
the CPU. No optional dependency: the quickstart's cost script uses it without the ``baselines`` extra.
"""

import os
import platform

import torch as th


def cpu_description() -> str:
    """
    The CPU a timing ran on: its model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``), the
    instruction set torch's kernels use and the core count.
    """
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"CPU {model}, torch kernels {th.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores"
