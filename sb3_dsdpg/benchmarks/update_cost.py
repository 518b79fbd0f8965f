"""``python -m sb3_dsdpg.benchmarks.update_cost``: milliseconds per gradient step of DSDPG against TD3 and TQC.

Needs the ``baselines`` extra (sb3-contrib, for TQC). The benchmark lives in :mod:`sb3_dsdpg.tools.update_cost`.
"""

from collections.abc import Sequence

from sb3_dsdpg.tools.extras import exit_if_missing


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command (``argv``: default ``sys.argv[1:]``)."""
    with exit_if_missing("python -m sb3_dsdpg.benchmarks.update_cost"):
        from sb3_dsdpg.tools import update_cost

        update_cost.main(None if argv is None else list(argv))


if __name__ == "__main__":
    main()
