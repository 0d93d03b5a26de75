"""Example usage:
    python -m bench camera runs/demo/bundle --device camera.avi --variants int8 float32 --captures 100
    python -m bench camera runs/demo/bundle --preview-seconds 10 --json runs/demo/bench/camera.json

The server camera's path, measured through the real server: `python -m pwa --camera DEVICE` in a
subprocess per variant, with a video file (or any OpenCV device) as the camera; without --device,
a synthetic lesion video (640x480, 30 fps, MJPEG like a USB webcam) is written to a temporary
folder. Per variant: capture-to-answer latency of POST /api/camera/capture, as the server times it
(frame grab, preprocess, invoke, their total) and as the client sees it (round trip, including
the JPEG of the frame sent back). Then, once: the preview's frame rate as a client receives it
from GET /api/camera/preview, and the server process's CPU time per wall second while previewing
and while idle (the camera still grabbing), in percent of one core. Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil

from bench import BenchError, positive_int
from bench.measure import percentiles
from bench.photos import HAM10000_SIZE, synthetic_photo
from bench.serving import ServerProcess
from edge.manifest import Manifest

VIDEO_SIZE = (640, 480)
VIDEO_FPS = 30
WARMUP_CAPTURES = 3


@dataclass
class CaptureResult:
    variant: str
    captures: int
    grab_p50_ms: float
    preprocess_p50_ms: float
    invoke_p50_ms: float
    server_p50_ms: float
    round_trip_p50_ms: float
    round_trip_p99_ms: float


@dataclass
class PreviewResult:
    seconds: float
    frames: int
    frames_per_s: float
    server_cpu_previewing_pct: float
    server_cpu_idle_pct: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="exported bundle folder (runs/NAME/bundle)")
    parser.add_argument("--device", default=None,
                        help="the server's camera: a video file, index or URL (default: a synthetic video)")
    parser.add_argument("--variants", nargs="+", default=["int8", "float32"], help="variants to compare")
    parser.add_argument("--captures", type=positive_int, default=100, help="timed captures per variant")
    parser.add_argument("--preview-seconds", type=float, default=10.0, help="seconds of preview (and of idle) measured")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the results here as JSON")


def write_synthetic_video(path: Path) -> Path:
    """A few seconds of the benchmarks' synthetic lesion, drifting a little frame to frame."""
    import cv2

    photo = np.asarray(synthetic_photo(*HAM10000_SIZE).resize(VIDEO_SIZE))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, VIDEO_SIZE)
    if not writer.isOpened():
        raise BenchError(f"OpenCV cannot write the synthetic video {path}")
    try:
        for shift in range(3 * VIDEO_FPS):
            writer.write(cv2.cvtColor(np.roll(photo, shift, axis=1), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def capture_once(connection: http.client.HTTPConnection) -> tuple[float, dict]:
    started = time.perf_counter()
    connection.request("POST", "/api/camera/capture")
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise BenchError(f"POST /api/camera/capture answered {response.status}: {body[:200].decode(errors='replace')}")
    return elapsed, json.loads(body)["timing_ms"]


def measure_captures(port: int, variant: str, count: int) -> CaptureResult:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(WARMUP_CAPTURES):
            capture_once(connection)
        runs = [capture_once(connection) for _ in range(count)]
    finally:
        connection.close()

    def p50(key: str) -> float:
        return round(float(np.median([timing[key] for _, timing in runs])), 2)

    trips = percentiles([elapsed for elapsed, _ in runs])
    return CaptureResult(variant, count, p50("grab"), p50("decode"), p50("inference"), p50("total"),
                         round(trips["p50_ms"], 2), round(trips["p99_ms"], 2))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def cpu_share_pct(process: psutil.Process, seconds: float, during=None) -> tuple[float, object]:
    """The process's CPU time per wall second, in percent of one core, while `during(seconds)` runs
    (or while sleeping); returns it with what `during` returned."""
    cpu, wall = cpu_seconds(process), time.perf_counter()
    result = during(seconds) if during else time.sleep(seconds)
    share = (cpu_seconds(process) - cpu) / (time.perf_counter() - wall) * 100
    return round(share, 1), result


def count_preview_frames(port: int, seconds: float) -> int:
    """JPEG parts of GET /api/camera/preview fully received within `seconds`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/api/camera/preview")
        response = connection.getresponse()
        if response.status != 200:
            raise BenchError(f"GET /api/camera/preview answered {response.status}: {response.read()[:200]!r}")
        frames, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            response.readline()  # --frame
            headers = dict(response.readline().decode().strip().split(": ", 1) for _ in range(2))
            response.readline()
            response.read(int(headers["Content-Length"]) + 2)
            frames += 1
        return frames
    finally:
        connection.close()


def measure_preview(port: int, pid: int, seconds: float) -> PreviewResult:
    process = psutil.Process(pid)
    idle, _ = cpu_share_pct(process, seconds)
    previewing, frames = cpu_share_pct(process, seconds, lambda s: count_preview_frames(port, s))
    return PreviewResult(seconds, frames, round(frames / seconds, 1), previewing, idle)


def run_variant(args: argparse.Namespace, device: str, variant: str, preview: bool):
    server = ServerProcess(args.bundle, variant, None, ("--camera", device))
    try:
        captures = measure_captures(server.kiosk_port, variant, args.captures)
        return captures, measure_preview(server.kiosk_port, server.process.pid, args.preview_seconds) if preview else None
    finally:
        server.stop()


def print_results(captures: list[CaptureResult], preview: PreviewResult, device: str) -> None:
    print(f"camera: {device}; {os.cpu_count()} cores; times in ms, p50 unless named")
    print(f"{'variant':<10}{'grab':>8}{'preprocess':>12}{'invoke':>9}{'server':>9}{'round trip':>12}{'p99':>9}")
    for c in captures:
        print(f"{c.variant:<10}{c.grab_p50_ms:>8.2f}{c.preprocess_p50_ms:>12.2f}{c.invoke_p50_ms:>9.2f}"
              f"{c.server_p50_ms:>9.2f}{c.round_trip_p50_ms:>12.2f}{c.round_trip_p99_ms:>9.2f}")
    print(f"preview: {preview.frames_per_s:.1f} frames/s received over {preview.seconds:g} s; server CPU "
          f"{preview.server_cpu_previewing_pct:.1f}% of one core while previewing, "
          f"{preview.server_cpu_idle_pct:.1f}% idle (camera grabbing, nobody watching)")


def run(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.bundle)
    for variant in args.variants:
        manifest.variant(variant)  # a typo fails here, not in a server subprocess
    with tempfile.TemporaryDirectory(prefix="lesionlite-camera-") as workdir:
        device = args.device or str(write_synthetic_video(Path(workdir) / "camera.avi"))
        captures, preview = [], None
        for index, variant in enumerate(args.variants):
            result, measured = run_variant(args, device, variant, preview=index == 0)
            captures.append(result)
            preview = preview or measured
        print_results(captures, preview, args.device or "synthetic 640x480 MJPEG video, 30 fps")
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps({"captures": [asdict(c) for c in captures],
                                              "preview": asdict(preview)}, indent=2))
    return 0
