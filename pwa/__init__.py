"""LesionLite's web app: a Flask API around edge.Classifier plus the mobile-first PWA that calls it.

Example usage:
    python -m pwa --bundle runs/demo/bundle            # serves http://127.0.0.1:8000/ with cheroot

    from pwa import create_app, create_kiosk_app
    app = create_app({"BUNDLE": "runs/demo/bundle"})   # any WSGI server; loads the model once
    kiosk = create_kiosk_app(app)                      # the kiosk's own app, for 127.0.0.1 only

A triage and teaching aid, never a diagnosis: the page and every API answer say so.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Flask, Request

from edge import preprocess as edge_preprocess
from pwa import api, bundle_files, camera_api, decoding, errors, oversize, pages, precompressed, server

# Every response: no inline script anywhere (script-src 'self'); captured photos are previewed
# from blob: URLs; the camera stream is attached through srcObject, which CSP does not gate.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        # WebAssembly compilation for the on-device runtime; no eval and no inline script.
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class InMemoryRequest(Request):
    """Werkzeug spools uploads over 500 KB to a temporary file; photos of skin must stay in memory.

    MAX_CONTENT_LENGTH bounds the size, so a BytesIO is safe.
    """

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app phones reach, and load the classifier once. It never has the server camera's
    routes: those are only in create_kiosk_app's app, on a listener of their own.

    Config keys (defaults below): BUNDLE (bundle folder, required), VARIANT (None: the bundle's
    default_variant), THREADS (LiteRT threads; None lets LiteRT choose), MAX_CONTENT_LENGTH
    (upload bytes; larger bodies get a JSON 413), PIXEL_LIMITS (edge.preprocess.PixelLimits),
    DECODE_SLOTS and DECODE_WAIT_S (decodes at once, and how long a photo waits for one:
    pwa/decoding.py), REQUEST_TIMEOUT_S (the server's deadline for a request to arrive, named in
    its 408), CORS_ORIGINS (cross-origin callers allowed on /api; none means same-origin only);
    CAMERA and KIOSK_IDLE_S are the kiosk app's (pwa/camera_api.py).

    Raises:
        edge.BundleError: the bundle is missing, corrupt or inconsistent (message says which).
    """
    app = _new_app(test_config)
    api.init_app(app)
    decoding.init_app(app)
    _init_common(app)
    app.add_url_rule("/", "index", pages.index)
    return app


def create_kiosk_app(app: Flask) -> Flask:
    """Build the app of the kiosk's own listener (127.0.0.1 only: python -m pwa --kiosk-port):
    everything `app` serves, with its config, classifier and decode slots, plus the server
    camera's routes and the kiosk page at /, answering only the kiosk's own browser.

    Raises:
        edge.errors.CameraError: the named CAMERA cannot be opened.
    """
    kiosk = _new_app(app.config)
    api.share_classifier(app, kiosk)
    decoding.init_app(kiosk, decoding.slots_of(app))
    camera_api.init_app(kiosk)
    kiosk.register_blueprint(camera_api.bp)
    _init_common(kiosk)
    kiosk.add_url_rule("/", "index", camera_api.kiosk_index)
    return kiosk


def _new_app(config) -> Flask:
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config.from_mapping(
        BUNDLE=None,
        VARIANT=None,
        THREADS=None,
        MAX_CONTENT_LENGTH=20 * 1024 * 1024,
        PIXEL_LIMITS=edge_preprocess.PIXEL_LIMITS,
        REQUEST_TIMEOUT_S=server.REQUEST_TIMEOUT_S,
        CORS_ORIGINS=[],
    )
    if config is not None:
        app.config.from_mapping(config)
    return app


def _init_common(app: Flask) -> None:
    """What both apps serve: the API, the pages, the bundle's files, and the same answers to errors."""
    bundle_files.init_app(app, app.config["BUNDLE"], api.classifier_of(app).manifest)
    precompressed.init_app(app)
    oversize.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(bundle_files.bp)
    errors.init_app(app)
    app.after_request(_add_security_headers)
    _init_cors(app)


def _add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _init_cors(app: Flask) -> None:
    # Same-origin is the default: the PWA is served by this app. Only origins named on the
    # command line (e.g. a teaching site embedding the API) get CORS headers, and only on /api.
    origins = list(app.config["CORS_ORIGINS"])
    if origins:
        from flask_cors import CORS

        CORS(app, resources={r"/api/*": {"origins": origins}})
