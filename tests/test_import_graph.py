"""The package's import graph, read with ``ast``: no cycles, and the RM core depends on nothing in the suite.

Every ``import`` statement counts, also those inside functions: a lazy import is a dependency too, it
only hides the cycle from the interpreter. An import of ``replication.a.b`` (or ``from replication.a
import b`` where ``b`` is a module) is an edge to that module, not to the packages above it, which
Python imports on the way but which do not make a cycle by themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import replication

PACKAGE_ROOT = Path(replication.__file__).parent
SUITE_ONLY = ("replication.models", "replication.train", "replication.experiments", "replication.report")
# Cycles another change removes. Each entry is xfail(strict): once the cycle is gone the test XPASSes,
# which fails, so a stale entry cannot linger.
KNOWN_CYCLES: dict[frozenset[str], str] = {}  # a cycle listed here must be gone for its test to pass


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``name`` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from X import y``: y is a submodule when the package has one by that name
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import replication.a.b.func``-style tails
                target = target.rpartition(".")[0]
            if target.startswith("replication") and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm: the components with more than one module (each one holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_graph_sees_the_package():
    """The reader must find real edges, or the cycle test below could never fail."""
    graph = import_graph()
    assert "replication.rm.convert" in graph
    assert "replication.rm.blocks" in graph["replication.rm.convert"]
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_import_cycles():
    cycles = [sorted(c) for c in strongly_connected(import_graph()) if c not in KNOWN_CYCLES]
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("cycle", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=reason),
                                                id="-".join(sorted(c))) for c, reason in KNOWN_CYCLES.items()])
def test_known_cycle_is_gone(cycle):
    assert cycle not in strongly_connected(import_graph())


def test_rm_core_depends_on_nothing_in_the_suite():
    graph = import_graph()
    offending = {name: sorted(t for t in targets if t.startswith(SUITE_ONLY))
                 for name, targets in graph.items() if name.startswith("replication.rm")}
    offending = {name: targets for name, targets in offending.items() if targets}
    assert not offending, f"replication.rm imports suite modules: {offending}"


def test_rm_core_imports_only_itself():
    """Not even the suite's shared helpers (writers, checkpoint files): rm knows torch, torchvision and timm."""
    graph = import_graph()
    outside = {name: sorted(t for t in targets if not t.startswith("replication.rm"))
               for name, targets in graph.items() if name.startswith("replication.rm")}
    outside = {name: targets for name, targets in outside.items() if targets}
    assert not outside, f"replication.rm imports modules outside it: {outside}"
