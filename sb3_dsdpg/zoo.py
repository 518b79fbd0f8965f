"""``python -m sb3_dsdpg.zoo plot --save FILE SCRIPT [ARGS...]``: save the figures of one of rl-zoo3's plot scripts.

Needs the ``zoo`` extra. The command lives in :func:`sb3_dsdpg.tools.zoo_commands.plot`; the rl-zoo3 integration
itself (tables, sampler, checks) in :mod:`sb3_dsdpg.tools.zoo`.
"""

from collections.abc import Sequence

from sb3_dsdpg.tools.extras import exit_if_missing


def main(args: Sequence[str] | None = None) -> None:
    """Run the command (``args``: default ``sys.argv[1:]``)."""
    with exit_if_missing("python -m sb3_dsdpg.zoo"):
        from sb3_dsdpg.tools import zoo_commands

        zoo_commands.plot(args)


if __name__ == "__main__":
    main()
