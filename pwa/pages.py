"""The PWA's pages: the app shell, the offline page, the web manifest and the service worker.

The app shell at / is `index`, registered by each app factory itself (pwa/__init__.py): the
kiosk's listener puts its kiosk page there (pwa/camera_api.py).

Everything else the page loads comes from Flask's static route, /static/..., i.e. only from
this package's own static/ folder (pwa/precompressed.py), and the bundle from /bundle/...
(pwa/bundle_files.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from flask import Blueprint, Response, current_app, render_template, send_from_directory
from PIL import Image

from edge.answer import MESSAGES, NOT_AN_ASSESSMENT
from edge.labels import DISCLAIMER, MALIGNANT
from edge.photo_limits import PixelLimits
from edge.preprocess import ACCEPTED_FORMATS, BOMB, HEIF, TOO_MANY_PIXELS, UNSUPPORTED
from pwa import api, bundle_files, uploads

bp = Blueprint("pages", __name__)

# sw.js holds these tokens where its cache versions go; the server puts in a hash of the shell
# (pages, scripts, styles, icons), of the on-device runtime and of the bundle's manifest, so each
# change makes a new cache of its own and drops the old one: a new model does not re-download
# the 2 MB runtime, and a new page does not re-download the model.
VERSION_TOKEN = "__SHELL_VERSION__"
RUNTIME_TOKEN = "__RUNTIME_VERSION__"
BUNDLE_TOKEN = "__BUNDLE_VERSION__"
VENDOR = "vendor"  # pwa/static/vendor/, built by `make web` (pwa/web/build.mjs)
VENDOR_BUILD = "build.json"


def index():
    return render_template("index.html", disclaimer=DISCLAIMER, not_an_assessment=NOT_AN_ASSESSMENT,
                           ondevice=ondevice_config())


def ondevice_config() -> dict:
    """What the page needs to classify on the phone: the model the server runs, where the runtime
    and the bundle are, the reasons' texts and the malignant classes (edge/answer.py's and
    edge/labels.py's, never copied into the JS)."""
    clf = api.classifier()
    return {
        "variant": clf.variant,
        "sha256": clf.sha256,
        "manifest": bundle_files.PREFIX + "manifest.json",
        "runtime": {"module": f"/static/{VENDOR}/litert.js", "wasm": f"/static/{VENDOR}/litert/",
                    "available": runtime_version(Path(current_app.static_folder)) is not None},
        "messages": MESSAGES,
        "malignant": list(MALIGNANT),
        "imageUnreadable": UNSUPPORTED.format(label=uploads.PHOTO),
        "photoLimits": photo_limits(current_app.config["PIXEL_LIMITS"]),
        "disclaimer": DISCLAIMER,
    }


def photo_limits(limits: PixelLimits) -> dict:
    """The server's rules for a photo, for the phone's own decoder (js/photo-limits.js): the formats,
    each kind's pixel limit with the server's message for it ({width} and {height} left to fill),
    and Pillow's guard, so the phone refuses what the server would, in the same words."""
    guard = Image.MAX_IMAGE_PIXELS
    return {
        "formats": list(ACCEPTED_FORMATS),
        "unsupported": UNSUPPORTED.format(label=uploads.PHOTO),
        "heif": HEIF.format(label=uploads.PHOTO),
        "kinds": {
            key: {"limit": limit, "message": TOO_MANY_PIXELS.format(
                label=uploads.PHOTO, width="{width}", height="{height}", limit=limit, kind=kind)}
            for key, (limit, kind) in limits.rules().items()
        },
        "guard": {"limit": 2 * guard, "message": BOMB.format(label=uploads.PHOTO, limit=guard)},
    }


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
    versions = {
        VERSION_TOKEN: shell_version(static, Path(current_app.root_path) / "templates"),
        RUNTIME_TOKEN: runtime_version(static) or "none",
        BUNDLE_TOKEN: bundle_files.bundle_files().version,
    }
    for token, version in versions.items():
        source = source.replace(token, version)
    response = Response(source, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response


@functools.cache
def runtime_version(static: Path) -> str | None:
    """The vendor build's version (a hash of its files), or None when `make web` has not run."""
    try:
        return json.loads((static / VENDOR / VENDOR_BUILD).read_text(encoding="utf-8"))["version"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


@functools.cache
def shell_version(*folders: Path) -> str:
    """A short hash of every file in the given folders (the app shell) but the vendor build,
    which has its own version; computed once per process."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and VENDOR not in p.relative_to(folder).parts[:1]):
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
