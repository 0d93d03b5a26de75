"""edge/, pwa/ and the edge and serving benchmarks must work where TensorFlow and Keras are absent
(a Raspberry Pi installs edge.txt only); classifying a photo loads no benchmark code at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.pwa_helpers import model_output

# Installed as sitecustomize.py, so it is in place before any project code runs.
BLOCKER = """
import importlib.abc, sys

class BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{name} is blocked: edge/, pwa/ and bench/ must not import it")
        return None

sys.meta_path.insert(0, BlockTensorFlow())
"""

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


def run_blocked(repo_root, tmp_path, *args) -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo_root)])}
    return subprocess.run(
        [sys.executable, *args], cwd=repo_root, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_blocker_really_blocks(repo_root, tmp_path):
    result = run_blocked(repo_root, tmp_path, "-c", "import keras")
    assert result.returncode == 1
    assert "ImportError: keras is blocked" in result.stderr


def test_every_edge_and_pwa_module_imports_without_tensorflow(repo_root, tmp_path):
    result = run_blocked(repo_root, tmp_path, "-c", IMPORT_EVERYTHING)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = {"edge.bundle", "edge.camera", "edge.classifier", "edge.cli", "edge.preprocess",
                "bench.edge", "bench.serving", "bench.measure", "bench.photos", "bench.data", "bench.report",
                "bench.training", "bench.keras_baseline"}
    assert expected <= set(report["imported"])
    assert report["blocked_loaded"] == []


def test_classify_runs_without_tensorflow(repo_root, tmp_path, random_bundle, small_data):
    photo = next(small_data.rglob("*.jpg"))
    result = run_blocked(repo_root, tmp_path, "-m", "edge", "classify", str(random_bundle), str(photo), "--json")
    assert result.returncode == 0, result.stderr
    assert len(model_output(json.loads(result.stdout)[0])) == 7


def test_classifying_a_photo_imports_nothing_from_bench(repo_root):
    code = ("import sys, edge.cli, edge.classifier\n"
            "print(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_edge_and_serving_benchmarks_run_without_tensorflow(repo_root, tmp_path, random_bundle):
    edge = run_blocked(repo_root, tmp_path, "-m", "bench", "edge", str(random_bundle), "--variants", "int8",
                       "--runs", "2", "--warmup", "0", "--threads", "1")
    assert edge.returncode == 0, edge.stderr
    assert "| int8 | 1 |" in edge.stdout
    serving = run_blocked(repo_root, tmp_path, "-m", "bench", "serving", str(random_bundle), "--variants", "int8",
                          "--photos", "600x450", "--clients", "1", "--requests", "2")
    assert serving.returncode == 0, serving.stderr
    assert serving.stdout.splitlines()[1].split()[:2] == ["int8", "600x450"]
