"""The real `python -m pwa` server (cheroot) in a subprocess: HTTP and HTTPS, the JSON 413 a client
still sending can read, slow clients let go at the request's deadline, the bundle's default
variant, and the command's errors."""

from __future__ import annotations

import io
import json
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.parse

import pytest
from PIL import Image

from edge.labels import DISCLAIMER
from pwa import create_app, oversize
from pwa.__main__ import parse_args
from pwa.server import ReadDeadline, RequestTooSlowError
from tests.pwa_helpers import (
    MB,
    REPO,
    http,
    jpeg_bytes,
    model_output,
    png_bytes,
    post_photo,
    post_streamed,
    running_server,
    synthetic_photo,
    zeros,
)

OVER_20_MB = {"error": "The upload is over the limit of 20 MB: send a smaller photo."}


@pytest.fixture(scope="module")
def photo():
    return jpeg_bytes(synthetic_photo(1))


@pytest.fixture(scope="module")
def server(random_bundle, tmp_path_factory):
    with running_server(random_bundle, tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="module")
def expected(random_bundle, photo):
    client = create_app({"TESTING": True, "BUNDLE": str(random_bundle)}).test_client()
    return model_output(client.post("/api/predict", data=photo, content_type="image/jpeg").get_json())


def test_python_m_pwa_serves_predictions_over_real_http(server, photo, expected):
    status, body = post_photo(server.base_url, photo)
    assert (status, model_output(body), body["disclaimer"]) == (200, expected, DISCLAIMER)
    status, headers, page = http("GET", f"{server.base_url}/")
    assert status == 200 and DISCLAIMER.encode() in page
    assert headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self' 'wasm-unsafe-eval';")
    assert headers["Server"] == "lesionlite"
    refusal = {"error": "The photo is not an image format LesionLite reads: send a JPEG or PNG."}
    assert post_photo(server.base_url, b"hello", "image/jpeg") == (415, refusal)
    assert post_photo(server.base_url, photo)[0] == 200  # still serving
    assert "Traceback" not in server.stderr()


def _multipart_parts(filename: str = "big.jpg") -> tuple[bytes, bytes]:
    boundary = "lesionlite-big"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("form", ["multipart", "raw-jpeg"])
def test_a_25_mb_upload_gets_the_json_413_without_a_connection_reset(server, photo, form):
    size = 25 * MB
    if form == "multipart":
        head, tail = _multipart_parts()
        chunks, length = [head, *zeros(size), tail], len(head) + size + len(tail)
        content_type = "multipart/form-data; boundary=lesionlite-big"
    else:
        chunks, length, content_type = zeros(size), size, "image/jpeg"
    # Sends all 25 MB before reading: a server that stopped reading would reset this send loop. How
    # long the server then drains is bounded in bytes and seconds: test_draining_stops_at_its_byte_and_time_bounds.
    status, headers, body = post_streamed(f"{server.base_url}/api/predict", chunks, length, content_type)
    assert (status, json.loads(body)) == (413, OVER_20_MB)
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"
    assert post_photo(server.base_url, photo)[0] == 200


def test_python_m_pwa_limit_is_configurable(random_bundle, tmp_path, photo):
    with running_server(random_bundle, tmp_path, "--max-upload-mb", "1") as small:
        slightly_over = photo + b"\0" * MB
        assert post_photo(small.base_url, slightly_over) == (
            413, {"error": "The upload is over the limit of 1 MB: send a smaller photo."})
        assert post_photo(small.base_url, photo)[0] == 200


class _Counting(io.RawIOBase):
    def __init__(self, total: int):
        self.left, self.read_bytes = total, 0

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        self.read_bytes += size
        return b"\0" * size


