"""Structure guards for the package as a whole.

- The import graph (module-level and deferred imports, `if TYPE_CHECKING:` blocks excluded) has no cycles, and each
  module imports only from its own layer or the layers below it: the package reads as the pipeline.
- Every module imports with the optional packages (torch, onnxruntime, tensorrt, cuda-python, ...) blocked.
- Every command of the CLI has a test under tests/cli/ that invokes it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from tests._paths import ROOT

PACKAGE = "convnext_export"

# --- the import graph -------------------------------------------------------------------------------------------

# Layer of each part of the package; a module may import only from its own layer and the layers below it.
# 0: the foundation (the package __init__ and the root modules named here); 1: model and weights (one layer: they
# may import each other); ... up to 9: the command line.
FOUNDATION = ("errors", "contract", "_deps", "_atomic", "_files", "_resources", "provenance")
LAYERS = {
    "model": 1,
    "weights": 1,
    "data": 2,
    "export": 3,
    "precision": 4,
    "trt": 5,
    "runners": 6,
    "evaluation": 7,
    "pipeline": 8,
    "cli": 9,
    "__main__": 9,
}

# Imports that break the layering today and are being fixed in the package: (importer, imported). Listed so that
# this test passes now and fails on any new violation; remove an entry once its import is gone (a stale entry
# fails the test too).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Edge:
    source: str  # the importing module
    target: str  # the imported package module (a submodule where one is named, else the package)
    line: int
    deferred: bool  # inside a function: runs when called, not when the module is imported

    def __str__(self) -> str:
        where = "deferred, " if self.deferred else ""
        return f"{self.source} -> {self.target} ({where}{module_path(self.source)}:{self.line})"


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__.py)."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = package_modules()


def module_path(module: str) -> str:
    return str(MODULES[module].relative_to(ROOT))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportVisitor(ast.NodeVisitor):
    """Collects (imported name, imported names from it, line, deferred) for every runtime import statement."""

    def __init__(self, module: str) -> None:
        self.package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        self.depth = 0
        self.found: list[tuple[str, list[str], int, bool]] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):  # annotations only: never imported at run time
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function  # noqa: N815 -- ast.NodeVisitor's names

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, [], node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        self.found.append((base, [a.name for a in node.names], node.lineno, self.depth > 0))


def _resolve(name: str) -> str | None:
    """The package module that `import name` loads last: the longest prefix of `name` that is a module."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def lazy_names(package: str) -> dict[str, str]:
    """A package __init__'s `_LAZY` table: name -> the module `from package import name` loads (via __getattr__)."""
    tree = ast.parse(MODULES[package].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            table = {}
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                module = (value.elts[0] if isinstance(value, ast.Tuple) else value).value
                table[key.value] = package + module if module.startswith(".") else module
            return table
    return {}


LAZY = {module: lazy_names(module) for module, path in MODULES.items() if path.name == "__init__.py"}


def import_edges() -> list[Edge]:
    """Every runtime import of a package module by a package module, a lazy name (`_LAZY`) as the module it loads.

    Dynamic importlib.import_module calls are not seen otherwise."""
    edges = []
    for module, path in MODULES.items():
        visitor = _ImportVisitor(module)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for name, names, line, deferred in visitor.found:
            if name != PACKAGE and not name.startswith(PACKAGE + "."):
                continue
            targets = set() if names else {_resolve(name)}
            for imported in names:
                if f"{name}.{imported}" in MODULES:  # a submodule
                    targets.add(f"{name}.{imported}")
                else:  # a name the package defines, or loads lazily
                    targets |= {_resolve(name), LAZY.get(name, {}).get(imported)}
            for target in sorted(t for t in targets if t is not None and t != module):
                edges.append(Edge(module, target, line, deferred))
    return edges


EDGES = import_edges()


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # the package __init__
    if parts[1] in FOUNDATION:
        return 0
    return LAYERS[parts[1]]


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges) per strongly connected component of the graph that has one (Tarjan)."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph.get(node, []):
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
            if len(component) > 1:
                components.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(MODULES)))
    for module in sorted(graph):
        if module not in index:
            connect(module)
    found = []
    for component in components:
        start = min(component)
        path = _path_back(graph, component, start)
        found.append(path)
    return found


