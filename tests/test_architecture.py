"""The package's architecture holds: the algorithm apart from the tooling, and no import circles.

The import graph of ``sb3_dsdpg`` is built by parsing every module with :mod:`ast` (nothing is imported or run); every
import counts, also one inside a function. Each module lives in one of three rooms:

- the algorithm: ``sb3_dsdpg/__init__.py``, ``dsdpg``, ``policies``, ``targets``, ``tangents``, ``losses``, ``updates``,
  ``world_models`` and ``envs/``; it imports only itself, the standard library and what ``install_requires`` installs;
- the tooling: ``sb3_dsdpg/tools/`` (zoo, compare, diagnostics, benchmarks); it may import the algorithm;
- the entry points (``python -m sb3_dsdpg.<name>``): thin modules that call into the tooling.

Failures name the wrong edges as ``file:line: importer -> imported``.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pytest
from packaging.requirements import Requirement

PACKAGE = "sb3_dsdpg"
ALGORITHM = frozenset(
    {
        PACKAGE,
        *(
            f"{PACKAGE}.{name}"
            for name in (
                "dsdpg",
                "policies",
                "targets",
                "tangents",
                "losses",
                "sliced_search",
                "compiled_mmd",
                "updates",
                "world_models",
            )
        ),
    }
)
ALGORITHM_PACKAGES = (f"{PACKAGE}.envs",)
TOOLING_PACKAGE = f"{PACKAGE}.tools"
ENTRY_POINTS = frozenset(
    f"{PACKAGE}.{name}"
    for name in ("train", "enjoy", "record_video", "zoo", "compare", "diagnostics", "benchmarks", "benchmarks.update_cost")
)
# Third-party packages the algorithm may import: what ``pip install sb3_dsdpg`` installs for it (``mujoco`` comes with
# ``gymnasium[mujoco]``), as distribution name and extra of ``install_requires``.
ALGORITHM_THIRD_PARTY = {
    "torch": ("torch", None),
    "numpy": ("numpy", None),
    "numba": ("numba", None),
    "gymnasium": ("gymnasium", None),
    "mujoco": ("gymnasium", "mujoco"),
    "stable_baselines3": ("stable-baselines3", None),
}
# Packages only the tooling needs: never in the algorithm, never in install_requires.
TOOLING_THIRD_PARTY = (
    "rl_zoo3", "optuna", "sb3_contrib", "matplotlib", "ray", "pandas", "tqdm", "rich", "seaborn", "scipy", "rliable",
    "yaml", "tensorboard", "moviepy", "pygame", "requests",
)  # fmt: skip
TOOLING_DISTRIBUTIONS = ("rl-zoo3", "optuna", "sb3-contrib", "matplotlib", "ray", "pandas", "seaborn", "scipy", "rliable",
                         "pyyaml", "tensorboard", "moviepy", "pygame", "requests")  # fmt: skip


class Edge(NamedTuple):
    """``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} -> {self.target}"


class Graph(NamedTuple):
    modules: dict[str, Path]  # module name -> file
    edges: list[Edge]  # imports between modules of the package
    external: list[Edge]  # imports of other top-level packages (target: the top-level name)


def find_modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root`` (the package folder), by dotted name."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((package, *parts))] = path
    return modules


def _imported_names(tree: ast.AST, module: str, is_package: bool, known: Iterable[str]) -> list[tuple[str, int]]:
    """The modules (or, for ``from X import name`` of a non-module, ``X``) imported by a parsed module."""
    known = set(known)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                candidate = f"{origin}.{alias.name}"
                found.append((candidate if candidate in known else origin, node.lineno))
    return found


def build_graph(root: Path, package: str = PACKAGE) -> Graph:
    """Parse every module of the package (no import, no execution) into its import graph."""
    modules = find_modules(root, package)
    edges, external = [], []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        relative = str(path.relative_to(root.parent))
        for target, line in _imported_names(tree, name, path.name == "__init__.py", modules):
            top = target.split(".")[0]
            if top == package:
                edges.append(Edge(name, target, relative, line))
            elif top != "__future__":
                external.append(Edge(name, top, relative, line))
    return Graph(modules, edges, external)


