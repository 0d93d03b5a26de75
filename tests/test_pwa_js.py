"""The front end's pure functions (pwa/static/js/: logic.js, preprocess.js, honesty.js,
integrity.js, photo-limits.js), tested where they run: node's own test runner on tests/js/*.test.mjs. This test
makes them part of pytest (and so of `make test`), with the Python implementation's expected
values written to a fixture file first (tests/js_fixtures.py), so none of them may skip."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests import js_fixtures
from tests.pwa_helpers import REPO

JS_TESTS = REPO / "tests" / "js"
pytestmark = pytest.mark.web  # node, and the runtime make web builds (its bundled sha256 is tested)


def test_node_unit_tests_of_the_front_end_pass(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (20 or newer) is needed for the front end's unit tests")
    files = sorted(str(p.relative_to(REPO)) for p in JS_TESTS.glob("*.test.mjs"))
    assert len(files) >= 5, f"expected the logic, preprocess, honesty, integrity and photo-limits tests, found {files}"
    fixture = js_fixtures.write(tmp_path / "expected.json")
    env = {**os.environ, "LESIONLITE_JS_FIXTURE": str(fixture)}
    result = subprocess.run([node, "--test", *files], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    assert "# skipped 0" in result.stdout, "a test needing the Python fixture or the vendor build skipped"