def _path_back(graph: dict[str, list[Edge]], component: set[str], start: str) -> list[Edge]:
    """The shortest cycle through `start` inside `component` (breadth-first)."""
    previous: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in sorted(graph.get(node, []), key=lambda e: e.target):
                if edge.target not in component:
                    continue
                if edge.target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, previous[path[0].source])
                    return path
                if edge.target not in previous:
                    previous[edge.target] = edge
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def test_the_import_graph_sees_the_package() -> None:
    """The guards below read what they should: every module, and imports of each kind."""
    assert {"convnext_export", "convnext_export.cli.app", "convnext_export.export.folds"} <= set(MODULES)
    assert Edge("convnext_export.cli", "convnext_export.cli.app", 3, False) in {
        Edge(e.source, e.target, 3, e.deferred) for e in EDGES if e.source == "convnext_export.cli"
    }
    assert any(e.deferred for e in EDGES) and any(not e.deferred for e in EDGES)
    assert LAZY[PACKAGE]["create_model"] == "convnext_export.model.factory"
    assert LAZY["convnext_export.runners"]["OrtRunner"] == "convnext_export.runners.ort_runner"
    unknown = sorted(m for m in MODULES if m.split(".")[1:2] and m.split(".")[1] not in (*FOUNDATION, *LAYERS))
    assert not unknown, f"modules without a layer (add them to FOUNDATION or LAYERS): {unknown}"


def test_the_cycle_finder_reports_a_cycle() -> None:
    made_up = [Edge("a", "b", 1, False), Edge("b", "c", 2, True), Edge("c", "a", 3, False), Edge("c", "d", 4, False)]
    (cycle,) = cycles(made_up)
    assert [(e.source, e.target) for e in cycle] == [("a", "b"), ("b", "c"), ("c", "a")]
    assert cycles(made_up[:2]) == []


def test_no_import_cycles() -> None:
    found = cycles(EDGES)
    report = "\n".join("cycle:\n  " + "\n  ".join(str(e) for e in cycle) for cycle in found)
    assert not found, f"import cycles among package modules (deferred imports included):\n{report}"


def test_each_module_imports_only_from_its_layer_or_below() -> None:
    upward = {
        edge
        for edge in EDGES
        if edge.source != PACKAGE and layer_of(edge.target) > layer_of(edge.source)  # the root __init__ is exempt
    }
    new = sorted((e for e in upward if (e.source, e.target) not in KNOWN_VIOLATIONS), key=str)
    stale = sorted(KNOWN_VIOLATIONS - {(e.source, e.target) for e in upward})
    lines = [f"  {e} [layer {layer_of(e.source)} -> {layer_of(e.target)}]" for e in new]
    assert not new, "imports from a higher layer:\n" + "\n".join(lines)
    assert not stale, f"KNOWN_VIOLATIONS entries whose import is gone (remove them): {stale}"


# --- imports without the optional packages -------------------------------------------------------------------------

BLOCKED = (
    "torch",
    "onnxruntime",
    "tensorrt",
    "tensorrt_bindings",
    "cuda",
    "cuda.bindings",
    "matplotlib",
    "modelopt",
    "onnxsim",
    "transformers",
)

# Modules that cannot be imported without one of BLOCKED today: module -> why. Listed so that this test passes now
# and fails on any new one; remove an entry once the module imports without it (a stale entry fails the test too).
# These are torch code by nature (nn.Module subclasses, the training loop, the eager runner): a module that must
# work without torch cannot import them at module level, which this test also shows, since it would fail too.
KNOWN_IMPORT_FAILURES: dict[str, str] = {
    "convnext_export.model.convnext": "the networks are torch.nn.Module subclasses",
    "convnext_export.model.factory": "imports model.convnext (create_model builds the network)",
    "convnext_export.model.layers": "the building blocks are torch.nn.Module subclasses",
    "convnext_export.model.normalization": "the input normalisation of --fold-normalization is a torch.nn.Module",
    "convnext_export.model.train": "the training loop is torch code",
    "convnext_export.runners.torch_runner": "the eager PyTorch runner",
}

