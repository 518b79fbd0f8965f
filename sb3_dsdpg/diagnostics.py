"""``python -m sb3_dsdpg.diagnostics --model PATH --env ID --out DIR``: gradient diagnostics of a trained DSDPG model.

Saves the figure of the critic's samples ``(z, dz/da)`` next to one-step targets through the learned world model and,
on ``sb3_dsdpg/PointMassBonus-v0``, a Monte-Carlo reference. Needs the ``plots`` extra (matplotlib). The diagnostics,
their figure and the SB3 callback :class:`~sb3_dsdpg.tools.diagnostics.GradientDiagnosticsCallback` live in
:mod:`sb3_dsdpg.tools.diagnostics`.
"""

from collections.abc import Sequence

from sb3_dsdpg.tools.extras import exit_if_missing


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command (``argv``: default ``sys.argv[1:]``)."""
    with exit_if_missing("python -m sb3_dsdpg.diagnostics"):
        from sb3_dsdpg.tools import diagnostics

        diagnostics.main(None if argv is None else list(argv))


if __name__ == "__main__":
    main()
