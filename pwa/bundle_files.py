"""The bundle, served to the page so the phone can run the very same model: GET
/bundle/manifest.json and GET /bundle/FILE for the files the manifest names (each variant's
.tflite and honesty.bin), nothing else from the bundle folder.

The page checks each file's sha256 against the manifest before using it. These are not API
routes (pwa/openapi.py describes /api only): they are static content of the loaded bundle, kept
by the service worker's model cache, which is versioned by the manifest's hash. Each file is
gzipped once per process, in memory, when first asked for with Accept-Encoding gzip: the bundle
folder is read-only on a Pi, and honesty.bin shrinks several times.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, request

from edge.manifest import MANIFEST_NAME
from pwa.precompressed import accepted_codings

bp = Blueprint("bundle", __name__)
PREFIX = "/bundle/"
BUNDLE_KEY = "lesionlite.bundle_files"
MIMETYPES = {".json": "application/json", ".tflite": "application/octet-stream", ".bin": "application/octet-stream"}


class BundleFiles:
    """The servable files of the loaded bundle (names from its manifest) and its version."""

    def __init__(self, folder: Path, manifest):
        self.folder = folder
        # Each variant's model and honest-answer statistics (its own, when the export fitted them).
        self.names = {MANIFEST_NAME, *(v.file for v in manifest.variants.values()),
                      *(manifest.honesty_for(name).file for name in manifest.variants)}
        self.version = hashlib.sha256((folder / MANIFEST_NAME).read_bytes()).hexdigest()[:12]

    def content(self, name: str) -> bytes:
        return _read(self.folder / name, self.version)

    def gzipped(self, name: str) -> bytes:
        return _gzip(self.folder / name, self.version)


@functools.cache
def _read(path: Path, version: str) -> bytes:
    return path.read_bytes()


@functools.cache
def _gzip(path: Path, version: str) -> bytes:
    return gzip.compress(_read(path, version), compresslevel=9, mtime=0)


def init_app(app: Flask, folder: str | Path, manifest) -> None:
    app.extensions[BUNDLE_KEY] = BundleFiles(Path(folder), manifest)


def bundle_files() -> BundleFiles:
    return current_app.extensions[BUNDLE_KEY]


@bp.get(PREFIX + "<name>")
def bundle_file(name: str):
    files = bundle_files()
    if name not in files.names:
        abort(404)
    etag = f"{files.version}-{name}"
    gzipped = "gzip" in accepted_codings(request.headers.get("Accept-Encoding"))
    body = files.gzipped(name) if gzipped else files.content(name)
    response = Response(body, mimetype=MIMETYPES.get(Path(name).suffix, "application/octet-stream"))
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
        etag += "-gzip"
    response.vary.add("Accept-Encoding")
    response.set_etag(etag)
    # Revalidate every time: the bundle can change under the same URL when a Pi is re-installed.
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)