_IMPORT_ALL = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, traceback
    blocked = json.loads(sys.argv[1])
    for name in blocked:
        sys.modules[name] = None  # `import name` now raises ImportError
    import convnext_export
    failed, imported = {}, []
    def walk_error(name):
        failed[name] = traceback.format_exc(limit=-1).strip().splitlines()[-1]
    names = [m.name for m in pkgutil.walk_packages(convnext_export.__path__, "convnext_export.", onerror=walk_error)]
    for name in ["convnext_export", *names]:
        if name == "convnext_export.__main__":
            sys.argv = ["convnext-export", "--version"]  # running it is importing it: print the version
        try:
            importlib.import_module(name)
            imported.append(name)
        except SystemExit as exc:
            if exc.code in (0, None):
                imported.append(name)
            else:
                failed[name] = f"SystemExit({exc.code})"
        except BaseException:
            failed[name] = traceback.format_exc(limit=-1).strip().splitlines()[-1]
    loaded = sorted(
        name for name, module in sys.modules.items()
        if module is not None and any(name == b or name.startswith(b + ".") for b in blocked)
    )
    print(json.dumps({"imported": imported, "failed": failed, "loaded": loaded}))
    """
)


@pytest.fixture(scope="module")
def imported_without_optional_packages() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, json.dumps(BLOCKED)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_module_imports_without_the_optional_packages(imported_without_optional_packages: dict) -> None:
    result = imported_without_optional_packages
    assert set(result["imported"]) | set(result["failed"]) == set(MODULES)  # walk_packages found every module
    new = {m: why for m, why in result["failed"].items() if m not in KNOWN_IMPORT_FAILURES}
    stale = sorted(set(KNOWN_IMPORT_FAILURES) - set(result["failed"]))
    lines = "\n".join(f"  {m}: {why}" for m, why in sorted(new.items()))
    assert not new, f"modules that do not import without {', '.join(BLOCKED)}:\n{lines}"
    assert not stale, f"KNOWN_IMPORT_FAILURES entries that import now (remove them): {stale}"


def test_no_optional_package_is_imported_anyway(imported_without_optional_packages: dict) -> None:
    assert imported_without_optional_packages["loaded"] == []


# --- every CLI command has a test ------------------------------------------------------------------------------------


def registered_commands() -> set[str]:
    """Every command of the app, a sub-command by its full name ("bundle verify")."""
    from convnext_export.cli import app

    def walk(group: object, prefix: tuple[str, ...]) -> Iterator[str]:
        for name, command in sorted(getattr(group, "commands", {}).items()):
            if getattr(command, "commands", None):
                yield from walk(command, (*prefix, name))
            else:
                yield " ".join((*prefix, name))

    return set(walk(typer.main.get_command(app), ()))


def _string_runs(tree: ast.AST) -> Iterator[list[str]]:
    """The string constants of every call's arguments and of every list or tuple, in order."""
    for node in ast.walk(tree):
        values = (
            node.args if isinstance(node, ast.Call) else node.elts if isinstance(node, (ast.List, ast.Tuple)) else []
        )
        strings = [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
        if strings:
            yield strings


def invoked_commands(folder: Path) -> set[str]:
    """Commands some test module under `folder` invokes: their words, in order, among a call's or a list's strings
    (`invoke(app, ["bundle", "verify", ...])`, `_invoke("build", ...)`)."""
    runs = [run for path in sorted(folder.rglob("test_*.py")) for run in _string_runs(ast.parse(path.read_text()))]
    found = set()
    for command in registered_commands():
        words = command.split()
        if any(run[i : i + len(words)] == words for run in runs for i in range(len(run))):
            found.add(command)
    return found


def test_every_cli_command_is_tested() -> None:
    registered = registered_commands()
    assert {"build", "check", "bundle verify", "variants"} <= registered  # the walk reaches sub-commands
    untested = sorted(registered - invoked_commands(ROOT / "tests" / "cli"))
    assert untested == [], f"CLI commands no test under tests/cli/ invokes: {untested}"
