"""LesionLite's edge runtime: LiteRT only, never TensorFlow or Keras.

    from edge import Classifier, Prediction, BundleError, ImageError, top_k

The names are loaded on first use, so `import edge.preprocess` (which training does, next to
TensorFlow) does not also load the LiteRT runtime into that process.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Classifier": "edge.classifier",
    "Prediction": "edge.answer",
    "top_k": "edge.classifier",
    "BundleError": "edge.errors",
    "ImageError": "edge.errors",
    "LesionLiteError": "edge.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
