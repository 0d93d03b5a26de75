"""Example usage:
    python -m bench browser runs/demo/bundle --variants int8 float32 --json runs/demo/bench/browser.json

The on-device path in Debian's Chromium (Playwright, Pixel 7 emulation) against ai-edge-litert in
this process, per variant: LiteRT.js invoke p50/p90 on the wasm accelerator (the page's own
engine, an already preprocessed image) and the Python interpreter's with one thread (the
browser build runs one), timed in alternating rounds of 50, and their ratio; the time from
navigation start to the model being ready on a first visit (nothing cached) and on a repeat
visit (service worker cache); the bytes the server sent for each visit (response bodies,
counted by a WSGI wrapper); the WebAssembly heap.

The server is the real app (create_app + cheroot) on 127.0.0.1, over HTTPS with a throwaway
self-signed certificate by default. --http measures what a phone on a LAN gets over plain HTTP:
Chromium asks for brotli only in a secure context, which loopback always is, so the server is
told to ignore "br" there and sends gzip. Loopback only; nothing leaves the machine. Playwright
is imported only here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from bench import BenchError, positive_int
from bench.measure import percentiles
from edge.classifier import quantize_input
from edge.manifest import Manifest

ENGINE = "await (await import('/static/js/onphone.js')).currentEngine()"
READY = "document.querySelector('#engine-status').textContent.includes('runs on this phone')"
READY_TIMEOUT_S = 120
ROUND = 50  # invokes per runtime before switching to the other


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="bundle folder (runs/NAME/bundle)")
    parser.add_argument("--variants", nargs="+", default=["int8", "float32"], help="variants to compare")
    parser.add_argument("--runs", type=positive_int, default=200, help="timed invokes per variant and runtime")
    parser.add_argument("--warmup", type=positive_int, default=20, help="untimed invokes first")
    parser.add_argument("--http", action="store_true", help="plain HTTP without brotli, as on a LAN, instead of HTTPS")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium", help="Chromium binary")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the results here as JSON")


class ByteCounter:
    """WSGI middleware: the response body bytes sent per path since the last reset(); with
    no_brotli, requests lose "br" from their Accept-Encoding (a non-secure origin's request)."""

    def __init__(self, app, no_brotli: bool = False):
        self.app, self.sent, self.lock, self.no_brotli = app, {}, threading.Lock(), no_brotli

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.no_brotli:
            codings = environ.get("HTTP_ACCEPT_ENCODING", "").split(",")
            environ["HTTP_ACCEPT_ENCODING"] = ",".join(c for c in codings if c.split(";")[0].strip() != "br")
        for chunk in self.app(environ, start_response):
            with self.lock:
                self.sent[path] = self.sent.get(path, 0) + len(chunk)
            yield chunk

    def reset(self) -> dict[str, int]:
        with self.lock:
            sent, self.sent = self.sent, {}
        return sent


def self_signed(folder: Path) -> tuple[str, str]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


@contextmanager
def serving(bundle: Path, variant: str, https: bool):
    """The app for VARIANT on 127.0.0.1 (any free port); yields (base URL, byte counter)."""
    from pwa import create_app
    from pwa.server import build_server

    counter = ByteCounter(create_app({"BUNDLE": str(bundle), "VARIANT": variant}), no_brotli=not https)
    with tempfile.TemporaryDirectory() as folder:
        cert, key = self_signed(Path(folder)) if https else (None, None)
        server = build_server(counter, "127.0.0.1", 0, cert, key)
        server.prepare()
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        try:
            yield f"{'https' if https else 'http'}://127.0.0.1:{server.bind_addr[1]}", counter
        finally:
            server.stop()


class PythonInvoke:
    """ai-edge-litert (default XNNPACK, one thread) on a mid-grey image, as the edge benchmark does."""

    def __init__(self, bundle: Path, manifest: Manifest, variant: str):
        self.interpreter = Interpreter(model_path=str(bundle / manifest.variant(variant).file), num_threads=1)
        self.interpreter.allocate_tensors()
        details = self.interpreter.get_input_details()[0]
        pixels = np.full((manifest.input_size, manifest.input_size, 3), 128, np.uint8)
        batch = quantize_input(pixels, details["dtype"], *details["quantization"])[np.newaxis]
        self.interpreter.set_tensor(details["index"], batch)

    def times(self, runs: int, warmup: int) -> list[float]:
        times = []
        for i in range(warmup + runs):
            start = time.perf_counter()
            self.interpreter.invoke()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
        return times


def browser_times(page, runs: int, warmup: int) -> list[float]:
    """compiled.run() of the page's own engine on a mid-grey image (input tensor made once)."""
    return page.evaluate(f"""async ([runs, warmup]) => {{
        const engine = {ENGINE};
        const size = engine.size;
        const data = engine.dtype === 'float32' ? new Float32Array(size * size * 3).fill(128)
                                                : new Uint8Array(size * size * 3).fill(128);
        const input = new engine.lib.Tensor(data, [1, size, size, 3]);
        const times = [];
        for (let i = 0; i < warmup + runs; i++) {{
            const start = performance.now();
            const outputs = await engine.compiled.run(input);
            const elapsed = performance.now() - start;
            for (const tensor of outputs) tensor.delete();
            if (i >= warmup) times.push(elapsed);
        }}
        input.delete();
        return times;
    }}""", [runs, warmup])


def interleaved(page, python: PythonInvoke, runs: int, warmup: int) -> tuple[dict, dict]:
    """Both runtimes timed in alternating rounds, so load from elsewhere on the machine weighs on
    both alike: (browser, python) percentiles."""
    size = min(ROUND, runs)
    browser, native = [], []
    for i in range(max(1, runs // size)):
        browser += browser_times(page, size, warmup if i == 0 else 2)
        native += python.times(size, warmup if i == 0 else 2)
    return percentiles(browser), percentiles(native)


def wait_in_page(page, condition: str, timeout_s: float) -> bool:
    """Poll a JS condition inside the page (the CSP forbids the eval that wait_for_function uses)."""
    return page.evaluate(f"""async () => {{
        const end = Date.now() + {timeout_s * 1000};
        while (Date.now() < end) {{ if ({condition}) return true; await new Promise((r) => setTimeout(r, 50)); }}
        return false;
    }}""")


def visit(context, base_url: str, counter: ByteCounter):
    """Open the app and wait for its model to be ready: (page, ms from navigation start, bytes by path).

    The engine starts once the service worker controls the page, i.e. after its install
    (the shell's precache) finished, so the bytes include the worker's own downloads.
    """
    counter.reset()
    page = context.new_page()
    page.goto(base_url + "/")
    if not wait_in_page(page, READY, READY_TIMEOUT_S):
        raise BenchError(f"the model was not ready on the phone within {READY_TIMEOUT_S} s: "
                         + page.locator("#engine-status").inner_text())
    ready_ms = page.evaluate(f"async () => ({ENGINE}).readyAt")
    return page, ready_ms, counter.reset()


def measure_variant(browser, device: dict, args: argparse.Namespace, manifest: Manifest, variant: str) -> dict:
    with serving(args.bundle, variant, not args.http) as (base_url, counter):
        context = browser.new_context(**device, ignore_https_errors=True)
        try:
            first_page, first_ms, first_bytes = visit(context, base_url, counter)
            first_page.close()
            page, repeat_ms, repeat_bytes = visit(context, base_url, counter)
            invoke, python = interleaved(page, PythonInvoke(args.bundle, manifest, variant), args.runs, args.warmup)
            heap = page.evaluate(f"async () => ({ENGINE}).heapBytes()")
        finally:
            context.close()
    wasm = [path.rsplit("/", 1)[-1] for path in first_bytes if path.endswith(".wasm")]
    return {
        "variant": variant, "protocol": "http" if args.http else "https",
        "browser_invoke": invoke, "python_invoke_1_thread": python,
        "ratio_p50": invoke["p50_ms"] / python["p50_ms"],
        "ready_first_visit_ms": first_ms, "ready_repeat_visit_ms": repeat_ms,
        "first_visit_bytes": sum(first_bytes.values()), "repeat_visit_bytes": sum(repeat_bytes.values()),
        "first_visit_paths": first_bytes,
        "repeat_visit_paths": sorted(repeat_bytes), "wasm_build": wasm, "wasm_heap_bytes": heap,
        "model_bytes": manifest.variant(variant).bytes,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| variant | Chromium invoke p50 ms (p90) | ai-edge-litert 1 thread p50 ms | ratio | ready: first visit ms "
        "| ready: repeat visit ms | first visit KB | repeat visit KB | wasm heap MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        b, p = r["browser_invoke"], r["python_invoke_1_thread"]
        lines.append(
            f"| {r['variant']} | {b['p50_ms']:.2f} ({b['p90_ms']:.2f}) | {p['p50_ms']:.2f} | {r['ratio_p50']:.1f}x "
            f"| {r['ready_first_visit_ms']:.0f} | {r['ready_repeat_visit_ms']:.0f} | {r['first_visit_bytes'] / 1024:.0f} "
            f"| {r['repeat_visit_bytes'] / 1024:.0f} | {r['wasm_heap_bytes'] / 2**20:.0f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BenchError("bench browser needs playwright (requirements/dev.txt) and Chromium") from None
    manifest = Manifest.load(args.bundle)
    for variant in args.variants:
        manifest.variant(variant)  # an unknown name fails before anything starts
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=[
            "--ignore-certificate-errors",  # the throwaway certificate (service workers need it accepted)
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"])
        try:
            results = [measure_variant(browser, pw.devices["Pixel 7"], args, manifest, v) for v in args.variants]
        finally:
            browser.close()
    print(table(results))
    for r in results:
        fetched = ", ".join(r["repeat_visit_paths"])
        print(f"{r['variant']}: wasm build {', '.join(r['wasm_build'])}; the repeat visit fetched {fetched}")
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0
