"""``python -m sb3_dsdpg.enjoy``: rl-zoo3's ``enjoy`` with ``dsdpg`` among its algorithms.

This module owns the playback entry point only. It accepts every flag of ``python -m rl_zoo3.enjoy`` and loads a
DSDPG model as the zoo loads TD3 or TQC: with a one-slot replay buffer (see :class:`sb3_dsdpg.zoo.OneSlotBufferDSDPG`).
sb3_dsdpg's env IDs are registered on import.
"""

import sys
from collections.abc import Sequence

import rl_zoo3.enjoy

from sb3_dsdpg import zoo


def main(args: Sequence[str] | None = None) -> None:
    """
    Run rl-zoo3's ``enjoy`` with DSDPG registered for playback.

    :param args: command-line arguments (default: ``sys.argv[1:]``)
    """
    zoo.register(playback=True)
    with zoo.argv(sys.argv[1:] if args is None else list(args), "python -m sb3_dsdpg.enjoy"):
        rl_zoo3.enjoy.enjoy()


if __name__ == "__main__":
    main()
