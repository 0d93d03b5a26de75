"""`make demo` as a new user runs it: a fresh clone, no TensorFlow in the environment that serves,
and the shipped model answering a photo over HTTP (issue: "make demo serves the shipped model").

Slow (it installs requirements/edge.txt into the clone's own .venv-serve and builds the on-device
runtime with npm, from the package registries or their local caches), so `make test` only."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading

import pytest

from bench.photos import synthetic_jpeg
from edge.labels import DISCLAIMER
from tests.pwa_helpers import REPO, _read_lines, _wait_for_urls, http, post_photo

pytestmark = [pytest.mark.slow, pytest.mark.web]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("needs git and this repository's history")
    target = tmp_path_factory.mktemp("fresh") / "lesionlite"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True, timeout=300)
    return target


def test_make_demo_serves_the_shipped_model_without_tensorflow(clone, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    stderr_path = tmp_path / "demo-stderr.txt"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(["make", "--no-print-directory", "demo", "DEMO_PORT=0"], cwd=clone, env=env,
                                   stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        base_url, _ = _wait_for_urls(lines, process, stderr_path)
        status, _, body = http("GET", f"{base_url}/api/model")
        model = json.loads(body)
        shipped = json.loads((clone / "models" / "ham10000" / "manifest.json").read_text())
        assert status == 200 and model["variant"] == shipped["default_variant"]
        assert model["sha256"] == shipped["variants"][model["variant"]]["sha256"]  # the shipped model, nothing trained
        status, answer = post_photo(base_url, synthetic_jpeg(600, 450))
        assert status == 200 and answer["status"] in ("ok", "unsure", "retake")
        assert answer["disclaimer"] == DISCLAIMER
        status, _, page = http("GET", f"{base_url}/")
        assert status == 200 and DISCLAIMER.encode() in page
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        process.stdout.close()
    serve_python = clone / ".venv-serve" / "bin" / "python"
    probe = subprocess.run([str(serve_python), "-c", "import importlib.util as u; "
                            "print([m for m in ('tensorflow', 'keras', 'tf_keras') if u.find_spec(m)])"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stderr
    assert not (clone / "runs").exists()  # nothing was trained or exported
