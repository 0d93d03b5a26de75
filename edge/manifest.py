"""The bundle's manifest.json as one type: written by the export, read and checked by every runtime.

A bundle folder (runs/NAME/bundle/) holds the .tflite variants and this manifest, the only
contract between the TensorFlow half (training, export) and the LiteRT half (edge, pwa). The
export builds a :class:`Manifest` and calls :meth:`Manifest.write`; a runtime calls
:meth:`Manifest.load`, which refuses anything it cannot honour with a BundleError naming the
file, the field and what to do.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BundleError
from edge.preprocess import PREPROCESSING_DESCRIPTION, PREPROCESSING_NAME

# 2: variant metrics nested under "metrics"; "default_variant" is required and honoured.
# 3: a second model output (pooled features) and the "honesty" section with honesty.bin.
# 4: a quantized variant may carry its own "honesty" override (its OOD statistics and threshold
#    and its referral threshold, fitted on its own outputs), which a runtime must apply.
# 5: too dark is judged on the photo's highlights (honesty.quality.highlights_min, the 99th
#    percentile of luma) instead of its mean brightness, so darker skin is not told "too dark".
SCHEMA_VERSION = 5
# The photo-quality limits a runtime applies (edge/honesty.py quality_reasons, js/honesty.js).
QUALITY_LIMITS = ("highlights_min", "brightness_max", "clipped_max", "sharpness_min")
MANIFEST_NAME = "manifest.json"
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
    # How the conversion went on the exporting machine: seconds, peak_rss_mb, rss_increase_mb.
    conversion: dict[str, float] = field(default_factory=dict)
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


@dataclass(frozen=True)
class Manifest:
    """Everything a runtime needs to run the bundle and to describe it to a person."""

    labels: tuple[tuple[str, str], ...]  # (code, name) in model output order
    input_size: int
    variants: dict[str, Variant]
    default_variant: str
    honesty: HonestyInfo
    feature_width: int  # width of the second model output, the pooled features
    created_utc: str = ""
    preprocessing: str = PREPROCESSING_NAME
    # The training run this bundle came from: name, path, config, test metrics.
    source_run: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(code for code, _ in self.labels)

    def variant(self, name: str | None = None) -> Variant:
        """The named variant, or the default one.

        Raises:
            BundleError: the bundle has no such variant (the message lists the ones it has).
        """
        name = name or self.default_variant
        if name not in self.variants:
            raise BundleError(f"unknown variant {name!r}: this bundle has {', '.join(self.variants)}")
        return self.variants[name]

    def honesty_for(self, name: str | None = None) -> HonestyInfo:
        """The honest-answer settings of the named (or default) variant: the bundle's, with the
        variant's own override applied.

        Raises:
            BundleError: no such variant.
        """
        override = self.variant(name).honesty
        return replace(self.honesty, **override) if override else self.honesty

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "created_utc": self.created_utc,
            "labels": [{"code": c, "name": n} for c, n in self.labels],
            "input": {"batch": INPUT_BATCH, "size": self.input_size, "channels": 3, "dtype": INPUT_DTYPE},
            "outputs": {"probabilities": len(self.labels), "features": self.feature_width},
            "preprocessing": self.preprocessing,
            "preprocessing_description": PREPROCESSING_DESCRIPTION.replace("SIZE", str(self.input_size)),
            "default_variant": self.default_variant,
            "variants": {name: asdict(v) for name, v in self.variants.items()},
            "honesty": asdict(self.honesty),
            "source_run": self.source_run,
        }

    def write(self, folder: str | Path) -> Path:
        """manifest.json, strict JSON: a figure that is not a number (NaN, say a subgroup's melanoma
        sensitivity without melanomas) is written as null, since browsers' JSON.parse refuses NaN."""
        path = Path(folder) / MANIFEST_NAME
        path.write_text(json.dumps(_finite(self.to_dict()), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        """Read and check FOLDER/manifest.json.

        Raises:
            BundleError: folder or manifest missing, not JSON, unknown schema version, a
                preprocessing this runtime does not implement, or a missing or mistyped field.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise BundleError(f"bundle folder {folder} does not exist (export a run first)")
        path = folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BundleError(f"{path} is missing: {folder} is not a LesionLite bundle") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BundleError(f"{path} is not valid JSON: {err}") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, path: Path | str = MANIFEST_NAME) -> Manifest:
        check = _Checker(path)
        data = check.typed(data, dict, "the manifest")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleError(f"{path} has schema_version {version}, this runtime reads {SCHEMA_VERSION}: "
                              "re-export the bundle with this version of LesionLite (python -m export RUN)")
        if data.get("preprocessing") != PREPROCESSING_NAME:
            raise BundleError(f"{path} needs preprocessing {data.get('preprocessing')!r}, this runtime implements "
                              f"{PREPROCESSING_NAME!r}: the model would see different pixels than in training")
        labels = tuple(check.label(x) for x in check.field(data, "labels", list))
        size = check.input_size(check.field(data, "input", dict))
        variants = {name: check.variant(name, v) for name, v in check.field(data, "variants", dict).items()}
        if not variants:
            raise BundleError(f"{path}: 'variants' must name at least one model file")
        default = check.field(data, "default_variant", str)
        if default not in variants:
            raise BundleError(f"{path}: default_variant {default!r} is not one of its variants ({', '.join(variants)})")
        outputs = check.field(data, "outputs", dict)
        features = check.field(outputs, "features", int, "outputs.features")
        return cls(labels=labels, input_size=size, variants=variants, default_variant=default,
                   honesty=check.honesty(check.field(data, "honesty", dict)), feature_width=features,
                   created_utc=str(data.get("created_utc", "")), source_run=data.get("source_run") or {})


class _Checker:
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


# What a variant's honesty override may replace, and the JSON type of each.
HONESTY_OVERRIDES = {"file": str, "bytes": int, "sha256": str, "arrays": dict, "ood": dict, "melanoma": dict}
_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "integer", (int, float): "number"}


def _finite(value: Any) -> Any:
    """VALUE with every non-finite float (NaN, infinity) replaced by None, in nested dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
