"""The server camera's API and the kiosk page through Flask's test client, with an in-memory camera.

The camera's routes are the kiosk app's alone (pwa.create_kiosk_app, served on 127.0.0.1 only);
the app phones reach never has them. The test client sends Host: localhost, as the kiosk's
browser does; the requests a rebinding page, a forwarder or another site would send are built
by hand (tests/test_pwa_camera_server.py sends them to the real listeners).
"""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from edge import Classifier
from edge.cameras import Camera
from edge.errors import CameraError
from edge.labels import DISCLAIMER
from pwa import camera_api, create_app, create_kiosk_app, kiosk, live
from tests.camera_helpers import rgb_frame, wait_until
from tests.pwa_helpers import assert_fits, model_output, schema_validator, synthetic_photo

CAMERA_ROUTES = (("GET", "/api/camera"), ("GET", "/api/camera/preview"), ("POST", "/api/camera/capture"))
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
def phone_app(random_bundle, camera):
    return create_app({"TESTING": True, "BUNDLE": str(random_bundle), "CAMERA": camera, "KIOSK_IDLE_S": 45})


@pytest.fixture
def app(phone_app):
    """The kiosk's app, built as python -m pwa --camera builds it."""
    app = create_kiosk_app(phone_app)
    yield app
    camera_api.close(app)


@pytest.fixture
def client(app):
    return app.test_client()


def test_without_camera_every_camera_route_is_a_json_404(random_bundle):
    kiosk_app = create_kiosk_app(create_app({"TESTING": True, "BUNDLE": str(random_bundle)}))
    client = kiosk_app.test_client()
    message = "This server has no camera: start it with python -m pwa --camera auto (or a device)."
    for method, path in CAMERA_ROUTES:
        response = client.open(path, method=method)
        assert (response.status_code, response.get_json()) == (404, {"error": message}), path
    assert b'src="/static/js/app.js"' in client.get("/").data  # the ordinary page


def test_the_phones_app_never_has_the_camera_routes(phone_app, camera):
    client = phone_app.test_client()
    for method, path in CAMERA_ROUTES:
        response = client.open(path, method=method)  # from loopback, with the kiosk's own Host
        assert (response.status_code, response.get_json()) == (
            404, {"error": f"No API endpoint {path}: see /api/openapi.json."}), path
    assert not {rule.rule for rule in phone_app.url_map.iter_rules()} & {path for _, path in CAMERA_ROUTES}
    assert b'src="/static/js/app.js"' in client.get("/").data
    assert camera_api.LIVE_KEY not in phone_app.extensions  # the phone app never opened the camera


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
    app = create_kiosk_app(create_app({"TESTING": True, "BUNDLE": str(melanoma_bundle), "VARIANT": "float32",
                                       "CAMERA": MemoryCamera(frame)}))
    try:
        client = app.test_client()
        body = client.post("/api/camera/capture").get_json()
        assert body["status"] == "ok" and body["predictions"][0]["code"] == "mel"
        assert [r["code"] for r in body["reasons"]] == MALIGNANT_WARNINGS
        assert_fits(schema_validator(client.get("/api/openapi.json").get_json(), "CaptureResult"), body)
    finally:
        camera_api.close(app)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Host": "attacker.example:8001"}, id="rebound-name"),
        pytest.param({"Host": "localhost.attacker.example"}, id="lookalike-name"),
        pytest.param({"Host": "192.168.1.20:8001"}, id="lan-address"),
        pytest.param({"X-Forwarded-For": "192.168.1.20"}, id="x-forwarded-for"),
        pytest.param({"Forwarded": "for=192.168.1.20"}, id="forwarded"),
        pytest.param({"X-Real-IP": "192.168.1.20"}, id="x-real-ip"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="another-site"),
        pytest.param({"Sec-Fetch-Site": "same-site"}, id="the-phones-listener"),
    ],
)
def test_the_kiosk_listener_refuses_all_but_the_kiosks_browser(client, headers):
    for method, path in (*CAMERA_ROUTES, ("GET", "/"), ("POST", "/api/predict")):
        response = client.open(path, method=method, headers=headers)
        assert (response.status_code, response.get_json()) == (403, {"error": kiosk.NOT_KIOSK}), path


@pytest.mark.parametrize("host", ["localhost:8001", "127.0.0.1:8001", "[::1]:8001", "LOCALHOST"])
def test_the_kiosk_listener_answers_the_machines_own_names(client, host):
    headers = {"Host": host, "Sec-Fetch-Site": "same-origin"}
    assert client.get("/api/camera", headers=headers).status_code == 200


def test_the_kiosk_page_is_the_kiosk_listeners_and_phones_keep_the_ordinary_page(client, phone_app):
    kiosk_page = client.get("/").get_data(as_text=True)
    assert 'src="/static/js/kiosk.js"' in kiosk_page and 'data-idle-seconds="45"' in kiosk_page
    assert DISCLAIMER in kiosk_page and "app.js" not in kiosk_page
    phone = phone_app.test_client().get("/").get_data(as_text=True)
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
        read_parts(stream, 1)
    refused = client.get("/api/camera/preview")
    assert (refused.status_code, refused.get_json()) == (503, {"error": live.TOO_MANY_VIEWERS})
    for stream in streams:
        stream.close()
    camera.fail = True
    # Waited for, not slept on: the grab loop has seen the failure, so no frame is current any more.
    assert wait_until(lambda: client.get("/api/camera").get_json()["error"] is not None)
    response = client.post("/api/camera/capture")
    assert response.status_code == 503
    assert response.get_json()["error"].startswith("The camera is not working: the camera gave no frame for 5 s")
    assert client.get("/api/camera").get_json()["error"] == "camera 0 returned no frame"


def test_viewers_arriving_together_are_counted_before_any_passes(app):
    # Twelve requests pass the barrier at once: the check and the count are one step, so exactly
    # MAX_VIEWERS streams open (checked first and counted later, all twelve would).
    camera = app.extensions[camera_api.LIVE_KEY]
    barrier = threading.Barrier(12)
    opened, refused = [], []

    def ask() -> None:
        barrier.wait()
        try:
            opened.append(camera.open_preview())
        except live.PreviewsFullError:
            refused.append(True)

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(opened), len(refused), camera.viewers) == (live.MAX_VIEWERS, 12 - live.MAX_VIEWERS, live.MAX_VIEWERS)
    for preview in opened:
        preview.close()
        preview.close()  # the server may close twice: counted once
    assert camera.viewers == 0


def test_a_stream_closed_before_its_first_part_is_no_longer_a_viewer(app):
    camera = app.extensions[camera_api.LIVE_KEY]
    preview = camera.open_preview()  # a client that leaves before the server sends anything
    assert camera.viewers == 1
    preview.close()
    assert camera.viewers == 0


def test_closing_ends_the_stream_and_releases_the_camera(app, camera):
    preview = app.extensions[camera_api.LIVE_KEY].open_preview()
    stream = iter(preview)
    assert next(stream).startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ")
    camera_api.close(app)
    assert len(list(stream)) <= 1  # at most the part already on its way; waking a waiting reader: tests/test_pwa_live.py
    assert camera.closed and camera_api.LIVE_KEY not in app.extensions
