"""Load-test the real server: requests/s, p50/p99 latency and peak RSS, per variant and photo size.

Example usage:
    python -m bench serving runs/demo/bundle --variants int8 float32 --clients 8 --requests 200

Each (variant, photo) pair gets a fresh `python -m pwa` subprocess (cheroot on 127.0.0.1, port
chosen by the OS), so its peak RSS (VmHWM) belongs to that case alone. Clients are threads, each
with its own keep-alive connection, sending the same JPEG as an image/jpeg body. Photos are the
benchmarks' synthetic lesion (bench/photos.py) at 600x450 (HAM10000-sized) and 12 MP (4032x3024,
phone-sized), or --image PATH scaled to both. Loopback only: nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import BenchError, positive_int
from bench.measure import percentiles
from bench.photos import HAM10000_SIZE, PHONE_12MP_SIZE, jpeg_photos
from edge.manifest import Manifest
from edge.memory import peak_rss_mb

PHOTO_SIZES = {"600x450": HAM10000_SIZE, "12mp": PHONE_12MP_SIZE}
URL_LINE = re.compile(r"serving at http://127\.0\.0\.1:(\d+)/")
KIOSK_LINE = re.compile(r"Kiosk page \(this machine only\) at http://localhost:(\d+)/")
READY_LINE = "Ctrl-C stops."  # the last line python -m pwa prints before serving
WARMUP_REQUESTS = 4


@dataclass
class Result:
    variant: str
    photo: str
    photo_bytes: int
    clients: int
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    server_peak_rss_mb: float | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="exported bundle folder (runs/NAME/bundle)")
    parser.add_argument("--variants", nargs="+", default=["int8", "float32"], help="variants to compare")
    parser.add_argument("--photos", nargs="+", choices=sorted(PHOTO_SIZES), default=list(PHOTO_SIZES))
    parser.add_argument("--image", type=Path, help="a photo to scale to each size (default: a synthetic lesion)")
    parser.add_argument("--clients", type=positive_int, default=8, help="concurrent client threads")
    parser.add_argument("--requests", type=positive_int, default=200, help="timed requests per case")
    parser.add_argument("--threads", type=positive_int, default=None, help="LiteRT threads in the server")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the results here as JSON")


class ServerProcess:
    """`python -m pwa` on 127.0.0.1 with OS-chosen ports (the kiosk's too, with --camera); its
    stderr goes to a temporary file, so a chatty server never blocks on a full pipe and a failed
    start can say why. `prefix` runs it under another command (prlimit)."""

    def __init__(self, bundle_dir: str, variant: str | None, threads: int | None, extra_args: tuple[str, ...] = (),
                 prefix: tuple[str, ...] = (), cwd: Path | None = None):
        command = [*prefix, sys.executable, "-m", "pwa", "--bundle", bundle_dir, "--port", "0", *extra_args]
        if variant:
            command += ["--variant", variant]
        if "--camera" in extra_args:
            command += ["--kiosk-port", "0"]
        if threads:
            command += ["--threads", str(threads)]
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.stderr, text=True, cwd=cwd)
        self.port, self.kiosk_port = self._ports()

    def _ports(self) -> tuple[int, int | None]:
        port = kiosk_port = None
        for line in self.process.stdout:
            served, kiosk = URL_LINE.search(line), KIOSK_LINE.search(line)
            port = port or (served and int(served.group(1)))
            kiosk_port = kiosk_port or (kiosk and int(kiosk.group(1)))
            if READY_LINE in line and port:
                return port, kiosk_port
        code = self.process.wait()
        self.stderr.seek(0)
        last = (self.stderr.read().strip().splitlines() or ["no message"])[-1]
        self.stop()
        raise BenchError(f"python -m pwa exited with {code} before serving: {last}")

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process.stdout.close()
        self.stderr.close()


def client(port: int, photo: bytes, count: int, latencies: list[float], errors: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "image/jpeg"}
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", "/api/predict", body=photo, headers=headers)
            response = connection.getresponse()
            response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                errors.append(response.status)
    finally:
        connection.close()


def shares(requests: int, clients: int) -> list[int]:
    """REQUESTS split over CLIENTS as evenly as possible, the first ones taking the remainder."""
    return [requests // clients + (i < requests % clients) for i in range(clients)]


def run_case(args: argparse.Namespace, variant: str, name: str, photo: bytes) -> Result:
    server = ServerProcess(args.bundle, variant, args.threads)
    try:
        client(server.port, photo, WARMUP_REQUESTS, [], [])
        latencies: list[float] = []  # list.append is atomic: the threads can share these
        errors: list[int] = []
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            futures = [pool.submit(client, server.port, photo, share, latencies, errors)
                       for share in shares(args.requests, args.clients)]
        for future in futures:
            future.result()  # a client's connection error stops the benchmark, loudly
        elapsed = time.perf_counter() - started
        figures = percentiles(latencies)
        peak = server.peak_rss_mb()
        return Result(variant=variant, photo=name, photo_bytes=len(photo), clients=args.clients,
                      requests=len(latencies), errors=len(errors),
                      requests_per_s=round(len(latencies) / elapsed, 1),
                      p50_ms=round(figures["p50_ms"], 1), p99_ms=round(figures["p99_ms"], 1),
                      server_peak_rss_mb=None if peak is None else round(peak, 1))
    finally:
        server.stop()


def row(r: Result) -> str:
    rss = "-" if r.server_peak_rss_mb is None else f"{r.server_peak_rss_mb:.1f}"
    return (f"{r.variant:<10}{r.photo:<9}{r.photo_bytes / 1024:>7.0f}{r.requests_per_s:>8.1f}"
            f"{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{rss:>8}{r.errors:>8}")


def run(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.bundle)
    for variant in args.variants:
        manifest.variant(variant)  # a typo fails here, not in a server subprocess
    made = jpeg_photos({name: PHOTO_SIZES[name] for name in args.photos}, args.image)
    results = []
    print(f"{'variant':<10}{'photo':<9}{'KB':>7}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'RSS MB':>8}{'errors':>8}")
    for variant in args.variants:
        for name in args.photos:
            results.append(run_case(args, variant, name, made[name]))
            print(row(results[-1]), flush=True)
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.errors for r in results) else 0
