"""The JSON API: POST /api/predict, GET /api/model, GET /healthz, GET /api/openapi.json.

Uploaded photos are read into memory, classified and dropped: never written to disk, never
logged, never cached (every API response says Cache-Control: no-store). What a photo may be
(formats, pixel limits, corrupt data) is decided by edge.preprocess, how an upload is read by
pwa/uploads.py (held in memory once, no copy on the way to the decoder); pwa/errors.py maps their
typed errors to HTTP statuses. A photo is decoded in one of the server's decode slots (pwa/decoding.py).
"""

from __future__ import annotations

from time import perf_counter

from flask import Blueprint, Flask, current_app, jsonify

from edge import BundleError, Classifier
from edge.labels import DISCLAIMER
from edge.manifest import QUALITY_LIMITS
from edge.preprocess import preprocess
from pwa import decoding, openapi
from pwa.uploads import PHOTO, uploaded_bytes

bp = Blueprint("api", __name__)

CLASSIFIER_KEY = "lesionlite.classifier"


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
    return classifier_of(current_app)


def classifier_of(app: Flask) -> Classifier:
    return app.extensions[CLASSIFIER_KEY]


def share_classifier(source: Flask, app: Flask) -> None:
    """Give `app` the classifier `source` loaded: one model in memory for both of a server's apps."""
    app.extensions[CLASSIFIER_KEY] = classifier_of(source)


@bp.after_request
def _never_cache(response):
    # Predictions are about someone's skin: no browser, proxy or service worker may keep them.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/api/predict")
def predict():
    started = perf_counter()
    clf = classifier()
    pixels = preprocess(uploaded_bytes(), clf.input_size, current_app.config["PIXEL_LIMITS"], label=PHOTO,
                        around_decode=decoding.decode_slot)
    return jsonify(answer_json(clf, pixels, {"decode": elapsed_ms(started)}))


def elapsed_ms(since: float) -> float:
    return (perf_counter() - since) * 1000


def answer_json(clf: Classifier, pixels, timing: dict[str, float]) -> dict:
    """The answer to a photo, once it is preprocessed pixels: what /api/predict returns, and what
    the server camera's capture returns before adding its frame. The one place that turns the
    classifier's result into JSON.

    `timing` holds the milliseconds spent before classifying (e.g. {"decode": 2.1}); the answer's
    timing_ms adds "inference" and their "total".
    """
    started = perf_counter()
    answer = clf.classify_array(pixels)
    timing = {**timing, "inference": elapsed_ms(started)}
    timing["total"] = sum(timing.values())
    return {
        **answer.to_dict(),
        "model": {"variant": clf.variant, "sha256": clf.sha256},
        "timing_ms": {name: round(ms, 2) for name, ms in timing.items()},
        "disclaimer": DISCLAIMER,
    }


@bp.get("/api/model")
def model():
    clf = classifier()
    metric_names = ("accuracy", "balanced_accuracy", "per_class_recall", "top1_agreement")
    source_run = clf.manifest.source_run
    return jsonify(
        variant=clf.variant,
        sha256=clf.sha256,
        input_size=clf.input_size,
        labels=[{"code": code, "name": name} for code, name in clf.labels],
        metrics={name: clf.variant_info.metrics.get(name) for name in metric_names},
        honesty=honesty_summary(clf.honesty.info),  # the served variant's own settings
        source_run={"name": source_run.get("name"), "metrics": source_run.get("metrics") or {}},
        disclaimer=DISCLAIMER,
    )


def honesty_summary(info) -> dict:
    """The thresholds behind every answer's status, for a person who asks why."""
    return {"temperature": info.temperature, "ood_score": info.ood_score, "ood_threshold": info.ood_threshold,
            "melanoma_threshold": info.melanoma_threshold, "low_confidence_below": info.low_confidence_below,
            "quality": {k: info.quality[k] for k in QUALITY_LIMITS}}


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok", variant=classifier().variant, disclaimer=DISCLAIMER)


@bp.get("/api/openapi.json")
def openapi_document():
    return jsonify(openapi.document(current_app))
