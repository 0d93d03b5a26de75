"""Error responses: every /api answer is JSON {"error": "..."} with a specific message; never a traceback.

The one place where errors become HTTP statuses: edge.preprocess's typed image errors, the decode
slots' BusyError (503 with Retry-After), the server camera's and the kiosk listener's refusals,
an upload that stopped arriving (408, or 400 when cut), Werkzeug's 404/405/413, and the 500 that
only a bug reaches.
"""

from __future__ import annotations

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import ClientDisconnected, HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from edge.errors import CameraError, ImageError, ImageTooLargeError, UnsupportedImageError
from pwa import kiosk, live, oversize
from pwa.decoding import BusyError
from pwa.server import RequestTooSlowError

# Most specific first; ImageError itself covers CorruptImageError and a missing photo.
IMAGE_ERROR_STATUS = ((UnsupportedImageError, 415), (ImageTooLargeError, 413), (ImageError, 400))
# The kiosk listener's refusals, answered with their own message.
REFUSAL_STATUS = ((live.NoCameraError, 404), (kiosk.NotTheKioskError, 403), (live.PreviewsFullError, 503))
INTERNAL_ERROR = "Internal server error: the photo was not classified. Try again."
TOO_SLOW = "The upload did not arrive within {seconds:g} s: send the photo again from nearer the Wi-Fi."
CUT_OFF = "The upload stopped before its end: send the photo again."


def init_app(app: Flask) -> None:
    app.register_error_handler(ImageError, _image_error)
    app.register_error_handler(ClientDisconnected, _upload_cut_off)
    app.register_error_handler(RequestTooSlowError, _upload_too_slow)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(BusyError, _busy)
    app.register_error_handler(CameraError, _camera_error)
    for kind, _ in REFUSAL_STATUS:
        app.register_error_handler(kind, _refusal)
    # Reached only by a bug: the tests show no input gets here. No details leak to the client.
    app.register_error_handler(500, _internal_error)


def status_for(err: ImageError) -> int:
    return next(status for kind, status in IMAGE_ERROR_STATUS if isinstance(err, kind))


def too_large_message() -> str:
    limit_mb = current_app.config["MAX_CONTENT_LENGTH"] / (1024 * 1024)
    return f"The upload is over the limit of {limit_mb:g} MB: send a smaller photo."


def _is_api() -> bool:
    return request.path.startswith("/api/") or request.path in ("/api", "/healthz")


def _error(status: int, message: str):
    response = jsonify(error=message)
    response.status_code = status
    return response


def _image_error(err: ImageError):
    return _error(status_for(err), str(err))


def _busy(err: BusyError):
    response = _error(503, str(err))
    response.headers["Retry-After"] = str(err.retry_after_s)
    return response


def _camera_error(err: CameraError):
    return _error(503, f"The camera is not working: {err}.")


def _refusal(err: Exception):
    return _error(next(status for kind, status in REFUSAL_STATUS if isinstance(err, kind)), str(err))


def _upload_too_slow(err: RequestTooSlowError):
    # The request's deadline (pwa/server.py) passed, or the client paused past the socket timeout;
    # the server closes the connection after this answer.
    return _error(408, TOO_SLOW.format(seconds=current_app.config["REQUEST_TIMEOUT_S"]))


def _upload_cut_off(err: ClientDisconnected):
    # Werkzeug turns a failed read of the body into ClientDisconnected; a timeout may be its cause.
    if isinstance(err.__context__, RequestTooSlowError):
        return _upload_too_slow(err.__context__)
    return _error(400, CUT_OFF)


def _http_error(err: HTTPException):
    if isinstance(err, RequestEntityTooLarge):
        # Too large is an answer to the upload itself, whatever path it was sent to.
        return oversize.drain_after(_error(413, too_large_message()))
    if not _is_api():
        return err  # pages keep Werkzeug's plain HTML error page
    if isinstance(err, MethodNotAllowed):
        allowed = ", ".join(sorted(m for m in err.valid_methods or () if m not in ("HEAD", "OPTIONS")))
        response = _error(405, f"Method {request.method} is not allowed on {request.path}: use {allowed}.")
        response.headers["Allow"] = ", ".join(err.valid_methods or ())
        return response
    if isinstance(err, NotFound):
        return _error(404, f"No API endpoint {request.path}: see /api/openapi.json.")
    return _error(err.code or 500, err.description or err.name)


def _internal_error(err):
    return _error(500, INTERNAL_ERROR)
