"""Benchmark commands: ``python -m sb3_dsdpg.benchmarks.update_cost`` (the code lives in :mod:`sb3_dsdpg.tools`)."""
