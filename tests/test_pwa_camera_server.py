"""The server camera end to end: the real `python -m pwa --camera VIDEO` (cheroot) in a subprocess,
with a video file written by OpenCV standing in for the camera. The camera is served on the
kiosk's own listener (127.0.0.1, --kiosk-port) only: never on the phones' listener, whatever
forwarder sits in front of it."""

from __future__ import annotations

import base64
import http.client as http_client
import io
import json
import subprocess
import sys
import urllib.parse

import pytest
from PIL import Image

from edge import Classifier
from pwa import kiosk
from tests.camera_helpers import rgb_frame, wait_until, write_video
from tests.pwa_helpers import REPO, http, running_server, synthetic_photo, tcp_forwarder


@pytest.fixture(scope="module")
def frame():
    return rgb_frame(synthetic_photo(6))


@pytest.fixture(scope="module")
def video(frame, tmp_path_factory):
    # One picture throughout, lossless: whichever frame is captured, it is exactly this one.
    return write_video(tmp_path_factory.mktemp("camera") / "camera.avi", [frame], fps=30, repeat=30)


@pytest.fixture(scope="module")
def server(random_bundle, video, tmp_path_factory):
    with running_server(random_bundle, tmp_path_factory.mktemp("server"), "--camera", str(video),
                        "--variant", "float32") as running:
        yield running


def read_preview(base_url: str, count: int) -> list[bytes]:
    """The first `count` JPEG parts of GET /api/camera/preview."""
    parts = urllib.parse.urlsplit(base_url)
    connection = http_client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", "/api/camera/preview")
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        jpegs = []
        while len(jpegs) < count:
            assert response.readline() == b"--frame\r\n"
            headers = dict(response.readline().decode().strip().split(": ", 1) for _ in range(2))
            assert headers["Content-Type"] == "image/jpeg"
            assert response.readline() == b"\r\n"
            jpegs.append(response.read(int(headers["Content-Length"])))
            assert response.readline() == b"\r\n"
        return jpegs
    finally:
        connection.close()


def request(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict | None]:
    """(status, JSON body or None) of one request with exactly these extra headers."""
    parts = urllib.parse.urlsplit(url)
    connection = http_client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(body) if is_json else None
    finally:
        connection.close()


CAMERA_ROUTES = (("GET", "/api/camera"), ("POST", "/api/camera/capture"), ("GET", "/api/camera/preview"))


def test_the_phones_listener_never_serves_the_camera_even_through_a_forwarder(server):
    # An SSH or socat tunnel adds no proxy header: the server sees a loopback peer asking.
    phone_port = urllib.parse.urlsplit(server.base_url).port
    with tcp_forwarder(("127.0.0.1", phone_port)) as forwarded:
        for url in (server.base_url, forwarded):
            for method, path in CAMERA_ROUTES:
                assert request(url, method, path, {}) == (
                    404, {"error": f"No API endpoint {path}: see /api/openapi.json."}), (url, path)
        status, _, page = http("GET", f"{forwarded}/")
        assert status == 200 and b"kiosk.js" not in page and b"app.js" in page


def test_the_kiosk_listener_refuses_a_rebinding_page_and_a_forwarded_phone(server):
    kiosk_port = urllib.parse.urlsplit(server.kiosk_url).port
    refused = (403, {"error": kiosk.NOT_KIOSK})
    # A page whose own name now resolves to 127.0.0.1 asks with that name.
    assert request(server.kiosk_url, "POST", "/api/camera/capture", {"Host": f"attacker.example:{kiosk_port}"}) == refused
    # A forwarder on the Pi would bring phones, who name the Pi, not localhost.
    with tcp_forwarder(("127.0.0.1", kiosk_port)) as forwarded:
        assert request(forwarded, "POST", "/api/camera/capture", {"Host": "lesionlite-pi.local:9000"}) == refused
        assert request(forwarded, "GET", "/api/camera", {"X-Forwarded-For": "192.168.1.20"}) == refused
    assert request(server.kiosk_url, "GET", "/api/camera", {"Host": f"localhost:{kiosk_port}"})[0] == 200


def camera_status(server) -> dict:
    status, _, body = http("GET", f"{server.kiosk_url}/api/camera")
    assert status == 200, body
    return json.loads(body)


def test_the_preview_streams_the_centre_square_and_lets_go_of_a_closed_stream(server):
    # Its pace and the rate a client sees are `python -m bench camera`'s figures, not a test's.
    for jpeg in read_preview(server.kiosk_url, 3):
        with Image.open(io.BytesIO(jpeg)) as image:
            assert (image.format, image.size) == ("JPEG", (480, 480))
    assert wait_until(lambda: camera_status(server)["viewers"] == 0)  # the server noticed the closed stream


def test_capture_answers_with_the_classification_of_the_frame(server, random_bundle, frame):
    status, headers, body = http("POST", f"{server.kiosk_url}/api/camera/capture")
    assert status == 200, body
    answer = json.loads(body)
    classifier = Classifier(random_bundle, variant="float32")
    expected = classifier.classify_array(classifier.preprocess(frame))
    assert {key: answer[key] for key in expected.to_dict()} == expected.to_dict()
    assert answer["model"]["variant"] == "float32"
    assert headers["Cache-Control"] == "no-store"
    jpeg = base64.b64decode(answer["frame"].removeprefix("data:image/jpeg;base64,"))
    with Image.open(io.BytesIO(jpeg)) as shown:
        assert shown.size == (480, 480)
    camera = camera_status(server)
    assert (camera["backend"], camera["frame_size"], camera["error"]) == ("opencv", [640, 480], None)
    assert wait_until(lambda: camera_status(server)["fps"] > 0)  # measured; its value for a pace: test_pwa_live.py
    assert "Traceback" not in server.stderr()


def run_pwa(random_bundle, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pwa", "--bundle", str(random_bundle), "--port", "0", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_a_named_camera_that_cannot_open_stops_the_server_with_its_message(random_bundle):
    result = run_pwa(random_bundle, "--camera", "97")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: cannot open camera 97"
    result = run_pwa(random_bundle, "--camera", "picamera2")
    assert result.returncode == 2
    assert "error: Picamera2 is not installed: on Raspberry Pi OS, apt install python3-picamera2" in result.stderr


def test_auto_without_any_camera_serves_without_one(random_bundle, tmp_path):
    with running_server(random_bundle, tmp_path, "--camera", "auto") as running:
        status, _, body = http("GET", f"{running.kiosk_url}/api/camera")
        assert status == 404
        status, _, page = http("GET", f"{running.kiosk_url}/")
        assert status == 200 and b"app.js" in page  # the kiosk's browser gets the phone page and its own camera
        assert "note: no server camera (cannot open camera 0); browsers use their own" in running.stderr()
