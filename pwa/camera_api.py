"""The server's camera, for a kiosk whose camera the browser cannot open (a Pi's Camera Module):
GET /api/camera, GET /api/camera/preview (MJPEG), POST /api/camera/capture; and the kiosk page.

These routes exist only in the kiosk's app (pwa.create_kiosk_app), which `python -m pwa` serves on
a listener of its own bound to 127.0.0.1 (--kiosk-port): the app phones reach never has them, so
no proxy or tunnel in front of it can reach the camera. That listener answers only the kiosk's
own browser (pwa/kiosk.py). Frames stay in memory (pwa/live.py); nothing is stored. Refusals are
typed errors that pwa/errors.py answers in JSON.
"""

from __future__ import annotations

import base64
import sys
from time import perf_counter

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template

from edge.cameras import Camera, device_arg, open_camera
from edge.errors import CameraError
from edge.labels import DISCLAIMER
from pwa import kiosk, live, pages
from pwa.api import answer_json, classifier, elapsed_ms

bp = Blueprint("camera", __name__)

LIVE_KEY = "lesionlite.camera"
DEFAULT_KIOSK_IDLE_S = 60


def init_app(app: Flask) -> None:
    """Make `app` the kiosk's: open the configured camera (CAMERA: "auto", "picamera2", "opencv", a
    device, a Camera, or None) and refuse every request not from the kiosk itself (pwa/kiosk.py).

    Raises:
        CameraError: a named camera (anything but "auto") cannot be opened.
    """
    app.config.setdefault("CAMERA", None)
    app.config.setdefault("KIOSK_IDLE_S", DEFAULT_KIOSK_IDLE_S)
    camera = server_camera(app.config["CAMERA"])
    if camera is not None:
        app.extensions[LIVE_KEY] = live.LiveCamera(camera).start()
    kiosk.init_app(app)


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


def live_camera() -> live.LiveCamera:
    """The server's camera.

    Raises:
        live.NoCameraError: there is none.
    """
    camera = current_app.extensions.get(LIVE_KEY)
    if camera is None:
        raise live.NoCameraError(live.NO_CAMERA)
    return camera


def kiosk_index():
    """The page at / of the kiosk's listener: the kiosk page, or the phone's page when the server
    has no camera (the browser's own camera, if any, then serves)."""
    if LIVE_KEY not in current_app.extensions:
        return pages.index()
    return render_template("kiosk.html", disclaimer=DISCLAIMER, idle_seconds=current_app.config["KIOSK_IDLE_S"])


@bp.after_request
def _never_cache(response):
    # The camera's frames and answers are about someone's skin, like /api/predict's.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/camera")
def camera_status():
    return jsonify(**live_camera().status(), idle_seconds=current_app.config["KIOSK_IDLE_S"], disclaimer=DISCLAIMER)


@bp.get("/api/camera/preview")
def camera_preview():
    camera = live_camera()
    camera.newest()  # a failing camera answers a JSON 503 now, not an empty stream
    mimetype = f"multipart/x-mixed-replace; boundary={live.BOUNDARY}"
    return Response(camera.open_preview(), mimetype=mimetype, direct_passthrough=True)


@bp.post("/api/camera/capture")
def camera_capture():
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
