"""Optional dependencies of the tooling: which extra of ``setup.cfg`` brings what, and the error when one is missing.

This module owns the message a tool gives when a package of an extra is not installed. ``pip install sb3_dsdpg``
gives what the algorithm needs (torch, stable-baselines3, gymnasium[mujoco], numpy, and tqdm + rich for SB3's
``progress_bar=True``); each tool names the extra it needs:

- ``zoo``: rl-zoo3 and its tools (optuna, pandas, seaborn, scipy, rliable, pyyaml, ...), and everything below:
  ``python -m sb3_dsdpg.train|enjoy|record_video|zoo|compare``;
- ``plots``: matplotlib, for the gradient diagnostics (``python -m sb3_dsdpg.diagnostics``);
- ``baselines``: sb3-contrib (TQC), for ``python -m sb3_dsdpg.benchmarks.update_cost``;
- ``tensorboard``: tensorboard, for ``tensorboard_log=...`` (SB3 itself says so when it is missing);
- ``distributed``: Ray, for ``python -m sb3_dsdpg.compare --backend ray``.

A tool wraps its imports of an extra's packages in :func:`needs` (or checks them early with :func:`require`); an entry
point wraps its work in :func:`exit_if_missing`, which turns the error into a one-line message and exit status 2 (as
for other input that cannot work, before anything runs) instead of a traceback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator

EXTRAS: dict[str, str] = {
    "zoo": "rl_zoo3 2.9, optuna, pandas<3, seaborn, scipy, rliable, pyyaml, moviepy, pygame, sb3-contrib, matplotlib, "
    "tensorboard",
    "plots": "matplotlib",
    "baselines": "sb3-contrib",
    "tensorboard": "tensorboard",
    "distributed": "ray[default]",
}


class MissingExtraError(ImportError):
    """A package of an optional extra is not installed; the message names the extra that brings it."""


def install_hint(extra: str) -> str:
    """``pip install 'sb3_dsdpg[EXTRA]'`` and what the extra holds."""
    return f"pip install 'sb3_dsdpg[{extra}]' ({EXTRAS[extra]})"


@contextlib.contextmanager
def needs(extra: str, what: str) -> Iterator[None]:
    """
    Run a block of imports; an :class:`ImportError` in it becomes a :class:`MissingExtraError` naming ``extra``.

    :param extra: the extra of ``setup.cfg`` that brings the packages imported in the block
    :param what: the tool that needs them, e.g. ``python -m sb3_dsdpg.compare``
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}: choose from {', '.join(EXTRAS)}")
    try:
        yield
    except MissingExtraError:
        raise
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            problem = f"{exc.name.split('.')[0]!r}, which is not installed"
        else:  # installed, but not importable (e.g. another version)
            problem = f"a package that cannot be imported ({exc})"
        raise MissingExtraError(f"{what} needs {problem}: {install_hint(extra)}") from exc


def require(extra: str, what: str, modules: tuple[str, ...]) -> None:
    """
    Fail unless every module of ``modules`` can be found (without importing it): for a tool that imports them late.

    :param extra: the extra of ``setup.cfg`` that brings them
    :param what: the tool that needs them
    :param modules: top-level module names, e.g. ``("rl_zoo3", "rliable")``
    :raises MissingExtraError: naming the first missing module and the extra
    """
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtraError(f"{what} needs {module!r}, which is not installed: {install_hint(extra)}")


@contextlib.contextmanager
def exit_if_missing(prog: str) -> Iterator[None]:
    """
    Run an entry point's work; a :class:`MissingExtraError` exits with its message (status 2) instead of a traceback.

    :param prog: the command, e.g. ``python -m sb3_dsdpg.train``
    """
    try:
        yield
    except MissingExtraError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
