"""Load-test the real server: requests/s, p50/p99 latency and peak RSS, per variant and photo size.

Example usage:
    python -m pwa.bench runs/demo/bundle --variants int8 float32 --clients 8 --requests 200

Each (variant, photo) pair gets a fresh `python -m pwa` subprocess (waitress on 127.0.0.1, port
chosen by the OS), so its peak RSS (VmHWM) belongs to that case alone. Clients are threads, each
with its own keep-alive connection, sending the same JPEG as an image/jpeg body. Photos are
made here: a 600x450 HAM10000-sized JPEG and a 12 MP phone-sized one (4032x3024), or
--image PATH scaled to both. Loopback only: nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PHOTO_SIZES = {"600x450": (600, 450), "12mp": (4032, 3024)}
URL_LINE = re.compile(r"serving at http://127\.0\.0\.1:(\d+)/")
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
    server_peak_rss_mb: float


def synthetic_lesion(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A skin-coloured, noisy photo with a blurred dark blob: JPEG-compresses like a real one."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.new("RGB", size, (214, 170, 150))
    draw = ImageDraw.Draw(image)
    rx, ry = width * 0.18, height * 0.2
    draw.ellipse((width / 2 - rx, height / 2 - ry, width / 2 + rx, height / 2 + ry), fill=(110, 70, 55))
    image = image.filter(ImageFilter.GaussianBlur(max(2, width // 200)))
    noise = rng.normal(0, 9, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))


def photos(image_path: str | None) -> dict[str, bytes]:
    source = Image.open(image_path).convert("RGB") if image_path else None
    made = {}
    for name, size in PHOTO_SIZES.items():
        image = source.resize(size, Image.Resampling.BICUBIC) if source else synthetic_lesion(size)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        made[name] = buffer.getvalue()
    return made


class ServerProcess:
    """`python -m pwa` on 127.0.0.1 with an OS-chosen port."""

    def __init__(self, bundle: str, variant: str, threads: int | None):
        command = [sys.executable, "-m", "pwa", "--bundle", bundle, "--variant", variant, "--port", "0"]
        if threads:
            command += ["--threads", str(threads)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = self._port()

    def _port(self) -> int:
        for line in self.process.stdout:
            match = URL_LINE.search(line)
            if match:
                return int(match.group(1))
        raise SystemExit(f"python -m pwa exited with {self.process.wait()} before serving")

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kilobytes = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
        return kilobytes / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stdout.close()


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


def run_case(args, variant: str, name: str, photo: bytes) -> Result:
    server = ServerProcess(args.bundle, variant, args.threads)
    try:
        client(server.port, photo, WARMUP_REQUESTS, [], [])
        latencies: list[float] = []  # list.append is atomic: the threads can share these
        errors: list[int] = []
        shares = [args.requests // args.clients + (i < args.requests % args.clients) for i in range(args.clients)]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            futures = [pool.submit(client, server.port, photo, share, latencies, errors) for share in shares]
        for future in futures:
            future.result()  # a client's connection error stops the benchmark, loudly
        elapsed = time.perf_counter() - started
        return Result(
            variant=variant,
            photo=name,
            photo_bytes=len(photo),
            clients=args.clients,
            requests=len(latencies),
            errors=len(errors),
            requests_per_s=round(len(latencies) / elapsed, 1),
            p50_ms=round(float(np.percentile(latencies, 50)), 1),
            p99_ms=round(float(np.percentile(latencies, 99)), 1),
            server_peak_rss_mb=round(server.peak_rss_mb(), 1),
        )
    finally:
        server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pwa.bench",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bundle", help="exported bundle folder (runs/NAME/bundle)")
    parser.add_argument("--variants", nargs="+", default=["int8", "float32"], help="variants to compare")
    parser.add_argument("--photos", nargs="+", choices=sorted(PHOTO_SIZES), default=list(PHOTO_SIZES))
    parser.add_argument("--image", help="a photo to scale to each size (default: a synthetic lesion)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case")
    parser.add_argument("--threads", type=int, default=None, help="LiteRT threads in the server")
    parser.add_argument("--json", dest="json_path", help="also write the results here as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    made = photos(args.image)
    results = []
    header = f"{'variant':<10}{'photo':<9}{'KB':>7}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'RSS MB':>8}{'errors':>8}"
    print(header)
    for variant in args.variants:
        for name in args.photos:
            r = run_case(args, variant, name, made[name])
            results.append(r)
            print(
                f"{r.variant:<10}{r.photo:<9}{r.photo_bytes / 1024:>7.0f}{r.requests_per_s:>8.1f}"
                f"{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{r.server_peak_rss_mb:>8.1f}{r.errors:>8}",
                flush=True,
            )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
