"""Helpers shared by the PWA's tests: the real `python -m pwa` server, photos, HTTP calls, Chromium."""

from __future__ import annotations

import contextlib
import email
import email.policy
import http.client as http_client
import io
import json
import os
import queue
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT_S = 300  # a hang guard, generous: a loaded machine is slow, not broken
URL_LINE = re.compile(r"serving at (https?://\S+)")
KIOSK_LINE = re.compile(r"Kiosk page \(this machine only\) at (http://\S+)")
READY_LINE = "Ctrl-C stops."  # the last line python -m pwa prints before serving
MB = 1024 * 1024
# Debian's chromium package: /usr/bin/chromium is a wrapper script around this binary.
CHROMIUM_FALLBACK = Path("/usr/lib/chromium/chromium")


def find_chromium() -> Path | None:
    """Debian's Chromium (for Playwright's executable_path), or None when it is not installed."""
    found = shutil.which("chromium")
    if found:
        return Path(found)
    return CHROMIUM_FALLBACK if CHROMIUM_FALLBACK.exists() else None


def synthetic_photo(seed: int = 0, size: tuple[int, int] = (600, 450)) -> Image.Image:
    """A lesion-like photo: a blurred dark blob on noisy skin tones, different for each seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    skin = np.array([205, 160, 135]) + rng.integers(-25, 25, 3)
    noise = rng.normal(0, 12, (height, width, 3))
    image = Image.fromarray(np.clip(skin + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    cx, cy = width / 2 + rng.integers(-60, 60), height / 2 + rng.integers(-40, 40)
    rx, ry = rng.integers(60, 140), rng.integers(50, 120)
    colour = tuple(int(c) for c in rng.integers(40, 140, 3))
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
    return image.filter(ImageFilter.GaussianBlur(4))


def schema_validator(document: dict, name: str):
    """A JSON Schema validator of one component schema of an OpenAPI document (/api/openapi.json),
    its $refs resolved within that document."""
    import jsonschema_rs

    return jsonschema_rs.Draft4Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def assert_fits(validator, body: dict) -> None:
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, errors


def model_output(answer: dict) -> list[dict]:
    """An answer's every class, most probable first, under whichever name its status keeps them
    (edge/answer.py; tests/test_answer.py checks which name goes with which status)."""
    return answer["predictions"] if answer["status"] == "ok" else answer["unassessed_model_output"]


def jpeg_bytes(image: Image.Image, quality: int = 90, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **save_kwargs)
    return buffer.getvalue()


def png_bytes(image: Image.Image, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **save_kwargs)
    return buffer.getvalue()


class Server:
    """A `python -m pwa` subprocess; base_url (and kiosk_url, with --camera) is what it printed."""

    def __init__(self, process: subprocess.Popen, urls: tuple[str, str | None], stderr_path: Path):
        self.process = process
        self.base_url, self.kiosk_url = urls
        self.stderr_path = stderr_path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def running_server(bundle: Path, tmp_path: Path, *extra_args: str, prefix: tuple[str, ...] = ()) -> Iterator[Server]:
    """Start `python -m pwa --bundle BUNDLE --port 0 --kiosk-port 0 ...` and yield once it prints
    its URLs. `prefix` runs it under another command (e.g. prlimit).

    Port 0 lets the OS pick a free port, so there is no race for one; the server prints it.
    """
    stderr_path = tmp_path / "server-stderr.txt"
    command = [*prefix, sys.executable, "-m", "pwa", "--bundle", str(bundle), "--port", "0", "--kiosk-port", "0",
               *extra_args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        urls = _wait_for_urls(lines, process, stderr_path)
        yield Server(process, urls, stderr_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _wait_for_urls(lines: queue.Queue, process: subprocess.Popen, stderr_path: Path) -> tuple[str, str | None]:
    """(the first URL it serves at, the kiosk's URL or None), once the server says it serves."""
    base_url = kiosk_url = None
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
        served, kiosk = URL_LINE.search(line), KIOSK_LINE.search(line)
        base_url = base_url or (served and served.group(1).rstrip("/"))
        kiosk_url = kiosk_url or (kiosk and kiosk.group(1).rstrip("/"))
        if READY_LINE in line:
            return base_url, kiosk_url


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


def post_streamed(url: str, chunks: Iterable[bytes], length: int, content_type: str, context=None):
    """POST a body sent chunk by chunk (a socket send loop); (status, headers, body) of the answer.

    Raises whatever the socket raises, e.g. ConnectionResetError if the server stops reading.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        connection = http_client.HTTPSConnection(parts.hostname, parts.port, timeout=60, context=context)
    else:
        connection = http_client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    with contextlib.closing(connection):
        connection.putrequest("POST", parts.path)
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        for chunk in chunks:
            connection.send(chunk)
        response = connection.getresponse()
        return response.status, response.headers, response.read()


@contextlib.contextmanager
def tcp_forwarder(target: tuple[str, int]) -> Iterator[str]:
    """A plain TCP forwarder on 127.0.0.1 to `target`, as an SSH or socat tunnel is: it adds no
    header, so the server sees a loopback peer and the client's own request. Yields its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def forward(client: socket.socket) -> None:
        with client, socket.create_connection(target) as upstream:
            back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
            back.start()
            pipe(client, upstream)
            back.join()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                client, _ = listener.accept()
                threading.Thread(target=forward, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def zeros(total: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """`total` zero bytes in chunks, never all in memory at once."""
    while total > 0:
        yield b"\0" * min(chunk, total)
        total -= chunk


# --- Bad uploads ---------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height but holds almost no data: a decompression bomb's header."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def heic_header() -> bytes:
    return struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0" + b"mif1heic" + b"\0" * 200


def corrupt_png(photo: bytes) -> bytes:
    data = bytearray(png_bytes(Image.open(io.BytesIO(photo))))
    start = data.index(b"IDAT") + 40
    data[start : start + 400] = b"\xff" * 400  # damage the compressed pixels
    return bytes(data)


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 60, 40)).save(buffer, "GIF")
    return buffer.getvalue()

# --- The browser tests' fake camera and captured uploads --------------------------------------


def y4m_from_image(image: Image.Image, path: Path, side: int, frames: int = 3) -> Path:
    """Write an I420 Y4M video, side x side, of the image's centre square (BT.601 limited range, as
    cameras do); side must be even."""
    crop = min(image.size)
    left, top = (image.width - crop) // 2, (image.height - crop) // 2
    square = image.convert("RGB").crop((left, top, left + crop, top + crop))
    rgb = np.asarray(square.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b

    def plane(values: np.ndarray, subsample: bool) -> bytes:
        if subsample:
            values = values.reshape(side // 2, 2, side // 2, 2).mean(axis=(1, 3))
        return np.clip(np.round(values), 0, 255).astype(np.uint8).tobytes()

    frame = b"FRAME\n" + plane(y, False) + plane(u, True) + plane(v, True)
    header = f"YUV4MPEG2 W{side} H{side} F30:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame * frames)
    return path


def uploaded_image(request) -> bytes:
    """The 'image' part of the multipart body the page sent."""
    content_type = request.headers["content-type"]
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.post_data_buffer, policy=email.policy.HTTP
    )
    parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "image"]
    assert len(parts) == 1, "the page must send exactly one multipart field 'image'"
    return parts[0].get_payload(decode=True)