def test_draining_stops_at_its_byte_and_time_bounds():
    stream = _Counting(100 * MB)
    assert oversize.discard(stream, 4 * MB, seconds=60) == 4 * MB == stream.read_bytes
    ticks = iter(range(1000))
    slow = _Counting(100 * MB)
    drained = oversize.discard(slow, 80 * MB, seconds=3, clock=lambda: next(ticks))
    assert drained == 2 * oversize.CHUNK  # one clock tick per read: reads at t=1 and t=2 only
    assert oversize.discard(_Counting(10), 4 * MB, seconds=60) == 10  # the body ended first


def test_the_bundles_default_variant_is_served_when_none_is_asked(random_bundle, tmp_path):
    assert parse_args(["--bundle", "b"]).variant is None
    bundle = shutil.copytree(random_bundle, tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["default_variant"] = "float16"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    client = create_app({"TESTING": True, "BUNDLE": str(bundle)}).test_client()
    assert client.get("/healthz").get_json()["variant"] == "float16"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bundle", "/nonexistent/bundle"], "error: bundle folder /nonexistent/bundle does not exist"),
        (["--variant", "float99"], "error: unknown variant 'float99'"),
        (["--cert", "/nonexistent/cert.pem", "--key", "/nonexistent/key.pem"],
         "error: cannot read /nonexistent/cert.pem: no such file"),
    ],
)
def test_python_m_pwa_with_a_bad_option_exits_2_with_one_line(random_bundle, args, message):
    command = [sys.executable, "-m", "pwa", "--bundle", str(random_bundle), "--port", "0", *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-upload-mb", "-1"], "argument --max-upload-mb: must be > 0, got -1"),
        (["--max-upload-mb", "0"], "argument --max-upload-mb: must be > 0, got 0"),
        (["--max-upload-mb", "nan"], "argument --max-upload-mb: expected a finite number, got 'nan'"),
        (["--max-upload-mb", "inf"], "argument --max-upload-mb: expected a finite number, got 'inf'"),
        (["--max-upload-mb", "20MB"], "argument --max-upload-mb: expected a number, got '20MB'"),
        (["--port", "70000"], "argument --port: must be a port from 0 to 65535, got 70000"),
        (["--port", "-1"], "argument --port: must be a port from 0 to 65535, got -1"),
        (["--kiosk-port", "65536"], "argument --kiosk-port: must be a port from 0 to 65535, got 65536"),
        (["--threads", "0"], "argument --threads: must be >= 1, got 0"),
        (["--threads", "2.5"], "argument --threads: expected an integer, got '2.5'"),
        (["--kiosk-idle", "-5"], "argument --kiosk-idle: must be >= 0 seconds, got -5"),
        (["--request-timeout", "0"], "argument --request-timeout: must be > 0, got 0"),
        (["--port", "8000", "--camera", "auto", "--kiosk-port", "8000"],
         "--kiosk-port must differ from --port (both 8000)"),
        (["--cert", "a.pem"], "--cert and --key go together"),
    ],
)
def test_every_numeric_option_is_checked_at_start_up_in_one_line(args, message):
    # Refused before the bundle is read: parse_args raises the UsageError run_cli prints.
    command = [sys.executable, "-m", "pwa", "--bundle", "/nonexistent/bundle", *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {message}\n")


def test_the_read_deadline_bounds_every_read_and_leaves_writes_alone():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        deadline = ReadDeadline(ours, timeout_s=7)
        ours.settimeout(7)
        theirs.sendall(b"abc")
        buffer = bytearray(8)
        assert deadline.recv_into(buffer) == 3  # no deadline set: an ordinary read
        deadline.start(0)  # a deadline already passed: the next read is refused without waiting
        theirs.sendall(b"d")
        with pytest.raises(RequestTooSlowError) as caught:
            deadline.recv_into(buffer)
        assert caught.value.args == ("timed out",)  # the words cheroot answers 408 for
        assert deadline.recv_into(buffer) == 0  # then the body has ended, for whoever reads on
        deadline.start(60)  # the next request on the connection
        assert deadline.recv_into(buffer) == 1
        assert ours.gettimeout() == 7  # what the server's writes use


class Trickler(threading.Thread):
    """A client that connects, sends `head` at once (if any), then one byte of `rest` every
    `pause` seconds; `cut_off` tells whether the server closed before it had sent everything."""

    def __init__(self, base_url: str, head: bytes, rest: bytes, pause: float = 0.3):
        super().__init__(daemon=True)
        parts = urllib.parse.urlsplit(base_url)
        self.address, self.head, self.rest, self.pause = (parts.hostname, parts.port), head, rest, pause
        self.cut_off, self.answer = False, b""

    def run(self) -> None:
        with socket.create_connection(self.address, timeout=30) as sock:
            try:
                sock.sendall(self.head)
                for i in range(len(self.rest)):
                    sock.sendall(self.rest[i:i + 1])
                    if select.select([sock], [], [], self.pause)[0]:  # the server answered, or closed
                        self.cut_off = i < len(self.rest) - 1
                        while chunk := sock.recv(65536):  # the whole answer, until it closes
                            self.answer += chunk
                        return
            except OSError:  # reset while sending: it stopped reading us
                self.cut_off = True


def test_slow_clients_are_let_go_at_the_deadline_and_others_are_served(random_bundle, tmp_path, photo):
    with running_server(random_bundle, tmp_path, "--request-timeout", "2") as server:
        slow_head = Trickler(server.base_url, b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: 1\r\n" * 40)
        body_head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 900\r\n\r\n"
        slow_body = Trickler(server.base_url, body_head + photo[:100], photo[100:900])
        # Eight at once hold every thread of the phones' listener until their deadline.
        crowd = [Trickler(server.base_url, b"", b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 60) for _ in range(8)]
        for client in [slow_head, slow_body, *crowd]:
            client.start()
        assert post_photo(server.base_url, photo)[0] == 200  # served once a deadline freed a thread
        for client in [slow_head, slow_body, *crowd]:
            client.join(timeout=60)
        assert all(client.cut_off for client in [slow_head, slow_body, *crowd])
        assert slow_head.answer.startswith(b"HTTP/1.1 408 ")  # cheroot's, while reading the head
        status_line, _, rest = slow_body.answer.partition(b"\r\n")
        assert status_line.split()[:2] == [b"HTTP/1.1", b"408"]
        assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
            "error": "The upload did not arrive within 2 s: send the photo again from nearer the Wi-Fi."}
        assert "Traceback" not in server.stderr()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def test_python_m_pwa_serves_https_with_cert_and_key(random_bundle, tmp_path, certificate, photo, expected):
    cert, key = certificate
    trust = ssl.create_default_context(cafile=str(cert))
    with running_server(random_bundle, tmp_path, "--cert", str(cert), "--key", str(key)) as server:
        assert server.base_url.startswith("https://127.0.0.1:")
        status, body = post_photo(server.base_url, photo, context=trust)
        assert (status, model_output(body)) == (200, expected)
        big = png_bytes(Image.open(io.BytesIO(photo)).resize((1800, 1350)))  # many TLS records
        assert post_photo(server.base_url, big, "image/png", context=trust)[0] == 200
        status, headers, _ = http("GET", f"{server.base_url}/api/model", context=trust)
        assert status == 200 and headers["Cache-Control"] == "no-store"
        # A client that connects and says nothing must not hold up the others (handshakes run in
        # the worker threads, not in cheroot's accept loop): another is answered while the silent
        # one is still connected. Were the accept loop stuck on it, the answer would come only once
        # the server gave up on the silent client and closed it (after its socket timeout).
        host, port = server.base_url.removeprefix("https://").split(":")
        with socket.create_connection((host, int(port))) as silent:
            assert http("GET", f"{server.base_url}/healthz", context=trust)[0] == 200
            silent.setblocking(False)
            with pytest.raises(BlockingIOError):  # no data and no end of stream: still open
                silent.recv(1)
        status, headers, body = post_streamed(f"{server.base_url}/api/predict", zeros(25 * MB), 25 * MB,
                                              "image/jpeg", context=trust)
        assert (status, json.loads(body)) == (413, OVER_20_MB)
