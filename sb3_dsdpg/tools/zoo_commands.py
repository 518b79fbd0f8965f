"""The rl-zoo3 commands with ``dsdpg`` among their algorithms: ``train``, ``enjoy``, ``record_video`` and ``plot``.

This module owns what ``python -m sb3_dsdpg.train|enjoy|record_video|zoo`` do (those modules only call in here):

- :func:`train` runs the zoo's own ``train()`` (every flag of ``python -m rl_zoo3.train``) with ``dsdpg`` and
  sb3_dsdpg's env IDs registered (no ``--gym-packages`` needed), reads the shipped ``sb3_dsdpg/hyperparams/<algo>.yml``
  when no ``--conf-file`` is given, and turns bad input (an unknown env ID, a YAML entry or ``-params`` override with
  an argument the algorithm does not accept) into an error message and exit status 2 before anything is trained;
- :func:`enjoy` and :func:`record_video` load a DSDPG model as the zoo loads TD3 or TQC: with a one-slot replay buffer
  (:class:`sb3_dsdpg.tools.zoo.OneSlotBufferDSDPG`); ``record_video --training`` is the zoo's ``record_training``,
  whose per-model recordings then run ``sb3_dsdpg.record_video`` with this interpreter (it needs ``ffmpeg``);
- :func:`plot` runs one of the zoo's plot scripts headless and saves its figures.

The behaviour they add lives in :mod:`sb3_dsdpg.tools.zoo`. Needs the ``zoo`` extra.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sb3_dsdpg.tools import zoo
from sb3_dsdpg.tools.extras import needs


def check_env_argument(args: Sequence[str]) -> None:
    """
    Check ``--env`` (after importing ``--gym-packages``) before the zoo starts, with a message naming the ID.

    :param args: the command-line arguments
    :raises zoo.ZooConfigError: for an ID that is not registered
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--gym-packages", nargs="+", default=[])
    known, _ = parser.parse_known_args(list(args))
    for module in known.gym_packages:
        importlib.import_module(module)
    zoo.check_env_id(known.env)


def _args(args: Sequence[str] | None) -> list[str]:
    return sys.argv[1:] if args is None else list(args)


def train(args: Sequence[str] | None = None) -> None:
    """
    ``python -m sb3_dsdpg.train``: rl-zoo3's training with DSDPG registered.

    :param args: command-line arguments (default: ``sys.argv[1:]``)
    """
    with needs("zoo", "python -m sb3_dsdpg.train"):
        import rl_zoo3.train

    args = _args(args)
    zoo.register()
    try:
        check_env_argument(args)
        with (
            zoo.patched_attribute(rl_zoo3.train, "ExperimentManager", zoo.DSDPGExperimentManager),
            zoo.argv(args, "python -m sb3_dsdpg.train"),
        ):
            rl_zoo3.train.train()
    except zoo.ZooConfigError as exc:
        print(f"sb3_dsdpg.train: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def enjoy(args: Sequence[str] | None = None) -> None:
    """
    ``python -m sb3_dsdpg.enjoy``: rl-zoo3's ``enjoy`` with DSDPG registered for playback.

    :param args: command-line arguments (default: ``sys.argv[1:]``)
    """
    with needs("zoo", "python -m sb3_dsdpg.enjoy"):
        import rl_zoo3.enjoy

    zoo.register(playback=True)
    with zoo.argv(_args(args), "python -m sb3_dsdpg.enjoy"):
        rl_zoo3.enjoy.enjoy()


def record_video(args: Sequence[str] | None = None) -> None:
    """
    ``python -m sb3_dsdpg.record_video``: a video of a trained agent (or, with ``--training``, of every checkpoint).

    :param args: command-line arguments (default: ``sys.argv[1:]``)
    """
    args = _args(args)
    zoo.register(playback=True)
    if "--training" in args:
        args.remove("--training")
        with zoo.redirect_record_video():
            zoo.run_zoo_module("rl_zoo3.record_training", args)
    else:
        zoo.run_zoo_module("rl_zoo3.record_video", args)


def plot(args: Sequence[str] | None = None) -> None:
    """``python -m sb3_dsdpg.zoo plot --save FILE SCRIPT [ARGS...]``: save the figures of a zoo plot script."""
    parser = argparse.ArgumentParser(prog="python -m sb3_dsdpg.zoo", description=plot.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plot_parser = commands.add_parser("plot", help="run rl_zoo3.plots.<script> headless and save its figures")
    plot_parser.add_argument("--save", required=True, help="picture file, e.g. docs/zoo_pendulum.png")
    plot_parser.add_argument("script", choices=["all_plots", "plot_train", "plot_from_file"])
    plot_parser.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments of the zoo script")
    parsed = parser.parse_args(args)
    for path in zoo.save_zoo_plots(parsed.script, parsed.script_args, parsed.save):
        print(f"Saved {path}")
