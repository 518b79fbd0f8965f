"""``python -m sb3_dsdpg.train``: rl-zoo3's ``train`` with ``dsdpg`` among its algorithms (needs the ``zoo`` extra).

Accepts every flag of ``python -m rl_zoo3.train``; reads the shipped ``sb3_dsdpg/hyperparams/<algo>.yml`` when no
``--conf-file`` is given; bad input (an unknown env ID, an argument the algorithm does not accept) exits with status 2
before anything is trained. The command lives in :func:`sb3_dsdpg.tools.zoo_commands.train`.
"""

from collections.abc import Sequence

from sb3_dsdpg.tools.extras import exit_if_missing


def main(args: Sequence[str] | None = None) -> None:
    """Run the command (``args``: default ``sys.argv[1:]``)."""
    with exit_if_missing("python -m sb3_dsdpg.train"):
        from sb3_dsdpg.tools import zoo_commands

        zoo_commands.train(args)


if __name__ == "__main__":
    main()
