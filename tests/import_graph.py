"""Who imports whom among the project's own modules, read from the source with `ast`.

Not a test file. Imports inside functions count: a cycle hidden in a function is still a cycle
(the two modules are one design). tests/test_layering.py checks the graph for cycles and for the
layers ARCHITECTURE.md draws; tests/conftest.py keys a fixture's cache on the modules its
generator reaches, so an edit elsewhere does not rebuild it.

Example usage:
    graph = import_graph(REPO)                     # {"pwa.api": {"edge.errors": 14, ...}, ...}
    cycles(graph)                                  # [] or [["edge.cameras", "edge.picamera2_backend"]]
    reachable(graph, "training.__main__")          # every module that command may import
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGES = ("edge", "pwa", "training", "export", "bench", "tests")


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Module name -> file, for every .py file of the packages (a package is its __init__)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, relative imports resolved against `module`."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def _targets(module: str, is_package: bool, node: ast.AST, known: set[str]) -> list[str]:
    """The project modules one import statement loads (`from P import m` loads P.m when m is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in known]
    if isinstance(node, ast.ImportFrom):
        base = _base(module, is_package, node)
        named = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
        plain = [base] if base in known and len(named) < len(node.names) else []
        return named + plain
    return []


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, dict[str, int]]:
    """Module -> {imported project module: line of its first import}, every import statement
    anywhere in the file (module level, functions, TYPE_CHECKING blocks)."""
    files = module_files(root, packages)
    known = set(files)
    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        edges: dict[str, int] = {}
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _targets(module, is_package, node, known):
                if target != module:
                    edges.setdefault(target, node.lineno)
                    edges[target] = min(edges[target], node.lineno)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def reachable(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    """`start` and every project module it may import, directly or not."""
    seen, todo = {start}, [start]
    while todo:
        for target in graph.get(todo.pop(), {}):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
