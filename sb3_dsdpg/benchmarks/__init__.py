"""Benchmark scripts: cost measurements run against SB3's TD3 and sb3-contrib's TQC in the same process."""
