"""Helpers shared by the PWA's API and browser tests: a real waitress server, images, HTTP calls."""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT_S = 60
URL_LINE = re.compile(r"serving at (https?://\S+)")


def jpeg_bytes(image: Image.Image, quality: int = 90, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **save_kwargs)
    return buffer.getvalue()


def png_bytes(image: Image.Image, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **save_kwargs)
    return buffer.getvalue()


class Server:
    """A `python -m pwa` subprocess; base_url is what it printed."""

    def __init__(self, process: subprocess.Popen, base_url: str, stderr_path: Path):
        self.process = process
        self.base_url = base_url
        self.stderr_path = stderr_path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def running_server(bundle: Path, tmp_path: Path, *extra_args: str) -> Iterator[Server]:
    """Start `python -m pwa --bundle BUNDLE --port 0 ...` and yield once it prints its URL.

    Port 0 lets the OS pick a free port, so there is no race for one; the server prints it.
    """
    stderr_path = tmp_path / "server-stderr.txt"
    command = [sys.executable, "-m", "pwa", "--bundle", str(bundle), "--port", "0", *extra_args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        base_url = _wait_for_url(lines, process, stderr_path)
        yield Server(process, base_url, stderr_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _wait_for_url(lines: queue.Queue, process: subprocess.Popen, stderr_path: Path) -> str:
    while True:
        try:
            line = lines.get(timeout=SERVER_START_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"server printed no URL in {SERVER_START_TIMEOUT_S} s") from None
        if line is None:
            process.wait(timeout=10)
            raise AssertionError(
                f"server exited with {process.returncode}: {stderr_path.read_text(errors='replace')}"
            )
        match = URL_LINE.search(line)
        if match:
            return match.group(1).rstrip("/")


def http(method: str, url: str, data: bytes | None = None, content_type: str | None = None, context=None):
    """(status, headers, body bytes) for one request; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=data, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def post_photo(base_url: str, data: bytes, content_type: str = "image/jpeg", context=None):
    """(status, JSON answer) of POST /api/predict with a raw image body."""
    status, _, body = http("POST", f"{base_url}/api/predict", data, content_type, context)
    return status, json.loads(body)
