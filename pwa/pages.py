"""The PWA's pages: the app shell, the offline page, the web manifest and the service worker.

Everything else the page loads comes from Flask's static route, /static/..., i.e. only from
this package's own static/ folder.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from flask import Blueprint, Response, current_app, render_template, send_from_directory

from edge.labels import DISCLAIMER
from pwa import camera_api

bp = Blueprint("pages", __name__)

# sw.js holds this token where its cache version goes; the server puts in a hash of the shell,
# so every change to a page, script, style or icon makes a new precache and drops the old one.
VERSION_TOKEN = "__SHELL_VERSION__"


@bp.get("/")
def index():
    if camera_api.wants_kiosk_page():  # the server's camera, asked for from the machine itself
        return camera_api.kiosk_page()
    return render_template("index.html", disclaimer=DISCLAIMER)


@bp.get("/offline.html")
def offline():
    return render_template("offline.html", disclaimer=DISCLAIMER)


@bp.get("/manifest.webmanifest")
def manifest():
    return send_from_directory(
        current_app.static_folder, "manifest.webmanifest", mimetype="application/manifest+json"
    )


@bp.get("/sw.js")
def service_worker():
    # Served from the root so its scope is the whole app. no-cache: the browser must revalidate
    # the worker on every visit, or an old one could pin an old shell for a day.
    static = Path(current_app.static_folder)
    source = (static / "sw.js").read_text(encoding="utf-8")
    version = shell_version(static, Path(current_app.root_path) / "templates")
    response = Response(source.replace(VERSION_TOKEN, version), mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response


@functools.cache
def shell_version(*folders: Path) -> str:
    """A short hash of every file in the given folders (the app shell), computed once per process."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
