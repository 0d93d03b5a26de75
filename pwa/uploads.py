"""What an upload to /api/predict may be, and reading its bytes: the multipart field 'image' or a
raw JPEG, PNG or WebP body.

Its own module, below pwa/api.py (which reads uploads) and pwa/openapi.py (which describes them),
so that neither imports the other for it.
"""

from __future__ import annotations

import io
import shutil

from flask import request
from PIL import Image

from edge.errors import ImageError, UnsupportedImageError
from edge.preprocess import ACCEPTED_FORMATS, HEIF, SEND_JPEG

# The raw-body content types the API takes: those of the formats edge.preprocess accepts.
Image.init()  # fills Image.MIME from Pillow's plugins
ACCEPTED_CONTENT_TYPES = tuple(Image.MIME[name] for name in ACCEPTED_FORMATS)
MULTIPART = "multipart/form-data"
HEIF_CONTENT_TYPES = ("image/heic", "image/heif")
PHOTO = "The photo"  # how edge.preprocess's messages name an upload
BODY_CHUNK = 64 * 1024
NO_PHOTO = (
    "No photo: send it as the multipart form field 'image' or as a raw body of type "
    + ", ".join(ACCEPTED_CONTENT_TYPES) + "."
)


def uploaded_bytes() -> bytes:
    """The photo's bytes from the multipart field 'image' or from a raw JPEG/PNG/WebP body.

    Raises:
        ImageError: no photo (400).
        UnsupportedImageError: a raw body whose content type is not an accepted image type (415).
    """
    if request.mimetype == MULTIPART:
        upload = request.files.get("image")
        if upload is None:
            raise ImageError(NO_PHOTO)
        return upload.stream.getvalue()  # the parser's own buffer (pwa.InMemoryRequest), not a copy
    data = read_body()
    if request.mimetype in ACCEPTED_CONTENT_TYPES:
        return data
    if not data:
        raise ImageError(NO_PHOTO)
    if request.mimetype in HEIF_CONTENT_TYPES:
        raise UnsupportedImageError(HEIF.format(label=PHOTO))
    raise UnsupportedImageError(f"Content type {request.mimetype or 'none'} is not a photo: {SEND_JPEG}.")


def read_body() -> bytes:
    """The raw body, held once: Werkzeug's get_data() gathers it in a bytearray and then copies it
    (twice the upload in memory); BytesIO.getvalue() hands over its own buffer."""
    buffer = io.BytesIO()
    shutil.copyfileobj(request.stream, buffer, BODY_CHUNK)
    return buffer.getvalue()
