"""The test tiers (docs/tests.md): a test lands in the check tier only if it needs nothing but the
venv, and one that needs TensorFlow, a browser or a built bundle without saying so fails there
loudly instead of making the one-minute tier slow (an inner pytest session on a test file written
here, with the project's conftest and markers); and a cached fixture's key follows only the code
its generator can import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.import_graph import import_graph, reachable

INNER_TESTS = '''
import pytest

def test_plain():
    assert 1 + 1 == 2

def test_imports_keras_unmarked():
    import keras  # noqa: F401

def test_drives_a_browser_unmarked():
    from playwright.sync_api import sync_playwright  # noqa: F401

def test_asks_for_the_bundle_by_name(request):
    request.getfixturevalue("random_bundle")

def test_uses_the_bundle(random_bundle):
    pass

@pytest.mark.tf
def test_marked_tf():
    pass
'''


def run_inner(repo_root, tmp_path, *args) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    env = {**os.environ, "PYTHONPATH": str(repo_root), "COLUMNS": "400"}  # summary lines in full
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-c", str(repo_root / "pyproject.toml"),
               "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-q", "-rfE", str(tmp_path / "test_inner.py"), *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_the_check_tier_runs_what_needs_only_the_venv_and_fails_what_needs_more(repo_root, tmp_path):
    result = run_inner(repo_root, tmp_path, "-m", "check")
    assert result.returncode == 1, result.stdout[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    # Deselected: test_uses_the_bundle (marked 'bundle' by its fixture) and test_marked_tf.
    assert summary.startswith("3 failed, 1 passed, 2 deselected"), summary
    out = result.stdout
    assert "FAILED test_inner.py::test_imports_keras_unmarked - ImportError: keras is blocked" in out
    assert "a test that needs it is marked 'tf'" in out
    assert "FAILED test_inner.py::test_drives_a_browser_unmarked - ImportError: playwright is blocked" in out
    assert ("FAILED test_inner.py::test_asks_for_the_bundle_by_name - Failed: this test needs the random bundle, "
            "which the check tier does not build: mark it 'bundle'") in out


def test_a_fixtures_cache_key_follows_only_the_code_that_can_shape_it(repo_root):
    graph = import_graph(repo_root)
    trains = reachable(graph, "training.__main__")  # the tiny trained run's generator
    assert {"training.train", "training.model", "training.evaluate", "edge.preprocess"} <= trains  # imported in functions too
    assert sorted({m.split(".")[0] for m in trains}) == ["edge", "training"]  # an edit to pwa/, bench/ or export/ keeps it
    assert reachable(graph, "training.synthetic") == {"training.synthetic", "edge.labels"}  # the synthetic datasets
