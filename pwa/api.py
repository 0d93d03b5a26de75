"""The JSON API: POST /api/predict, GET /api/model, GET /healthz, GET /api/openapi.json.

Uploaded photos are read into memory, classified and dropped: never written to disk, never
logged, never cached (every API response says Cache-Control: no-store).
"""

from __future__ import annotations

import io
from time import perf_counter

import numpy as np
from flask import Blueprint, Flask, current_app, jsonify, request
from PIL import Image, UnidentifiedImageError

from edge import BundleError, Classifier, ImageError
from edge.labels import DISCLAIMER
from pwa import openapi

bp = Blueprint("api", __name__)

# Formats a phone or a browser capture produces. Pillow can open many more (EPS even runs
# Ghostscript), so anything else is refused before a decoder sees it.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")  # JPEG includes MPO (some phones' JPEGs)
# ISO-BMFF brands of HEIC/HEIF, the iPhone's default format, which Pillow cannot decode.
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}

NO_PHOTO = "No photo: send it as the multipart form field 'image' or as an image/jpeg or image/png body."
EMPTY_PHOTO = "The photo is empty (0 bytes): take or choose it again."
NOT_AN_IMAGE = "This file is not a photo LesionLite can read: send a JPEG or PNG."
HEIF_PHOTO = (
    "HEIC/HEIF photos cannot be read: send a JPEG or PNG "
    "(on an iPhone: Settings > Camera > Formats > Most Compatible)."
)
CORRUPT_PHOTO = "The photo is corrupt or truncated: take or send it again."
CLASSIFIER_KEY = "lesionlite.classifier"


class UploadError(Exception):
    """A request the API refuses, with the HTTP status and the message the user sees."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def init_app(app: Flask) -> None:
    """Load the classifier once at start-up; every request shares it (it is thread-safe).

    Raises:
        BundleError: BUNDLE is unset, or the bundle cannot be loaded (message says why).
    """
    bundle = app.config["BUNDLE"]
    if not bundle:
        raise BundleError("no bundle configured: set BUNDLE (python -m pwa --bundle runs/NAME/bundle)")
    app.extensions[CLASSIFIER_KEY] = Classifier(
        bundle, variant=app.config["VARIANT"], num_threads=app.config["THREADS"]
    )


def classifier() -> Classifier:
    return current_app.extensions[CLASSIFIER_KEY]


@bp.after_request
def _never_cache(response):
    # Predictions are about someone's skin: no browser, proxy or service worker may keep them.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/api/predict")
def predict():
    started = perf_counter()
    image = open_upload(uploaded_bytes(), current_app.config["MAX_PIXELS"])
    clf = classifier()
    pixels = decode(clf, image)
    decoded = perf_counter()
    predictions = clf.classify_array(pixels)
    finished = perf_counter()
    return jsonify(
        predictions=[p.to_dict() for p in predictions],
        model={"variant": clf.variant, "sha256": clf.sha256},
        timing_ms={
            "decode": round((decoded - started) * 1000, 2),
            "inference": round((finished - decoded) * 1000, 2),
            "total": round((finished - started) * 1000, 2),
        },
        disclaimer=DISCLAIMER,
    )


@bp.get("/api/model")
def model():
    clf = classifier()
    metric_names = ("accuracy", "balanced_accuracy", "per_class_recall", "top1_agreement")
    source_run = clf.manifest.get("source_run") or {}
    return jsonify(
        variant=clf.variant,
        sha256=clf.sha256,
        input_size=clf.input_size,
        labels=[{"code": code, "name": name} for code, name in clf.labels],
        metrics={name: clf.variant_info.get(name) for name in metric_names},
        source_run={"name": source_run.get("name"), "metrics": source_run.get("metrics") or {}},
        disclaimer=DISCLAIMER,
    )


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok", variant=classifier().variant, disclaimer=DISCLAIMER)


@bp.get("/api/openapi.json")
def openapi_document():
    return jsonify(openapi.document(current_app.config["MAX_CONTENT_LENGTH"]))


def uploaded_bytes() -> bytes:
    """The photo's bytes from the multipart field 'image' or from an image/* body.

    Raises:
        UploadError: 400 no photo or an empty one, 415 a content type that is not a photo.
    """
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise UploadError(400, NO_PHOTO)
        data = upload.read()
    else:
        data = request.get_data(cache=False)
        if not request.mimetype.startswith("image/"):
            if not data:
                raise UploadError(400, NO_PHOTO)
            raise UploadError(415, f"Content type {request.mimetype} is not a photo: send a JPEG or PNG.")
    if not data:
        raise UploadError(400, EMPTY_PHOTO)
    return data


def open_upload(data: bytes, max_pixels: int) -> Image.Image:
    """Read the image header (no pixels decoded yet) and refuse what must not be decoded.

    Raises:
        UploadError: 415 not a JPEG/PNG/WebP (HEIC named), 413 over max_pixels or a
            decompression bomb, 400 a header too damaged to read.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise UploadError(415, HEIF_PHOTO if is_heif(data) else NOT_AN_IMAGE) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (a warning past ~89 MP; an error under `-W error`, as in the tests).
        raise UploadError(413, f"The image has too many pixels (limit {max_pixels:,}): send a smaller photo.") from None
    except (OSError, SyntaxError, ValueError):
        raise UploadError(400, CORRUPT_PHOTO) from None
    if image.width * image.height > max_pixels:
        raise UploadError(
            413,
            f"The image is {image.width}x{image.height} pixels, over the limit of {max_pixels:,}: "
            "send a smaller photo.",
        )
    return image


def is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def decode(clf: Classifier, image: Image.Image) -> np.ndarray:
    """The shared preprocessing (EXIF orientation, RGB, centre square, resize) on an opened image.

    Raises:
        UploadError: 400 when the pixel data turns out truncated or corrupt.
    """
    try:
        return clf.preprocess(image)
    except (ImageError, OSError, SyntaxError, ValueError):
        raise UploadError(400, CORRUPT_PHOTO) from None
