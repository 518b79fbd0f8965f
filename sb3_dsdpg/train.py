"""``python -m sb3_dsdpg.train``: rl-zoo3's ``train`` with ``dsdpg`` among its algorithms.

This module owns the training entry point only. It accepts every flag of ``python -m rl_zoo3.train`` (it runs the
zoo's own ``train()``), registers ``dsdpg`` and sb3_dsdpg's env IDs (no ``--gym-packages`` needed), reads the shipped
``sb3_dsdpg/hyperparams/<algo>.yml`` when no ``--conf-file`` is given, and turns bad input (an unknown env ID, a YAML
entry or ``-params`` override with an argument the algorithm does not accept) into an error message and exit
status 2 before anything is trained. The behaviour it adds lives in :mod:`sb3_dsdpg.zoo`.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

import rl_zoo3.train

from sb3_dsdpg import zoo


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


def main(args: Sequence[str] | None = None) -> None:
    """
    Run rl-zoo3's training with DSDPG registered.

    :param args: command-line arguments (default: ``sys.argv[1:]``)
    """
    args = sys.argv[1:] if args is None else list(args)
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


if __name__ == "__main__":
    main()
