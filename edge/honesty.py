"""Honest answers: "retake" for an unusable photo, "unsure" for one unlike the training images,
"ok" otherwise, with the reasons a person needs (ARCHITECTURE.md, "Honest answers").

Everything decided here comes from the bundle (manifest "honesty" section plus honesty.bin), so
the Pi, the server and the phone decide identically. Probabilities arrive already calibrated:
the export folded the temperature into the model's last layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge import quality
from edge.bundle import read_verified_file
from edge.errors import BundleError
from edge.labels import MELANOMA
from edge.manifest import HonestyInfo

STATUSES = ("ok", "unsure", "retake")
# The reasons that tell a person to show the lesion to a doctor: an answer carrying one refers.
REFERRAL_REASONS = frozenset({"melanoma_risk"})
MESSAGES = {
    "too_dark": "The photo is too dark: add light and retake it.",
    "too_bright": "The photo is too bright or washed out: avoid direct light and flash glare, then retake it.",
    "blurry": "The photo is blurred: hold the camera steady, let it focus on the skin, then retake it.",
    "out_of_distribution": ("LesionLite cannot assess this photo: it does not look like the skin-lesion images "
                            "it learned from. Retake it close up, with the lesion in the middle of the frame."),
    "low_confidence": "The model is unsure between several classes: treat this answer with extra caution.",
    "melanoma_risk": "Features similar to melanoma: show this lesion to a doctor.",
}


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    @classmethod
    def of(cls, code: str) -> Reason:
        return cls(code, MESSAGES[code])


@dataclass(frozen=True)
class Answer:
    """What LesionLite says about one photo: the status first, then why, then the model's output."""

    status: str
    reasons: tuple[Reason, ...]
    predictions: tuple  # edge.classifier.Prediction, most probable first (kept for transparency)
    checks: dict[str, float] = field(default_factory=dict)

    def headline(self) -> str:
        """The status line a command line prints first."""
        parts = [r.message for r in self.reasons]
        if self.status == "ok":
            top = self.predictions[0]
            parts.insert(0, f"most similar to {top.name} ({top.code}), {top.probability:.0%}")
        return f"{self.status.upper()}: " + "; ".join(parts)

    def to_dict(self) -> dict:
        return {"status": self.status, "reasons": [asdict(r) for r in self.reasons],
                "predictions": [p.to_dict() for p in self.predictions], "checks": dict(self.checks)}


def quality_reasons(measured: dict[str, float], info: HonestyInfo) -> list[Reason]:
    """too_dark / too_bright / blurry against the limits derived from the training images."""
    limits = info.quality
    reasons = []
    if measured["brightness"] < limits["brightness_min"]:
        reasons.append(Reason.of("too_dark"))
    if measured["brightness"] > limits["brightness_max"] or measured["clipped"] > limits["clipped_max"]:
        reasons.append(Reason.of("too_bright"))
    if measured["sharpness"] < limits["sharpness_min"]:
        reasons.append(Reason.of("blurry"))
    return reasons


# Which arrays of honesty.bin each score reads, and their shapes given the feature width D.
NEEDS = {"mahalanobis": {"whitening": lambda d, k: [d, d], "whitened_means": lambda d, k: [k, d]},
         "energy": {"dense_kernel": lambda d, k: [d, k], "dense_bias": lambda d, k: [k]},
         "msp": {}}


class Honesty:
    """The bundle's checks, ready to run: arrays loaded and verified once."""

    def __init__(self, bundle_dir: str | Path, info: HonestyInfo, feature_width: int, classes: int):
        """Raises BundleError: honesty.bin missing, changed, or not shaped for the model."""
        self.info = info
        content = read_verified_file(bundle_dir, info.file, info.sha256)
        self.arrays = info.unpack(content)
        for name, shape in NEEDS[info.ood_score].items():
            expected = shape(feature_width, classes)
            got = list(self.arrays[name].shape) if name in self.arrays else None
            if got != expected:
                raise BundleError(f"{info.file}: the {info.ood_score} score needs {name} of shape {expected}, "
                                  f"the bundle has {got or 'none'}")

    def ood_score(self, features: np.ndarray, probabilities: np.ndarray) -> float:
        """The bundle's score; higher means less like the training lesions (training/ood.py)."""
        kind = self.info.ood_score
        if kind == "msp":
            return float(1.0 - probabilities.max())
        f = features.astype(np.float64)
        if kind == "energy":
            logits = f @ self.arrays["dense_kernel"] + self.arrays["dense_bias"]
            top = logits.max()
            return float(-(top + np.log(np.exp(logits - top).sum())))
        whitened = f @ self.arrays["whitening"]
        return float(((whitened[np.newaxis, :] - self.arrays["whitened_means"]) ** 2).sum(axis=1).min())

    def decide(self, pixels: np.ndarray, probabilities: np.ndarray, features: np.ndarray,
               predictions: Sequence, codes: Sequence[str]) -> Answer:
        """The answer for one preprocessed image and the model's outputs for it."""
        measured = quality.measure(pixels)
        score = self.ood_score(features, probabilities)
        checks = {**measured, "ood_score": score, "ood_threshold": self.info.ood_threshold}
        retake = quality_reasons(measured, self.info)
        if retake:
            return Answer("retake", tuple(retake), tuple(predictions), checks)
        if score > self.info.ood_threshold:
            return Answer("unsure", (Reason.of("out_of_distribution"),), tuple(predictions), checks)
        reasons = []
        if probabilities.max() < self.info.low_confidence_below:
            reasons.append(Reason.of("low_confidence"))
        if probabilities[list(codes).index(MELANOMA)] >= self.info.melanoma_threshold:
            reasons.append(Reason.of("melanoma_risk"))
        return Answer("ok", tuple(reasons), tuple(predictions), checks)
