"""`python -m bench browser` end to end on the untrained bundle: Chromium and the interpreter both
timed, a first visit that downloads one wasm build and the model, a repeat visit that downloads
neither (the service worker's cache), over HTTPS (brotli) and plain HTTP as on a LAN (gzip)."""

from __future__ import annotations

import json

import pytest

from tests.pwa_helpers import REPO, find_chromium
from tests.test_bench import run_bench

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("protocol", "coding"), [("https", "br"), ("http", "gzip")])
def test_bench_browser_measures_the_phone_against_the_interpreter(repo_root, random_bundle, tmp_path, protocol, coding):
    if find_chromium() is None:
        pytest.fail("Chromium is missing: apt-get install chromium (scripts/install-system-deps.sh)")
    out = tmp_path / "browser.json"
    flags = ["--http"] if protocol == "http" else []
    result = run_bench(repo_root, "browser", random_bundle, "--variants", "int8", "--runs", "5", "--warmup", "1",
                       "--json", out, *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    [case] = json.loads(out.read_text())
    assert case["protocol"] == protocol and case["variant"] == "int8"
    assert case["browser_invoke"]["p50_ms"] > 0 and case["python_invoke_1_thread"]["p50_ms"] > 0
    assert case["ratio_p50"] == pytest.approx(case["browser_invoke"]["p50_ms"] / case["python_invoke_1_thread"]["p50_ms"])
    assert case["wasm_build"] == ["litert_wasm_internal.wasm"]  # Chromium has relaxed SIMD: never the compat build
    wasm = "litert/litert_wasm_internal.wasm"
    sent = case["first_visit_paths"][f"/static/vendor/{wasm}"]
    assert sent == json.loads((REPO / "pwa/static/vendor/build.json").read_text())["files"][wasm]["compressed"][coding]
    # The wasm (brotli 1.9 MB, gzip 2.8 MB) and the model, and not much else.
    assert case["model_bytes"] < case["first_visit_bytes"] - sent < case["model_bytes"] + 500 * 1024
    assert case["repeat_visit_bytes"] < 20 * 1024
    assert not [p for p in case["repeat_visit_paths"] if p.startswith(("/static/vendor/", "/bundle/"))]
    assert 2**20 < case["wasm_heap_bytes"] < 2**30
    assert "| int8 |" in result.stdout
