"""``python -m sb3_dsdpg.record_video``: rl-zoo3's ``record_video`` (and ``record_training``) with ``dsdpg``.

This module owns the video entry point only. ``python -m sb3_dsdpg.record_video ARGS`` is
``python -m rl_zoo3.record_video ARGS`` with DSDPG loaded for playback (one-slot replay buffer);
``python -m sb3_dsdpg.record_video --training ARGS`` is ``python -m rl_zoo3.record_training ARGS``, whose per-model
recordings then run ``sb3_dsdpg.record_video`` with this interpreter instead of ``python -m rl_zoo3.record_video``
(which does not know ``dsdpg``). ``record_training`` also needs the ``ffmpeg`` program on the PATH.
"""

import sys
from collections.abc import Sequence

from sb3_dsdpg import zoo


def main(args: Sequence[str] | None = None) -> None:
    """
    Record a video of a trained agent (or, with ``--training``, of every checkpoint of a run).

    :param args: command-line arguments (default: ``sys.argv[1:]``)
    """
    args = sys.argv[1:] if args is None else list(args)
    zoo.register(playback=True)
    if "--training" in args:
        args.remove("--training")
        with zoo.redirect_record_video():
            zoo.run_zoo_module("rl_zoo3.record_training", args)
    else:
        zoo.run_zoo_module("rl_zoo3.record_video", args)


if __name__ == "__main__":
    main()
