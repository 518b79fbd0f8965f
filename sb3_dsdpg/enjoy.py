"""``python -m sb3_dsdpg.enjoy``: rl-zoo3's ``enjoy`` with ``dsdpg`` among its algorithms (needs the ``zoo`` extra).

Accepts every flag of ``python -m rl_zoo3.enjoy`` and loads a DSDPG model as the zoo loads TD3 or TQC (one-slot replay
buffer). The command lives in :func:`sb3_dsdpg.tools.zoo_commands.enjoy`.
"""

from collections.abc import Sequence

from sb3_dsdpg.tools.extras import exit_if_missing


def main(args: Sequence[str] | None = None) -> None:
    """Run the command (``args``: default ``sys.argv[1:]``)."""
    with exit_if_missing("python -m sb3_dsdpg.enjoy"):
        from sb3_dsdpg.tools import zoo_commands

        zoo_commands.enjoy(args)


if __name__ == "__main__":
    main()