def find_cycles(graph: Graph) -> list[list[Edge]]:
    """One cycle (as its edges) per strongly connected component with a cycle (Tarjan), in a stable order."""
    successors: dict[str, list[Edge]] = {name: [] for name in graph.modules}
    for edge in graph.edges:
        if edge.target in graph.modules:
            successors[edge.source].append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in successors[node]:
            if edge.target not in index:
                connect(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph.modules):
        if node not in index:
            connect(node)
    cycles = []
    for component in components:
        start = min(component)
        if len(component) == 1 and not any(edge.target == start for edge in successors[start]):
            continue
        # Walk from the component's first module back to it, staying inside the component (breadth-first: shortest).
        paths: dict[str, list[Edge]] = {start: []}
        frontier = [start]
        cycle = None
        while frontier and cycle is None:
            following = []
            for node in frontier:
                for edge in successors[node]:
                    if edge.target == start:
                        cycle = [*paths[node], edge]
                        break
                    if edge.target in component and edge.target not in paths:
                        paths[edge.target] = [*paths[node], edge]
                        following.append(edge.target)
                if cycle:
                    break
            frontier = following
        cycles.append(cycle or [])
    return cycles


def room(module: str) -> str | None:
    """``algorithm``, ``tooling`` or ``entry point``; None for a module in none of them."""
    if module in ALGORITHM or any(module == p or module.startswith(p + ".") for p in ALGORITHM_PACKAGES):
        return "algorithm"
    if module == TOOLING_PACKAGE or module.startswith(TOOLING_PACKAGE + "."):
        return "tooling"
    if module in ENTRY_POINTS:
        return "entry point"
    return None


