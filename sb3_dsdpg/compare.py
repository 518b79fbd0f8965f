"""``python -m sb3_dsdpg.compare``: one command that compares DSDPG with TD3 and TQC on the same tasks.

Every (algorithm, env, seed) runs as an ordinary zoo training, locally (``--jobs K``) or on Ray (``--backend ray``);
finished runs are skipped; then a report is written to ``--out DIR/report/``. Needs the ``zoo`` extra. The sweep lives
in :mod:`sb3_dsdpg.tools.compare` (``runs``: what a sweep is; ``sweep``: running it; ``report``: its report).
"""

import sys
from collections.abc import Sequence

from sb3_dsdpg.tools.extras import exit_if_missing


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command (``argv``: default ``sys.argv[1:]``); return the exit status."""
    with exit_if_missing("python -m sb3_dsdpg.compare"):
        from sb3_dsdpg.tools.compare import sweep

        return sweep.main(argv)


if __name__ == "__main__":
    sys.exit(main())
