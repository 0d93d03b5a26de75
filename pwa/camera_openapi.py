"""The OpenAPI words for the server camera's routes (pwa/camera_api.py); pwa/openapi.py merges them
into the one document, whose route list comes from the app itself: the kiosk listener's document
lists them, the phones' does not."""

from __future__ import annotations

from pwa import live

_CAMERA_STATUS = {
    "type": "object",
    "required": ["backend", "source", "frame_size", "fps", "viewers", "error", "idle_seconds", "disclaimer"],
    "properties": {
        "backend": {"type": "string", "enum": ["picamera2", "opencv"], "description": "How the server reads it."},
        "source": {"type": "string", "description": "Which camera, in words."},
        "frame_size": {"type": "array", "nullable": True, "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
                       "description": "[width, height] of the newest frame; null before the first."},
        "fps": {"type": "number", "minimum": 0, "description": "Frames grabbed per second, measured."},
        "viewers": {"type": "integer", "minimum": 0, "description": "Preview streams open now."},
        "error": {"type": "string", "nullable": True, "description": "Why the camera gives no frames, or null."},
        "idle_seconds": {"type": "integer", "minimum": 0,
                         "description": "The kiosk page returns from a result to the camera after this long untouched."},
        "disclaimer": {"$ref": "#/components/schemas/Disclaimer"},
    },
}
_FRAME = {"type": "string", "pattern": "^data:image/jpeg;base64,",
          "description": "The classified frame's centre square, as a JPEG data URL (never stored)."}


def schemas(predict_result: dict) -> dict:
    """CameraStatus, and CaptureResult: /api/predict's answer (a closed object, so extended here
    rather than combined with allOf) plus the frame and the grab time."""
    capture = {**predict_result, "required": [*predict_result["required"], "frame"],
               "properties": {**predict_result["properties"], "frame": _FRAME}}
    timing = capture["properties"]["timing_ms"]
    capture["properties"]["timing_ms"] = {**timing, "required": [*timing["required"], "grab"]}
    return {"CameraStatus": _CAMERA_STATUS, "CaptureResult": capture}


_NO_CAMERA = "The server was started without --camera"
_NOT_LOCAL = "Not from the kiosk's own browser: another Host than localhost, a forwarder's header, or cross-site"


def _json(schema_name: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }


def _refusals(failing: bool) -> dict:
    refusals = {"403": _json("Error", _NOT_LOCAL), "404": _json("Error", _NO_CAMERA)}
    if failing:
        refusals["503"] = _json("Error", "The camera gives no frames (the message says why), or too many previews")
    return refusals


def operations() -> dict[str, dict]:
    """The words for each camera endpoint, keyed by endpoint name."""
    mjpeg = f"multipart/x-mixed-replace; boundary={live.BOUNDARY}"
    return {
        "camera.camera_status": {
            "summary": "The server's camera: which, its measured frame rate, and any problem",
            "responses": {"200": _json("CameraStatus", "The server has a camera"), **_refusals(False)},
        },
        "camera.camera_preview": {
            "summary": "Live preview of the server's camera as an MJPEG stream for an <img>",
            "description": (f"Each part is a JPEG of the frame's centre square, at most {live.PREVIEW_FPS:g} a "
                            f"second, until the client leaves; at most {live.MAX_VIEWERS} streams at once."),
            "responses": {"200": {"description": "An endless MJPEG stream",
                                  "content": {mjpeg: {"schema": {"type": "string", "format": "binary"}}}},
                          **_refusals(True)},
        },
        "camera.camera_capture": {
            "summary": "Classify the server camera's current frame",
            "description": ("The same answer as POST /api/predict for the newest frame, plus that frame, so "
                            "the kiosk shows what was classified. Nothing is stored."),
            "responses": {"200": _json("CaptureResult", "The answer, as /api/predict's, and the frame"),
                          **_refusals(True)},
        },
    }
