"""The server's camera, for a kiosk whose camera the browser cannot open (a Pi's Camera Module):
GET /api/camera, GET /api/camera/preview (MJPEG), POST /api/camera/capture; and the kiosk page.

Off unless the app is configured with CAMERA (python -m pwa --camera ...): then every route here
answers a JSON 404. On, they answer only requests from the machine itself (a loopback address and
no proxy header naming another client) unless CAMERA_ALLOW_REMOTE is set: anyone else gets a
JSON 403, so a phone on the network never sees the kiosk's camera. The routes are registered on
the "api" blueprint, so they share its no-store header and its OpenAPI description
(pwa/camera_openapi.py). Frames stay in memory (pwa/live.py); nothing is stored.
"""

from __future__ import annotations

import base64
import ipaddress
import sys
from time import perf_counter

from flask import Flask, Response, current_app, jsonify, render_template, request

from edge.cameras import Camera, device_arg, open_camera
from edge.errors import CameraError
from edge.labels import DISCLAIMER
from pwa import live
from pwa.api import answer_json, bp, classifier, elapsed_ms

LIVE_KEY = "lesionlite.camera"
# A request that came through a reverse proxy arrives from loopback but is from someone else.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
NO_CAMERA = "This server has no camera: start it with python -m pwa --camera auto (or a device)."
NOT_LOCAL = ("The server's camera answers only the machine it runs on (the kiosk's own screen); "
             "start the server with --camera-allow-remote to share it on the network.")
TOO_MANY_VIEWERS = f"The camera preview is already shown on {live.MAX_VIEWERS} screens: close one and try again."
DEFAULT_KIOSK_IDLE_S = 60


def init_app(app: Flask) -> None:
    """Open the configured camera (CAMERA: "auto", "picamera2", "opencv", a device, or a Camera).

    Raises:
        CameraError: a named camera (anything but "auto") cannot be opened.
    """
    app.config.setdefault("CAMERA", None)
    app.config.setdefault("CAMERA_ALLOW_REMOTE", False)
    app.config.setdefault("KIOSK_IDLE_S", DEFAULT_KIOSK_IDLE_S)
    camera = server_camera(app.config["CAMERA"])
    if camera is not None:
        app.extensions[LIVE_KEY] = live.LiveCamera(camera).start()


def server_camera(spec: str | Camera | None) -> Camera | None:
    """The camera named by --camera. "auto" tolerates finding none (a note, and no camera):
    the unit of a Pi runs with it whether or not a camera is attached."""
    if spec is None or isinstance(spec, Camera):
        return spec
    if spec in ("picamera2", "opencv"):
        return open_camera(spec, 0)
    if spec != "auto":
        return open_camera("opencv", device_arg(spec), loop=True)
    try:
        camera = open_camera("auto", 0, loop=True)
    except CameraError as err:
        print(f"note: no server camera ({err}); browsers use their own", file=sys.stderr)
        return None
    try:
        camera.read()  # "auto" must not keep a device that opens but gives no frames
    except CameraError as err:
        camera.close()
        print(f"note: no server camera ({camera.description}: {err}); browsers use their own", file=sys.stderr)
        return None
    return camera


def description(app: Flask) -> str | None:
    """The server camera's one-line description, or None without one."""
    camera = app.extensions.get(LIVE_KEY)
    return None if camera is None else camera.camera.description


def close(app: Flask) -> None:
    """Release the camera (python -m pwa calls this when it stops)."""
    camera = app.extensions.pop(LIVE_KEY, None)
    if camera is not None:
        camera.close()


def is_local_request() -> bool:
    """From this machine: a loopback peer address, and no proxy header (a proxy's client is elsewhere)."""
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def live_camera() -> live.LiveCamera | None:
    return current_app.extensions.get(LIVE_KEY)


def refusal() -> Response | None:
    """The JSON 404 (no camera) or 403 (not this machine) a camera route answers, or None to go on."""
    if live_camera() is None:
        return error_response(404, NO_CAMERA)
    if not (is_local_request() or current_app.config["CAMERA_ALLOW_REMOTE"]):
        return error_response(403, NOT_LOCAL)
    return None


def error_response(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


def wants_kiosk_page() -> bool:
    """The page at / is the kiosk page when the server has a camera and the browser runs on this
    machine; a phone on the network gets the ordinary page and uses its own camera."""
    return live_camera() is not None and is_local_request()


def kiosk_page() -> str:
    return render_template("kiosk.html", disclaimer=DISCLAIMER, idle_seconds=current_app.config["KIOSK_IDLE_S"])


@bp.get("/api/camera")
def camera_status():
    refused = refusal()
    if refused is not None:
        return refused
    return jsonify(**live_camera().status(), idle_seconds=current_app.config["KIOSK_IDLE_S"], disclaimer=DISCLAIMER)


@bp.get("/api/camera/preview")
def camera_preview():
    refused = refusal()
    if refused is not None:
        return refused
    camera = live_camera()
    if camera.viewers >= live.MAX_VIEWERS:
        return error_response(503, TOO_MANY_VIEWERS)
    camera.newest()  # a failing camera answers a JSON 503 now, not an empty stream
    mimetype = f"multipart/x-mixed-replace; boundary={live.BOUNDARY}"
    return Response(camera.mjpeg(), mimetype=mimetype, direct_passthrough=True)


@bp.post("/api/camera/capture")
def camera_capture():
    refused = refusal()
    if refused is not None:
        return refused
    started = perf_counter()
    frame = live_camera().newest()
    grab_ms = elapsed_ms(started)
    clf = classifier()
    started = perf_counter()
    pixels = clf.preprocess(frame.rgb)
    body = answer_json(clf, pixels, {"grab": grab_ms, "decode": elapsed_ms(started)})
    jpeg = live.square_jpeg(frame.rgb, live.FRAME_JPEG_QUALITY)
    body["frame"] = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    return jsonify(body)
