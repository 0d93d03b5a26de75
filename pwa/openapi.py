"""The OpenAPI 3 description of the API, generated from the app itself: served at /api/openapi.json,
fuzzed by schemathesis and checked against the app's routes by tests/test_pwa_openapi.py.

Paths and methods come from the app's url_map (the "api" blueprint), the upload's content types
from the constant the code accepts, the predict refusals from pwa/errors.py's status table. Only
the words (summaries, schemas) are written here, once per endpoint; a route without them makes
document() fail, so the description cannot silently fall behind the code.
"""

from __future__ import annotations

from flask import Flask

from edge import answer
from edge.labels import DISCLAIMER
from pwa import camera_openapi, errors, uploads

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What went wrong and what to do."}},
}
_DISCLAIMER = {"type": "string", "description": "Always: " + DISCLAIMER}
# What /api/predict (and the phone, js/ondevice.js) add to the answer itself.
_SERVED = {
    "model": {
        "type": "object",
        "required": ["variant", "sha256"],
        "properties": {"variant": {"type": "string"}, "sha256": {"type": "string"}},
    },
    "timing_ms": {
        "type": "object",
        "required": ["decode", "inference", "total"],
        "additionalProperties": {"type": "number", "minimum": 0},
        "description": "Milliseconds: decode, inference and their total (the camera's capture adds grab).",
    },
    "disclaimer": {"$ref": "#/components/schemas/Disclaimer"},
}


def predict_result() -> dict:
    """The answer's schema, generated from edge/answer.py's Answer type, plus what the API adds."""
    schema = answer.json_schema()
    schema["properties"].update(_SERVED)
    schema["required"] += list(_SERVED)
    return schema


_NULLABLE_NUMBER = {"type": "number", "nullable": True}
_MODEL_INFO = {
    "type": "object",
    "required": ["variant", "sha256", "input_size", "labels", "metrics", "honesty", "source_run", "disclaimer"],
    "properties": {
        "variant": {"type": "string"},
        "sha256": {"type": "string"},
        "input_size": {"type": "integer", "minimum": 1},
        "labels": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "name"],
                "properties": {"code": {"type": "string"}, "name": {"type": "string"}},
            },
        },
        "metrics": {
            "type": "object",
            "description": "The variant's measured test-split metrics, from the bundle manifest.",
            "properties": {
                "accuracy": _NULLABLE_NUMBER,
                "balanced_accuracy": _NULLABLE_NUMBER,
                "top1_agreement": _NULLABLE_NUMBER,
                "per_class_recall": {
                    "type": "object",
                    "nullable": True,
                    "additionalProperties": _NULLABLE_NUMBER,
                },
            },
        },
        "honesty": {
            "type": "object",
            "required": ["temperature", "ood_score", "ood_threshold", "melanoma_threshold", "low_confidence_below",
                         "quality"],
            "description": "The thresholds every answer's status is decided with (chosen on the training and "
                           "validation splits at export).",
            "properties": {
                "temperature": {"type": "number"}, "ood_score": {"type": "string"},
                "ood_threshold": {"type": "number"}, "melanoma_threshold": {"type": "number"},
                "low_confidence_below": {"type": "number"},
                "quality": {"type": "object", "additionalProperties": {"type": "number"}},
            },
        },
        "source_run": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "nullable": True},
                "metrics": {"type": "object"},
            },
        },
        "disclaimer": {"$ref": "#/components/schemas/Disclaimer"},
    },
}


_HEALTH = {
    "type": "object",
    "required": ["status", "variant", "disclaimer"],
    "properties": {
        "status": {"type": "string", "enum": ["ok"]},
        "variant": {"type": "string"},
        "disclaimer": {"$ref": "#/components/schemas/Disclaimer"},
    },
}
_PREDICT_RESULT = predict_result()
SCHEMAS = {
    "Error": _ERROR,
    "PredictResult": _PREDICT_RESULT,
    "ModelInfo": _MODEL_INFO,
    "Disclaimer": _DISCLAIMER,
    "Health": _HEALTH,
    **camera_openapi.schemas(_PREDICT_RESULT),
}
# The API's blueprints: the camera's exists only in the kiosk listener's app (pwa.create_kiosk_app).
BLUEPRINTS = ("api", "camera")
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # Flask answers these itself on every route
# Why /api/predict refuses a photo, per status of pwa/errors.py's IMAGE_ERROR_STATUS table.
PREDICT_REFUSALS = {
    400: "No photo, an empty one, or a corrupt or truncated one",
    413: "An image with too many pixels, or an upload over the limit",
    415: "Not a JPEG, PNG or WebP photo (HEIC is named in the message)",
}
# And why it may not get to the photo: the upload stopped arriving, or every decode slot is busy.
UPLOAD_REFUSALS = {
    408: "The upload did not arrive within the server's deadline",
    503: "Every decode slot stayed busy: try again after the Retry-After header's seconds",
}


