"""``python -m sb3_dsdpg.record_video``: rl-zoo3's ``record_video`` (and ``record_training``) with ``dsdpg``.

``python -m sb3_dsdpg.record_video ARGS`` is ``python -m rl_zoo3.record_video ARGS`` with DSDPG loaded for playback;
``python -m sb3_dsdpg.record_video --training ARGS`` is ``python -m rl_zoo3.record_training ARGS`` (needs ``ffmpeg``).
Needs the ``zoo`` extra. The command lives in :func:`sb3_dsdpg.tools.zoo_commands.record_video`.
"""

from collections.abc import Sequence

from sb3_dsdpg.tools.extras import exit_if_missing


def main(args: Sequence[str] | None = None) -> None:
    """Run the command (``args``: default ``sys.argv[1:]``)."""
    with exit_if_missing("python -m sb3_dsdpg.record_video"):
        from sb3_dsdpg.tools import zoo_commands

        zoo_commands.record_video(args)


if __name__ == "__main__":
    main()
