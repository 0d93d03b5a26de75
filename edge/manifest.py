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

from edge.errors import BundleError
from edge.manifest_fields import INPUT_BATCH, INPUT_DTYPE, QUALITY_LIMITS, FieldChecker, HonestyInfo, Quantization, Variant
from edge.preprocess import PREPROCESSING_DESCRIPTION, PREPROCESSING_NAME

# The manifest's parts are defined in edge/manifest_fields.py and named here too, so a caller
# imports everything about the manifest from one module.
__all__ = ["INPUT_BATCH", "INPUT_DTYPE", "MANIFEST_NAME", "QUALITY_LIMITS", "SCHEMA_VERSION", "HonestyInfo",
           "Manifest", "Quantization", "Variant"]

# 2: variant metrics nested under "metrics"; "default_variant" is required and honoured.
# 3: a second model output (pooled features) and the "honesty" section with honesty.bin.
# 4: a quantized variant may carry its own "honesty" override (its OOD statistics and threshold
#    and its referral threshold, fitted on its own outputs), which a runtime must apply.
# 5: too dark is judged on the photo's highlights (honesty.quality.highlights_min, the 99th
#    percentile of luma) instead of its mean brightness, so darker skin is not told "too dark".
SCHEMA_VERSION = 5
MANIFEST_NAME = "manifest.json"


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
        check = FieldChecker(path)
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


def _finite(value: Any) -> Any:
    """VALUE with every non-finite float (NaN, infinity) replaced by None, in nested dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
