"""The server camera's API and the kiosk page through Flask's test client, with an in-memory camera.

Who counts as "this machine": the test client sets REMOTE_ADDR as a WSGI server would from the
peer address, so environ_base={"REMOTE_ADDR": "192.168.1.20"} is exactly what cheroot passes for
a phone on the LAN. A real second address cannot be used here: every address a test may reach
on this machine is loopback (127.0.0.0/8 all is, 127.0.0.2 included), which is correctly local.
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from edge import Classifier
from edge.cameras import Camera
from edge.errors import CameraError
from edge.labels import DISCLAIMER
from pwa import camera_api, create_app, live
from tests.camera_helpers import rgb_frame, wait_until
from tests.pwa_helpers import assert_fits, model_output, schema_validator, synthetic_photo

PHONE = {"REMOTE_ADDR": "192.168.1.20"}
MALIGNANT_WARNINGS = ["malignant_class", "melanoma_risk", "low_confidence"]


class MemoryCamera(Camera):
    """A camera that shows one picture at about 100 frames a second; `fail` makes reads fail."""

    name = "opencv"
    description = "memory camera"

    def __init__(self, frame: np.ndarray):
        self.frame, self.fail, self.closed = frame, False, False

    def read(self) -> np.ndarray:
        time.sleep(0.01)
        if self.fail:
            raise CameraError("camera 0 returned no frame")
        return self.frame.copy()

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return rgb_frame(synthetic_photo(5))


@pytest.fixture
def camera(frame):
    return MemoryCamera(frame)


@pytest.fixture
def app(random_bundle, camera):
    app = create_app({"TESTING": True, "BUNDLE": str(random_bundle), "CAMERA": camera, "KIOSK_IDLE_S": 45})
    yield app
    camera_api.close(app)


@pytest.fixture
def client(app):
    return app.test_client()


def test_without_camera_every_camera_route_is_a_json_404(random_bundle):
    client = create_app({"TESTING": True, "BUNDLE": str(random_bundle)}).test_client()
    message = "This server has no camera: start it with python -m pwa --camera auto (or a device)."
    for method, path in (("GET", "/api/camera"), ("GET", "/api/camera/preview"), ("POST", "/api/camera/capture")):
        response = client.open(path, method=method)
        assert (response.status_code, response.get_json()) == (404, {"error": message}), path
    assert b'src="/static/js/app.js"' in client.get("/").data  # the ordinary page


def test_capture_answers_like_predict_for_the_current_frame(client, random_bundle, frame):
    response = client.post("/api/camera/capture")
    assert response.status_code == 200
    body = response.get_json()
    classifier = Classifier(random_bundle)
    expected = classifier.classify_array(classifier.preprocess(frame))
    assert {key: body[key] for key in expected.to_dict()} == expected.to_dict()
    assert len(model_output(body)) == 7
    assert body["model"] == {"variant": classifier.variant, "sha256": classifier.sha256}
    assert body["disclaimer"] == DISCLAIMER
    assert set(body["timing_ms"]) == {"grab", "decode", "inference", "total"}
    assert body["timing_ms"]["total"] == pytest.approx(sum(v for k, v in body["timing_ms"].items() if k != "total"), abs=0.05)
    prefix = "data:image/jpeg;base64,"
    assert body["frame"].startswith(prefix)
    assert_fits(schema_validator(client.get("/api/openapi.json").get_json(), "CaptureResult"), body)
    with Image.open(io.BytesIO(base64.b64decode(body["frame"][len(prefix):]))) as shown:
        assert (shown.format, shown.size) == ("JPEG", (480, 480))  # the centre square that was classified
        centre = frame[:, 80:560].astype(float)
        assert np.abs(np.asarray(shown, dtype=float) - centre).mean() < 4  # the same picture, JPEG-close
    assert response.headers["Cache-Control"] == "no-store"



def test_a_melanoma_frame_is_captured_with_the_doctors_reasons(melanoma_bundle, melanoma_photos):
    frame = rgb_frame(Image.open(melanoma_photos["ok"]))
    app = create_app({"TESTING": True, "BUNDLE": str(melanoma_bundle), "VARIANT": "float32",
                      "CAMERA": MemoryCamera(frame)})
    try:
        client = app.test_client()
        body = client.post("/api/camera/capture").get_json()
        assert body["status"] == "ok" and body["predictions"][0]["code"] == "mel"
        assert [r["code"] for r in body["reasons"]] == MALIGNANT_WARNINGS
        assert_fits(schema_validator(client.get("/api/openapi.json").get_json(), "CaptureResult"), body)
    finally:
        camera_api.close(app)

def test_another_machine_is_refused_unless_allowed(client, random_bundle, camera):
    for method, path in (("GET", "/api/camera"), ("GET", "/api/camera/preview"), ("POST", "/api/camera/capture")):
        response = client.open(path, method=method, environ_base=PHONE)
        assert response.status_code == 403, path
        assert response.get_json() == {"error": camera_api.NOT_LOCAL}
    # Through a reverse proxy the peer is loopback, but the client is not this machine.
    proxied = client.post("/api/camera/capture", headers={"X-Forwarded-For": "192.168.1.20"})
    assert proxied.status_code == 403
    assert client.get("/api/camera", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/api/camera", environ_base={"REMOTE_ADDR": "127.0.0.2"}).status_code == 200
    shared = create_app({"TESTING": True, "BUNDLE": str(random_bundle), "CAMERA": camera, "CAMERA_ALLOW_REMOTE": True})
    try:
        assert shared.test_client().post("/api/camera/capture", environ_base=PHONE).status_code == 200
    finally:
        camera_api.close(shared)


def test_the_kiosk_page_is_for_this_machine_and_phones_keep_the_ordinary_page(client):
    kiosk = client.get("/").get_data(as_text=True)
    assert 'src="/static/js/kiosk.js"' in kiosk and 'data-idle-seconds="45"' in kiosk
    assert DISCLAIMER in kiosk and "app.js" not in kiosk
    phone = client.get("/", environ_base=PHONE).get_data(as_text=True)
    assert 'src="/static/js/app.js"' in phone and "kiosk.js" not in phone


def test_status_reports_the_camera_and_its_measured_rate(client, app):
    app.extensions[camera_api.LIVE_KEY].frame_after(1)  # two frames: one interval measured
    body = client.get("/api/camera").get_json()
    assert {k: body[k] for k in ("backend", "source", "frame_size", "viewers", "error", "idle_seconds")} == {
        "backend": "opencv", "source": "memory camera", "frame_size": [640, 480], "viewers": 0, "error": None,
        "idle_seconds": 45}
    assert body["fps"] > 0  # its value for a given pace: tests/test_pwa_live.py, with a clock the test moves


def read_parts(response, count: int) -> list[bytes]:
    """The first `count` JPEGs of a multipart/x-mixed-replace body."""
    buffer, parts = b"", []
    for chunk in response.response:
        buffer += chunk
        while len(parts) < count and b"\r\n\r\n" in buffer:
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = int(dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])["Content-Length"])
            if len(rest) < length + 2:
                break
            parts.append(rest[:length])
            buffer = rest[length + 2:]
        if len(parts) == count:
            return parts
    return parts


def test_preview_is_an_mjpeg_stream_of_the_centre_square(client, app):
    response = client.get("/api/camera/preview")
    assert response.status_code == 200
    assert response.mimetype == "multipart/x-mixed-replace"
    assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    parts = read_parts(response, 4)  # its pace: tests/test_pwa_live.py
    assert len(parts) == 4
    for part in parts:
        with Image.open(io.BytesIO(part)) as image:
            assert (image.format, image.size) == ("JPEG", (480, 480))
    assert client.get("/api/camera").get_json()["viewers"] == 1
    response.close()
    assert client.get("/api/camera").get_json()["viewers"] == 0


def test_previews_are_limited_and_a_failing_camera_is_a_json_503(client, camera):
    streams = [client.get("/api/camera/preview") for _ in range(live.MAX_VIEWERS)]
    for stream in streams:
        read_parts(stream, 1)  # the generator runs: the viewer counts
    refused = client.get("/api/camera/preview")
    assert (refused.status_code, refused.get_json()) == (503, {"error": camera_api.TOO_MANY_VIEWERS})
    for stream in streams:
        stream.close()
    camera.fail = True
    # Waited for, not slept on: the grab loop has seen the failure, so no frame is current any more.
    assert wait_until(lambda: client.get("/api/camera").get_json()["error"] is not None)
    response = client.post("/api/camera/capture")
    assert response.status_code == 503
    assert response.get_json()["error"].startswith("The camera is not working: the camera gave no frame for 5 s")
    assert client.get("/api/camera").get_json()["error"] == "camera 0 returned no frame"


def test_closing_ends_the_stream_and_releases_the_camera(app, camera):
    stream = app.extensions[camera_api.LIVE_KEY].mjpeg()
    assert next(stream).startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ")
    camera_api.close(app)
    assert len(list(stream)) <= 1  # at most the part already on its way; waking a waiting reader: tests/test_pwa_live.py
    assert camera.closed and camera_api.LIVE_KEY not in app.extensions
