"""Error responses: every /api answer is JSON {"error": "..."} with a specific message; never a traceback."""

from __future__ import annotations

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from pwa.api import UploadError

INTERNAL_ERROR = "Internal server error: the photo was not classified. Try again."


def init_app(app: Flask) -> None:
    app.register_error_handler(UploadError, _upload_error)
    app.register_error_handler(HTTPException, _http_error)
    # Reached only by a bug: the tests show no input gets here. No details leak to the client.
    app.register_error_handler(500, _internal_error)


def _is_api() -> bool:
    return request.path.startswith("/api/") or request.path in ("/api", "/healthz")


def _error(status: int, message: str):
    response = jsonify(error=message)
    response.status_code = status
    return response


def _upload_error(err: UploadError):
    return _error(err.status, err.message)


def _http_error(err: HTTPException):
    if isinstance(err, RequestEntityTooLarge):
        # Too large is an answer to the upload itself, whatever path it was sent to.
        limit_mb = current_app.config["MAX_CONTENT_LENGTH"] / (1024 * 1024)
        return _error(413, f"The upload is over the limit of {limit_mb:g} MB: send a smaller photo.")
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
