"""The front end's pure functions (pwa/static/js/logic.js), tested where they run: node's own test
runner on tests/js/*.test.mjs. This test makes them part of pytest (and so of `make test`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.pwa_helpers import REPO

JS_TESTS = REPO / "tests" / "js"


def test_node_unit_tests_of_the_front_end_pass():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (20 or newer) is needed for the front end's unit tests")
    files = sorted(str(p.relative_to(REPO)) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, "no tests/js/*.test.mjs found"
    result = subprocess.run([node, "--test", *files], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
