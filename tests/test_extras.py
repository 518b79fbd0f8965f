"""Every command that needs an optional extra names it when a package of it is missing.

A missing package is simulated with ``sys.modules[name] = None`` (an import of it then fails as for a package that is
not installed), and the tooling modules are dropped from ``sys.modules`` so that the command imports them afresh.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sb3_dsdpg import compare, diagnostics, enjoy, record_video, train, zoo
from sb3_dsdpg.benchmarks import update_cost
from sb3_dsdpg.tools import extras


def simulate_missing(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` (and its submodules) unimportable and the tooling importable afresh, until the test ends."""
    for name in list(sys.modules):
        if name == "sb3_dsdpg.tools" or name.startswith("sb3_dsdpg.tools."):
            if name != "sb3_dsdpg.tools.extras":  # holds no extra; the commands' MissingExtraError must stay one class
                parent, _, child = name.rpartition(".")
                if hasattr(sys.modules.get(parent), child):  # a fresh import rebinds it: put the original back after
                    monkeypatch.setattr(sys.modules[parent], child, getattr(sys.modules[parent], child))
                monkeypatch.delitem(sys.modules, name)
        elif name.startswith(package + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


COMMANDS: dict[str, tuple[Callable[[list[str]], object], list[str], str, str]] = {
    # command: (main, arguments, the missing package, the extra its message names)
    "train": (train.main, ["--algo", "dsdpg", "--env", "Pendulum-v1"], "rl_zoo3", "zoo"),
    "enjoy": (enjoy.main, ["--algo", "dsdpg", "--env", "Pendulum-v1"], "rl_zoo3", "zoo"),
    "record_video": (record_video.main, ["--algo", "dsdpg", "--env", "Pendulum-v1"], "rl_zoo3", "zoo"),
    "zoo": (zoo.main, ["plot", "--save", "x.png", "all_plots"], "optuna", "zoo"),
    "compare": (compare.main, ["--envs", "Pendulum-v1", "-n", "100", "--out", "OUT"], "rliable", "zoo"),
    "compare (rl_zoo3)": (compare.main, ["--envs", "Pendulum-v1", "-n", "100", "--out", "OUT"], "rl_zoo3", "zoo"),
    "diagnostics": (diagnostics.main, ["--model", "m.zip", "--env", "Pendulum-v1", "--out", "OUT"], "matplotlib", "plots"),
    "benchmarks.update_cost": (update_cost.main, ["--preset", "quickstart"], "sb3_contrib", "baselines"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_names_the_missing_extra(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    main, args, package, extra = COMMANDS[command]
    simulate_missing(monkeypatch, package)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "out") if arg == "OUT" else arg for arg in args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"python -m sb3_dsdpg.{command.split(' ')[0]}: error:" in err
    assert f"{package!r}, which is not installed" in err
    assert f"pip install 'sb3_dsdpg[{extra}]'" in err
    assert not (tmp_path / "out").exists()  # nothing started


def test_the_tools_raise_an_import_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    simulate_missing(monkeypatch, "rl_zoo3")
    with pytest.raises(ImportError, match=r"pip install 'sb3_dsdpg\[zoo\]'"):
        import sb3_dsdpg.tools.zoo  # noqa: F401
    simulate_missing(monkeypatch, "matplotlib")
    with pytest.raises(extras.MissingExtraError, match=r"pip install 'sb3_dsdpg\[plots\]'"):
        from sb3_dsdpg.tools.diagnostics import GradientDiagnosticsCallback  # noqa: F401


@pytest.mark.subprocess
def test_the_entry_point_itself_exits_with_the_message() -> None:
    """``python -m sb3_dsdpg.train`` without rl-zoo3: one line naming the extra, no traceback."""
    code = (
        "import runpy, sys; sys.modules['rl_zoo3'] = None; sys.argv = ['train', '--algo', 'dsdpg']; "
        "runpy.run_module('sb3_dsdpg.train', run_name='__main__', alter_sys=True)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'sb3_dsdpg[zoo]'" in proc.stderr and "Traceback" not in proc.stderr


def test_every_extra_named_exists_in_setup_cfg() -> None:
    import configparser

    setup_cfg = Path(__file__).resolve().parents[1] / "setup.cfg"
    if not setup_cfg.is_file():
        pytest.skip("not run from the repository")
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    declared = set(config["options.extras_require"])
    assert set(extras.EXTRAS) <= declared
