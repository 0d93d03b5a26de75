"""Static files sent precompressed: FILE.br or FILE.gz, built beside FILE by `make web`, chosen
by the request's Accept-Encoding. The server never compresses a static file itself.

The on-device runtime is a 9.4 MB WebAssembly file that brotli makes 2.0 MB (gzip 2.8 MB), so
this is what keeps a phone's first visit near 4 MB. Every answer says Vary: Accept-Encoding
when variants exist, and keeps Flask's revalidation (Cache-Control: no-cache with an ETag per
encoding): a browser without the service worker (plain HTTP on a LAN) asks again each visit and
gets a 304 without a body.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Flask, current_app, request, send_from_directory
from werkzeug.exceptions import NotFound

# Best first: brotli is about 30% smaller than gzip on the wasm.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


def accepted_codings(header: str | None) -> set[str]:
    """The content codings an Accept-Encoding header accepts (q > 0); '*' accepts any."""
    codings = set()
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name and q > 0:
            codings.add(name.strip().lower())
    return codings


def choose(folder: Path, filename: str, header: str | None) -> tuple[str | None, str | None, bool]:
    """(coding, file to send, whether variants exist) for FILENAME under FOLDER."""
    variants = [(coding, filename + suffix) for coding, suffix in ENCODINGS if (folder / (filename + suffix)).is_file()]
    accepted = accepted_codings(header)
    for coding, name in variants:
        if coding in accepted or "*" in accepted:
            return coding, name, True
    return None, None, bool(variants)


def static_view(filename: str):
    """Flask's static view, sending FILE.br / FILE.gz when the client accepts them."""
    folder = Path(current_app.static_folder)
    if filename.endswith(tuple(suffix for _, suffix in ENCODINGS)):
        raise NotFound()  # the variants are reached only through their original's name
    coding, encoded, has_variants = choose(folder, filename, request.headers.get("Accept-Encoding"))
    if coding is None:
        response = send_from_directory(folder, filename)
    else:
        mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        response = send_from_directory(folder, encoded, mimetype=mimetype, download_name=Path(filename).name)
        response.headers["Content-Encoding"] = coding
    if has_variants:
        response.vary.add("Accept-Encoding")
    return response


def init_app(app: Flask) -> None:
    mimetypes.add_type("application/wasm", ".wasm")  # for WebAssembly.instantiateStreaming
    mimetypes.add_type("text/javascript", ".js")
    app.view_functions["static"] = static_view
