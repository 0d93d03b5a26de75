"""The layers as ARCHITECTURE.md draws them: no import cycle among the project's modules (imports
inside functions included), each layer importing only the layers below it, and edge/, pwa/ and
the edge and serving benchmarks working where TensorFlow and Keras are absent (a Raspberry Pi
installs edge.txt only); classifying a photo loads no benchmark code at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.import_graph import cycles, import_graph
from tests.pwa_helpers import model_output

# Who may import whom (ARCHITECTURE.md, "The pipeline, and who may import whom"): edge/ is the
# bottom layer; bench/ measures from the outside and nothing of the project imports it.
MAY_IMPORT = {
    "edge": {"edge"},
    "pwa": {"pwa", "edge"},
    "training": {"training", "edge"},
    "export": {"export", "training", "edge"},
    "bench": {"bench", "edge", "pwa", "training"},
}

IMPORT_EVERYTHING = """
import importlib, importlib.util, json, pkgutil, sys
imported = []
for package_name in ("edge", "pwa", "bench"):
    package = importlib.import_module(package_name)
    for name in getattr(package, "__all__", []):
        getattr(package, name)
    for info in pkgutil.walk_packages(package.__path__, package_name + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
blocked = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")]
print(json.dumps({"imported": imported, "blocked_loaded": blocked}))
"""


def run_blocked(repo_root, *args) -> subprocess.CompletedProcess:
    """python ARGS with TensorFlow, Keras and Playwright impossible to import (the check tier's blocker)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root / "tests" / "check_tier"), str(repo_root)])}
    return subprocess.run(
        [sys.executable, *args], cwd=repo_root, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_blocker_really_blocks(repo_root):
    result = run_blocked(repo_root, "-c", "import keras")
    assert result.returncode == 1
    assert "ImportError: keras is blocked" in result.stderr


def test_every_edge_and_pwa_module_imports_without_tensorflow(repo_root):
    result = run_blocked(repo_root, "-c", IMPORT_EVERYTHING)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = {"edge.bundle", "edge.camera", "edge.classifier", "edge.cli", "edge.preprocess",
                "bench.edge", "bench.serving", "bench.measure", "bench.photos", "bench.data", "bench.report",
                "bench.training", "bench.keras_baseline"}
    assert expected <= set(report["imported"])
    assert report["blocked_loaded"] == []


def test_classify_runs_without_tensorflow(repo_root, random_bundle, small_data):
    photo = next(small_data.rglob("*.jpg"))
    result = run_blocked(repo_root, "-m", "edge", "classify", str(random_bundle), str(photo), "--json")
    assert result.returncode == 0, result.stderr
    assert len(model_output(json.loads(result.stdout)[0])) == 7


def test_classifying_a_photo_imports_nothing_from_bench(repo_root):
    code = ("import sys, edge.cli, edge.classifier\n"
            "print(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_edge_and_serving_benchmarks_run_without_tensorflow(repo_root, random_bundle):
    edge = run_blocked(repo_root, "-m", "bench", "edge", str(random_bundle), "--variants", "int8",
                       "--runs", "2", "--warmup", "0", "--threads", "1")
    assert edge.returncode == 0, edge.stderr
    assert "| int8 | 1 |" in edge.stdout
    serving = run_blocked(repo_root, "-m", "bench", "serving", str(random_bundle), "--variants", "int8",
                          "--photos", "600x450", "--clients", "1", "--requests", "2")
    assert serving.returncode == 0, serving.stderr
    assert serving.stdout.splitlines()[1].split()[:2] == ["int8", "600x450"]


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    root = write_package(tmp_path, {
        "edge/__init__.py": "",
        "edge/a.py": "from edge.b import thing\n",
        "edge/b.py": "thing = 1\n\ndef later():\n    from edge import a  # inside a function: still a cycle\n",
        "edge/c.py": "from . import b\n",  # relative, one way: no cycle
    })
    graph = import_graph(root, ("edge",))
    assert graph["edge.c"] == {"edge.b": 1}
    assert cycles(graph) == [["edge.a", "edge.b"]]


@pytest.fixture(scope="module")
def graph(repo_root):
    return import_graph(repo_root)


def test_no_import_cycles_among_the_projects_modules(graph):
    assert len(graph) > 100, "the graph should hold every module of the project"
    found = cycles(graph)
    edges = [f"{m} -> {t} (line {line})" for c in found for m in c for t, line in graph[m].items() if t in c]
    assert found == [], "import cycles; move the shared piece down into a module both import:\n" + "\n".join(edges)


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_each_layer_imports_only_the_layers_below_it(graph, layer):
    wrong = sorted(f"{module} imports {target} (line {line})" for module, targets in graph.items()
                   if module.split(".")[0] == layer for target, line in targets.items()
                   if target.split(".")[0] not in MAY_IMPORT[layer])
    assert wrong == []
