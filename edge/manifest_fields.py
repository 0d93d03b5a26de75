"""The manifest's parts and the field checks that read them (edge/manifest.py assembles them).

A bundle's manifest.json names its variants (:class:`Variant`, with the affine
:class:`Quantization` of their tensors) and the honest-answer settings (:class:`HonestyInfo`).
:class:`FieldChecker` reads each field with a BundleError that names the manifest file and the
field, so a runtime refuses what it cannot honour with a message saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BundleError

# The photo-quality limits a runtime applies (edge/honesty.py quality_reasons, js/honesty.js).
QUALITY_LIMITS = ("highlights_min", "brightness_max", "clipped_max", "sharpness_min")
INPUT_DTYPE = "raw RGB 0-255 (normalization to [-1, 1] is inside the model)"
# Every variant takes exactly one image: the export fixes the input signature at batch 1
# (export/calibrated.py), because LiteRT.js in the browser refuses a dynamic batch dimension.
INPUT_BATCH = 1


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = scale * (stored - zero_point)."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class Variant:
    """One .tflite file of the bundle and what is known about it."""

    file: str
    bytes: int
    sha256: str
    input_dtype: str
    output_dtype: str
    input_quantization: Quantization | None = None
    output_quantization: Quantization | None = None  # the probabilities output
    features_dtype: str = "float32"
    features_quantization: Quantization | None = None
    # How the conversion went on the exporting machine: seconds, peak_rss_mb, rss_increase_mb; for an
    # int8 made by quantization-aware training also method, epochs, learning_rate, batch_size,
    # training_images, distillation_loss and validation_top1_agreement (per epoch), kept_epoch and
    # rebuild_max_difference (export/qat.py).
    conversion: dict[str, Any] = field(default_factory=dict)
    # Measured with the edge runtime at export: accuracy, balanced_accuracy, per_class_recall,
    # melanoma_sensitivity, top1_agreement and max_probability_difference against the float model.
    metrics: dict[str, Any] = field(default_factory=dict)
    # What this variant decides differently from the bundle's "honesty" section: the fields of
    # HonestyInfo fitted on its own outputs (file, bytes, sha256, arrays, ood, melanoma). A
    # quantized model's features and probabilities are not float32's, so neither are its thresholds.
    honesty: dict[str, Any] | None = None


@dataclass(frozen=True)
class HonestyInfo:
    """What a runtime needs to say "retake", "unsure" or "ok" (edge/honesty.py applies it).

    Every threshold was chosen on the training or validation split, never on the test split.
    """

    file: str  # honesty.bin: little-endian float32 arrays, laid out as `arrays` says
    bytes: int
    sha256: str
    arrays: dict[str, dict[str, Any]]  # name -> {"offset": bytes, "shape": [...]}
    temperature: float  # already folded into every variant's last layer
    ood: dict[str, Any]  # "score" (mahalanobis | msp | energy), "threshold", and the comparison
    quality: dict[str, float]  # highlights_min, brightness_max, clipped_max, sharpness_min, training_pass_rate
    melanoma: dict[str, Any]  # "threshold" on the melanoma probability, target and validation figures
    low_confidence_below: float  # an "ok" answer whose top probability is below this says so

    @property
    def ood_score(self) -> str:
        return self.ood["score"]

    @property
    def ood_threshold(self) -> float:
        return float(self.ood["threshold"])

    @property
    def melanoma_threshold(self) -> float:
        return float(self.melanoma["threshold"])

    def unpack(self, content: bytes) -> dict[str, np.ndarray]:
        """The named float64 arrays of honesty.bin.

        Raises:
            BundleError: the file is shorter than the layout says.
        """
        arrays = {}
        for name, spec in self.arrays.items():
            count = int(np.prod(spec["shape"]))
            end = spec["offset"] + 4 * count
            if end > len(content):
                raise BundleError(f"{self.file}: {len(content)} bytes, but array {name!r} ends at byte {end}")
            values = np.frombuffer(content, dtype="<f4", count=count, offset=spec["offset"])
            arrays[name] = values.reshape(spec["shape"]).astype(np.float64)
        return arrays


# What a variant's honesty override may replace, and the JSON type of each.
HONESTY_OVERRIDES = {"file": str, "bytes": int, "sha256": str, "arrays": dict, "ood": dict, "melanoma": dict}
_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "integer", (int, float): "number"}



class FieldChecker:
    """Field access with messages that name the manifest file and the field."""

    def __init__(self, path: Path | str):
        self.path = path

    def typed(self, value: Any, kind: type, what: str) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BundleError(f"{self.path}: {what} must be a JSON {_JSON_NAMES[kind]}, got {type(value).__name__}")
        return value

    def field(self, data: dict, key: str, kind: type, name: str | None = None) -> Any:
        if key not in data:
            raise BundleError(f"{self.path}: the field '{name or key}' is missing")
        return self.typed(data[key], kind, f"'{name or key}'")

    def label(self, value: Any) -> tuple[str, str]:
        value = self.typed(value, dict, "each of 'labels'")
        code = self.field(value, "code", str, "labels[].code")
        return code, str(value.get("name", code))

    def input_size(self, value: dict) -> int:
        """input.size, after checking input.batch (absent in bundles exported before it was written: 1)."""
        batch = value.get("batch", INPUT_BATCH)
        if batch != INPUT_BATCH:
            raise BundleError(f"{self.path}: 'input.batch' is {batch!r}, this runtime runs batch {INPUT_BATCH} "
                              "models only: re-export the bundle with this version of LesionLite")
        size = self.field(value, "size", int, "input.size")
        if size <= 0:
            raise BundleError(f"{self.path}: 'input.size' must be a positive integer, got {size}")
        return size

    def quantization(self, value: Any, name: str) -> Quantization | None:
        if value is None:
            return None
        value = self.typed(value, dict, name)
        return Quantization(float(self.field(value, "scale", (int, float), f"{name}.scale")),
                            self.field(value, "zero_point", int, f"{name}.zero_point"))

    def variant(self, name: str, value: Any) -> Variant:
        where = f"variants.{name}"
        value = self.typed(value, dict, f"'{where}'")
        return Variant(
            file=self.field(value, "file", str, f"{where}.file"),
            bytes=self.field(value, "bytes", int, f"{where}.bytes"),
            sha256=self.field(value, "sha256", str, f"{where}.sha256"),
            input_dtype=self.field(value, "input_dtype", str, f"{where}.input_dtype"),
            output_dtype=self.field(value, "output_dtype", str, f"{where}.output_dtype"),
            input_quantization=self.quantization(value.get("input_quantization"), f"{where}.input_quantization"),
            output_quantization=self.quantization(value.get("output_quantization"), f"{where}.output_quantization"),
            features_dtype=self.field(value, "features_dtype", str, f"{where}.features_dtype"),
            features_quantization=self.quantization(value.get("features_quantization"), f"{where}.features_quantization"),
            conversion=value.get("conversion") or {},
            metrics=value.get("metrics") or {},
            honesty=self.honesty_override(value.get("honesty"), f"{where}.honesty"),
        )

    def honesty_override(self, value: Any, where: str) -> dict[str, Any] | None:
        if value is None:
            return None
        value = self.typed(value, dict, f"'{where}'")
        unknown = sorted(set(value) - set(HONESTY_OVERRIDES))
        if unknown:
            raise BundleError(f"{self.path}: {where} has field(s) {', '.join(unknown)} this runtime does not apply; "
                              f"it applies {', '.join(HONESTY_OVERRIDES)}")
        for key, kind in HONESTY_OVERRIDES.items():
            if key in value:
                self.typed(value[key], kind, f"'{where}.{key}'")
        return value


    def honesty(self, value: dict) -> HonestyInfo:
        number = (int, float)
        ood, quality = self.field(value, "ood", dict, "honesty.ood"), self.field(value, "quality", dict, "honesty.quality")
        melanoma = self.field(value, "melanoma", dict, "honesty.melanoma")
        self.field(ood, "threshold", number, "honesty.ood.threshold")
        if self.field(ood, "score", str, "honesty.ood.score") not in ("mahalanobis", "msp", "energy"):
            raise BundleError(f"{self.path}: honesty.ood.score {ood['score']!r} is not one this runtime computes "
                              "(mahalanobis, msp, energy)")
        for key in QUALITY_LIMITS:
            self.field(quality, key, number, f"honesty.quality.{key}")
        self.field(melanoma, "threshold", number, "honesty.melanoma.threshold")
        arrays = self.field(value, "arrays", dict, "honesty.arrays")
        for name in arrays:
            self.field(self.field(arrays, name, dict, f"honesty.arrays.{name}"), "shape", list,
                       f"honesty.arrays.{name}.shape")
        return HonestyInfo(
            file=self.field(value, "file", str, "honesty.file"), bytes=self.field(value, "bytes", int, "honesty.bytes"),
            sha256=self.field(value, "sha256", str, "honesty.sha256"), arrays=arrays,
            temperature=float(self.field(value, "temperature", number, "honesty.temperature")),
            ood=ood, quality=quality, melanoma=melanoma,
            low_confidence_below=float(self.field(value, "low_confidence_below", number, "honesty.low_confidence_below")))
