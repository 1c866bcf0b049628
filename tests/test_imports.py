"""The package's shape: no import circle among bench/ modules (imports inside functions count: they run too), and
the top of bench/ holds only the entry point, the config and the trial; everything else lives in a sub-package.

pytest tests/test_imports.py
"""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
TOP_LEVEL = {"__init__.py", "cli.py", "config.py", "trial.py"}


def module_files() -> dict[str, Path]:
    """bench.x.y -> its file (packages by their __init__.py)."""
    found = {}
    for path in sorted(BENCH.rglob("*.py")):
        parts = path.relative_to(BENCH.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The bench modules a module imports anywhere in it, with the packages Python runs on the way to them."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets += [f"{base}.{alias.name}" for alias in node.names]
    found = set()
    for target in targets:
        while target and target not in known:  # `from bench.x import name`: the module is bench.x
            target = target.rpartition(".")[0]
        while target:  # importing bench.a.b runs bench/a/__init__.py first
            found.add(target)
            target = target.rpartition(".")[0]
    own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return found - {name} - own_packages


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each a set of modules that import each other."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

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
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_circle_among_bench_modules():
    files = module_files()
    graph = {name: imported(name, path, set(files)) for name, path in files.items()}
    assert graph["bench.cli"] >= {"bench.config", "bench.results.console"}  # the graph sees real imports
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_top_of_bench_holds_only_entry_point_config_and_trial():
    assert {p.name for p in BENCH.glob("*.py")} == TOP_LEVEL