def _json(schema_name: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }


def _responses(limit_mb: str) -> dict:
    """Answers any API path can give: a wrong method, a body over the limit, an unknown /api path."""
    allow = {"description": "The methods this path answers", "schema": {"type": "string"}}
    return {
        "MethodNotAllowed": {**_json("Error", "Another method than this path's"), "headers": {"Allow": allow}},
        "PayloadTooLarge": _json("Error", f"A request body over {limit_mb}, whatever the path"),
        "NotFound": _json("Error", "Any /api/ path not in this document"),
    }


def _predict_operation(limit_mb: str) -> dict:
    binary = {"type": "string", "format": "binary"}
    content = {uploads.MULTIPART: {"schema": {"type": "object", "required": ["image"], "properties": {"image": binary}}}}
    content |= {content_type: {"schema": binary} for content_type in uploads.ACCEPTED_CONTENT_TYPES}
    statuses = sorted({status for _, status in errors.IMAGE_ERROR_STATUS})
    return {
        "summary": "Classify one photo of a skin lesion",
        "description": (
            "The answer: a status (ok, unsure, retake) and its reasons, then all seven HAM10000 classes with "
            "calibrated probabilities, most probable first: under `predictions` for ok, under "
            f"`{answer.UNASSESSED}` for unsure and retake, which are not an assessment. Whatever the status, "
            "a top class that can be a cancer carries the reason malignant_class and a melanoma probability "
            "at the bundle's referral threshold melanoma_risk: both say to see a doctor. "
            f"JPEG, PNG or WebP; up to {limit_mb}. EXIF orientation is applied. " + DISCLAIMER
        ),
        "requestBody": {"required": True, "content": content},
        "responses": {
            "200": _json("PredictResult", "The answer: status, reasons, the model's output"),
            **{str(status): _json("Error", PREDICT_REFUSALS[status]) for status in statuses},
            **{str(status): _json("Error", why) for status, why in UPLOAD_REFUSALS.items()},
        },
    }


def _operations(limit_mb: str) -> dict[str, dict]:
    """The words for each endpoint of the API's blueprints, keyed by endpoint name."""
    return camera_openapi.operations() | {
        "api.predict": _predict_operation(limit_mb),
        "api.model": {
            "summary": "The loaded model: labels, variant, input size and measured metrics",
            "responses": {"200": _json("ModelInfo", "The loaded model")},
        },
        "api.healthz": {
            "summary": "Liveness: the model is loaded and the server answers",
            "responses": {"200": _json("Health", "Serving")},
        },
        "api.openapi_document": {
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {}}}},
        },
    }


def api_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(path, method, endpoint) of every route of the API's blueprints, HEAD and OPTIONS left out."""
    return sorted(
        (rule.rule, method, rule.endpoint)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in BLUEPRINTS
        for method in (rule.methods or set()) - IGNORED_METHODS
    )


def document(app: Flask) -> dict:
    """The OpenAPI document of this app's API.

    Raises:
        KeyError: an api route has no description in _operations (add one).
    """
    limit_mb = f"{app.config['MAX_CONTENT_LENGTH'] / (1024 * 1024):g} MB"
    operations = _operations(limit_mb)
    common = {status: {"$ref": f"#/components/responses/{name}"}
              for status, name in (("405", "MethodNotAllowed"), ("413", "PayloadTooLarge"))}
    paths: dict[str, dict] = {}
    for path, method, endpoint in api_routes(app):
        operation = operations[endpoint]
        paths.setdefault(path, {})[method.lower()] = {
            **operation, "responses": {**operation["responses"], **common}
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "LesionLite API",
            "version": "1",
            "description": "Skin-lesion triage and teaching aid. Any other /api/ path answers a JSON 404 "
            "(components.responses.NotFound). " + DISCLAIMER,
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS, "responses": _responses(limit_mb)},
    }