def package_root() -> Path:
    """The folder of the ``sb3_dsdpg`` that tests import (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations, f"{PACKAGE} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(package_root())


def _fail(title: str, lines: list[str]) -> None:
    if lines:
        pytest.fail(title + ":\n  " + "\n  ".join(lines), pytrace=False)


def test_every_module_is_in_one_room(graph: Graph) -> None:
    assert f"{PACKAGE}.dsdpg" in graph.modules and f"{TOOLING_PACKAGE}.zoo" in graph.modules
    _fail(
        "modules in no room (add them to ALGORITHM, ENTRY_POINTS or sb3_dsdpg/tools/)",
        [f"{name} ({path})" for name, path in graph.modules.items() if room(name) is None],
    )


def test_no_import_cycles(graph: Graph) -> None:
    cycles = find_cycles(graph)
    _fail("import cycles among sb3_dsdpg modules", [" | ".join(map(str, cycle)) for cycle in cycles])


def test_algorithm_imports_nothing_of_the_tooling_or_the_entry_points(graph: Graph) -> None:
    wrong = [edge for edge in graph.edges if room(edge.source) == "algorithm" and room(edge.target) != "algorithm"]
    assert {edge.source for edge in graph.edges} >= {f"{PACKAGE}.dsdpg", f"{PACKAGE}.envs"}  # the graph is not empty
    _fail("algorithm modules import the tooling or an entry point", [f"{edge} ({room(edge.target)})" for edge in wrong])


def test_algorithm_imports_no_tooling_packages(graph: Graph) -> None:
    stdlib = set(sys.stdlib_module_names)
    algorithm = [edge for edge in graph.external if room(edge.source) == "algorithm"]
    assert {edge.target for edge in algorithm} >= {"torch", "gymnasium", "stable_baselines3"}  # the check sees imports
    _fail(
        "algorithm modules import tooling packages",
        [str(edge) for edge in algorithm if edge.target in TOOLING_THIRD_PARTY],
    )
    _fail(
        "algorithm modules import packages that `pip install sb3_dsdpg` does not install (see ALGORITHM_THIRD_PARTY)",
        [str(edge) for edge in algorithm if edge.target not in stdlib and edge.target not in ALGORITHM_THIRD_PARTY],
    )


def test_tooling_imports_no_entry_point(graph: Graph) -> None:
    wrong = [edge for edge in graph.edges if room(edge.source) == "tooling" and room(edge.target) == "entry point"]
    _fail("tooling modules import an entry point (entry points call the tooling, not the reverse)", list(map(str, wrong)))


def test_compare_report_imports_runs_not_the_sweep(graph: Graph) -> None:
    report = f"{TOOLING_PACKAGE}.compare.report"
    imported = {edge.target for edge in graph.edges if edge.source == report}
    assert f"{TOOLING_PACKAGE}.compare.runs" in imported
    _fail(
        "the compare report imports the sweep runner",
        [str(edge) for edge in graph.edges if edge.source == report and edge.target.endswith(".compare.sweep")],
    )


def install_requires() -> list[Requirement]:
    config = configparser.ConfigParser()
    setup_cfg = Path(__file__).resolve().parents[1] / "setup.cfg"
    if not setup_cfg.is_file():
        pytest.skip("not run from the repository")
    config.read(setup_cfg)
    return [Requirement(line) for line in config["options"]["install_requires"].splitlines() if line.strip()]


def test_install_requires_is_what_the_algorithm_needs() -> None:
    requirements = {req.name.lower().replace("_", "-"): req for req in install_requires()}
    for module, (distribution, extra) in ALGORITHM_THIRD_PARTY.items():
        assert distribution in requirements, f"the algorithm imports {module}: {distribution} belongs in install_requires"
        if extra:
            assert extra in requirements[distribution].extras, f"the algorithm imports {module}: {distribution}[{extra}]"
    assert {"tqdm", "rich"} <= set(requirements), "SB3's progress_bar=True (examples/quickstart.py) needs tqdm and rich"
    tooling = sorted(set(requirements) & set(TOOLING_DISTRIBUTIONS))
    assert not tooling, f"tooling packages in install_requires (move them to an extra): {tooling}"


# ----------------------------------------------------------------------------------------------------------------------
# The checks themselves, on a made-up package with a circle and a wrong edge
# ----------------------------------------------------------------------------------------------------------------------


def test_the_checks_find_a_circle_and_a_wrong_edge(tmp_path: Path) -> None:
    root = tmp_path / PACKAGE
    (root / "tools").mkdir(parents=True)
    (root / "__init__.py").write_text("from sb3_dsdpg.dsdpg import DSDPG\n")
    (root / "dsdpg.py").write_text("import torch\n\n\ndef f():\n    from .tools import zoo\n")
    (root / "tools" / "__init__.py").write_text("")
    (root / "tools" / "zoo.py").write_text("from sb3_dsdpg.tools.report import x\nimport rl_zoo3\n")
    (root / "tools" / "report.py").write_text("from . import zoo\n")
    made_up = build_graph(root)
    cycles = find_cycles(made_up)
    assert len(cycles) == 1
    assert {(edge.source, edge.target) for edge in cycles[0]} == {
        ("sb3_dsdpg.tools.zoo", "sb3_dsdpg.tools.report"),
        ("sb3_dsdpg.tools.report", "sb3_dsdpg.tools.zoo"),
    }
    wrong = [edge for edge in made_up.edges if room(edge.source) == "algorithm" and room(edge.target) != "algorithm"]
    assert [str(edge) for edge in wrong] == ["sb3_dsdpg/dsdpg.py:5: sb3_dsdpg.dsdpg -> sb3_dsdpg.tools.zoo"]
    assert ("sb3_dsdpg.tools.zoo", "rl_zoo3") in {(edge.source, edge.target) for edge in made_up.external}
