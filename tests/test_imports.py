"""The package's layers, lowest first. A module imports only its own folder and the layers below it, and no two
folders import each other; imports inside functions count (they run too), and the few that stay inside a function
are listed in LAZY with the reason, which the code says beside them too.

    bench/__init__.py   ConfigError, Unsupported, closest: what every part raises
    common/             statistics, atomic JSON files and locks, the family taxonomy
    config.py           the typed trial config; it validates what it knows, and composing takes the method registry
                        from its caller (config.register(methods.registry())), so it does not import the methods
    models/ methods/    the model catalogue, then the method registry that applies to a model
    probes/ tasks/      forgetting probes, then the task catalogue (a task's learning curve scores a probe)
    results/            trial records, their consolidation, and what reads a sweep's records to decide (the chosen
                        learning rate, a generation task's trivial baseline): they read records, so they sit here,
                        above tasks, not among them
    trackers/           instrumentation, behind one protocol (bench.trackers.protocol) for what listens to training
    report/             tables, plots, the page: reads results, never a tracker's internals
    distributed/        training-side helpers of a distributed trial (Trainer class, arguments, memory, comm, gather)
    trial/              one trial, start to record; the record is shared with serving
    sweep/              what a sweep adds: resume, the sweep's console line, faults, concurrency, Hydra callbacks
    launch/             the one place that starts processes: a single trial, a sweep's child, ranks, the shared-work
                        child, the job wrapper of the faces
    serve/              the serving scenario
    cli/                the faces (console scripts) and their wording of bad input

Adjustments to the layering first drawn: results sits above probes and tasks (they read statistics and files from
common/, and the two modules that read sweep records moved up into results/); report sits right above trackers (it
reads neither, but it is below the trial that writes what it reads); the trial's progress bar lives in trial/ and the
sweep's console line in sweep/, so a sweep process reads its line without importing transformers.

pytest tests/test_imports.py
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
LAYERS = ["bench", "common", "config", "models", "methods", "probes", "tasks", "results", "trackers", "report",
          "distributed", "trial", "sweep", "launch", "serve", "cli"]
TOP_LEVEL = {"__init__.py", "config.py"}  # everything else lives in a folder of its own layer
# (module, module it imports inside a function): why that import waits. Heavy libraries only.
LAZY = {
    ("bench.cli.methods", "bench.models.arch"): "torch: only to count parameters; listing methods needs none",
    ("bench.cli.methods", "bench.trackers.params"): "torch: only to count parameters; listing methods needs none",
    ("bench.cli.report", "bench.report.build"): "pandas and matplotlib, after the arguments are checked",
    ("bench.launch.job", "bench.launch.shared"): "torch: a sweep process decides whether to fork before it imports it",
    ("bench.launch.job", "bench.launch.trial"): "torch: a sweep process decides whether to fork before it imports it",
    ("bench.launch.worker", "bench.launch.trial"): "torch: the sweep process imports the worker before it forks",
    ("bench.serve.child", "bench.serve.scenario"): "torch: the sweep process imports the child before it forks",
    ("bench.tasks", "bench.tasks.classification"): "torch: the task catalogue is read by faces that never train",
    ("bench.tasks", "bench.tasks.generation"): "torch: the task catalogue is read by faces that never train",
    ("bench.methods.adapter_houlsby", "bench.methods._bottleneck"): "torch: the registry lists methods without it",
    ("bench.methods.adapter_pfeiffer", "bench.methods._bottleneck"): "torch: the registry lists methods without it",
    ("bench.methods.adapter_parallel", "bench.methods._bottleneck"): "torch: the registry lists methods without it",
}


def module_files() -> dict[str, Path]:
    """bench.x.y -> its file (packages by their __init__.py)."""
    found = {}
    for path in sorted(BENCH.rglob("*.py")):
        parts = path.relative_to(BENCH.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, bool, int]]:
    """(bench module imported, inside a function, line) for every import of the module's file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    in_function = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(fn) if node is not fn}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `from bench.x import name`: the module is bench.x
                target = target.rpartition(".")[0]
            if target:
                found.append((target, id(node) in in_function, node.lineno))
    return found


def graph() -> dict[str, list[tuple[str, bool, int]]]:
    files = module_files()
    return {name: imports(name, path, set(files)) for name, path in files.items()}


def folder(module: str) -> str:
    """bench.trial.load -> trial, bench.config -> config, bench -> bench."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "bench"


def against_layers(edges: dict[str, list[tuple[str, bool, int]]]) -> list[str]:
    """'importer -> imported' for every import of a folder above the importer's."""
    return [f"{name}:{line} -> {target}" for name, found in edges.items() for target, _, line in found
            if LAYERS.index(folder(target)) > LAYERS.index(folder(name))]


def folder_pairs(edges: dict[str, list[tuple[str, bool, int]]]) -> list[tuple[str, str]]:
    """Pairs of folders that import each other."""
    between = {(folder(name), folder(target)) for name, found in edges.items() for target, _, _ in found}
    return sorted((a, b) for a, b in between if a < b and (b, a) in between)


def test_every_folder_has_a_layer():
    assert {folder(name) for name in module_files()} <= set(LAYERS)
    assert {p.name for p in BENCH.glob("*.py")} == TOP_LEVEL


def test_no_import_runs_against_the_layers():
    edges = graph()
    assert {"bench.config", "bench.trackers.memory"} <= {target for target, _, _ in edges["bench.trial.load"]}
    assert against_layers(edges) == []


def test_no_two_folders_import_each_other():
    assert folder_pairs(graph()) == []


def test_the_only_imports_inside_functions_are_the_listed_heavy_ones():
    edges, files = graph(), module_files()
    lazy = {(name, target) for name, found in edges.items() for target, inside, _ in found if inside}
    assert lazy == set(LAZY)
    for name, target in LAZY:  # the code says why too: on the import's line or in the comment just above it
        lines = files[name].read_text().splitlines()
        line = next(line for found, inside, line in edges[name] if found == target and inside)
        assert "#" in "".join(lines[max(0, line - 5):line]), f"{name}:{line}: say why the import of {target} waits"


def test_the_checks_find_what_they_look_for():
    """A trial importing the CLI runs against the layers; two folders that import each other are a pair."""
    edges = {"bench.trial.load": [("bench.cli.run", True, 3)], "bench.cli.run": [("bench.trial.load", False, 1)]}
    assert against_layers(edges) == ["bench.trial.load:3 -> bench.cli.run"]
    assert folder_pairs(edges) == [("cli", "trial")]


def test_listing_the_methods_imports_no_torch():
    """A sweep process reads the registry before it decides to fork, and torch must not be loaded by then; method
    modules import torch inside the functions that train."""
    probe = "import sys; from bench import methods; methods.registry(); print('torch' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                           cwd=BENCH.parent)
    assert found.stdout.strip() == "False"
