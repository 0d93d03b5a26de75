"""The OpenAPI 3 description of the API, served at /api/openapi.json and fuzzed by the tests."""

from __future__ import annotations

from edge.labels import CODES, DISCLAIMER

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What went wrong and what to do."}},
}
_PREDICTION = {
    "type": "object",
    "required": ["code", "name", "probability"],
    "properties": {
        "code": {"type": "string", "enum": list(CODES)},
        "name": {"type": "string"},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
_DISCLAIMER = {"type": "string", "description": "Always: " + DISCLAIMER}
_PREDICT_RESULT = {
    "type": "object",
    "required": ["predictions", "model", "timing_ms", "disclaimer"],
    "properties": {
        "predictions": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/Prediction"},
            "minItems": len(CODES),
            "maxItems": len(CODES),
            "description": "Every class, most probable first.",
        },
        "model": {
            "type": "object",
            "required": ["variant", "sha256"],
            "properties": {"variant": {"type": "string"}, "sha256": {"type": "string"}},
        },
        "timing_ms": {
            "type": "object",
            "required": ["decode", "inference", "total"],
            "properties": {k: {"type": "number", "minimum": 0} for k in ("decode", "inference", "total")},
        },
        "disclaimer": {"$ref": "#/components/schemas/Disclaimer"},
    },
}
_NULLABLE_NUMBER = {"type": "number", "nullable": True}
_MODEL_INFO = {
    "type": "object",
    "required": ["variant", "sha256", "input_size", "labels", "metrics", "source_run", "disclaimer"],
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


def _json(schema_name: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }


def document(max_content_length: int) -> dict:
    """The OpenAPI document; max_content_length is the configured upload limit in bytes."""
    binary = {"type": "string", "format": "binary"}
    limit_mb = f"{max_content_length / (1024 * 1024):g} MB"
    predict = {
        "summary": "Classify one photo of a skin lesion",
        "description": (
            "All seven HAM10000 classes with probabilities, most probable first. "
            f"JPEG, PNG or WebP; up to {limit_mb}. EXIF orientation is applied. " + DISCLAIMER
        ),
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["image"], "properties": {"image": binary}},
                },
                "image/jpeg": {"schema": binary},
                "image/png": {"schema": binary},
            },
        },
        "responses": {
            "200": _json("PredictResult", "The classes, most probable first"),
            "400": _json("Error", "No photo, an empty one, or a corrupt or truncated one"),
            "413": _json("Error", f"Upload over {limit_mb}, or an image with too many pixels"),
            "415": _json("Error", "Not a JPEG, PNG or WebP photo (HEIC is named in the message)"),
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "LesionLite API",
            "version": "1",
            "description": "Skin-lesion triage and teaching aid. " + DISCLAIMER,
        },
        "paths": {
            "/api/predict": {"post": predict},
            "/api/model": {
                "get": {
                    "summary": "The loaded model: labels, variant, input size and measured metrics",
                    "responses": {"200": _json("ModelInfo", "The loaded model")},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness: the model is loaded and the server answers",
                    "responses": {"200": _json("Health", "Serving")},
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {"description": "OpenAPI 3 document", "content": {"application/json": {}}}
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": _ERROR,
                "Prediction": _PREDICTION,
                "PredictResult": _PREDICT_RESULT,
                "ModelInfo": _MODEL_INFO,
                "Disclaimer": _DISCLAIMER,
                "Health": {
                    "type": "object",
                    "required": ["status", "variant", "disclaimer"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ok"]},
                        "variant": {"type": "string"},
                        "disclaimer": {"$ref": "#/components/schemas/Disclaimer"},
                    },
                },
            }
        },
    }
