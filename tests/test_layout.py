"""The package's layout: imports point down the data flow, and no module imports itself back.

Every ``import`` of a geoslide module is read from the source with :mod:`ast`, including imports
inside functions (a lazy import still ties two modules together). The graph is then checked two
ways: no cycle between modules, and no import from a lower stage into a higher one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import geoslide

PACKAGE = Path(geoslide.__file__).parent

#: The stages, bottom first. A module may import modules of its own stage folder and of lower
#: stages, never of a higher stage or of another folder on the same stage.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(s.split()) for s in (
    "errors",       # the exception tree
    "_lazy _version fileio tables progress",  # bottom helpers
    "cluster",      # Dask clients, and the paths workers must see (through fileio)
    "catalog",      # find items
    "raster",       # items -> lazy cubes
    "inventory",    # polygons <-> masks
    "data demo",    # patch stores and importers; synthetic events
    "models",       # architectures and model cards
    "mapping",      # inference -> map store -> exports
    "evaluation",   # scores of maps and of models on patches
    "training",     # fitting models (validates with evaluation's metrics)
    "pipeline",     # whole protocols
    "cli __init__",  # the command line and the package's public verbs
))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The geoslide modules that the file at ``path`` imports, anywhere in it."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            # "from geoslide.x import y" names module geoslide.x.y if that exists, else geoslide.x
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("geoslide"):
                yield name
                break


def import_graph() -> dict[str, set[str]]:
    """Module -> the geoslide modules it imports (a package counts as its ``__init__``)."""
    modules = _modules()
    return {name: {m for m in _imports(path, modules) if m != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _stage(module: str) -> tuple[int, str]:
    """The layer index and the stage folder (or bottom module) a module belongs to."""
    parts = module.split(".")
    folder = parts[1] if len(parts) > 1 else "__init__"
    for level, names in enumerate(LAYERS):
        if folder in names:
            return level, folder
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py; add its folder to LAYERS")


def test_every_module_belongs_to_a_layer() -> None:
    for module in import_graph():
        _stage(module)


def test_no_import_cycles() -> None:
    assert _cycles(import_graph()) == []


def test_imports_point_down_the_data_flow() -> None:
    wrong = []
    for module, targets in import_graph().items():
        level, folder = _stage(module)
        for target in targets:
            their_level, their_folder = _stage(target)
            if their_folder != folder and their_level >= level:
                wrong.append(f"{module} -> {target}")
    assert sorted(wrong) == []


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
])
def test_cycle_finder(graph, expected) -> None:
    assert _cycles(graph) == expected
