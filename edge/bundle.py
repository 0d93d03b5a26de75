"""Reading and checking a bundle folder (runs/NAME/bundle/): manifest.json plus the .tflite variants.

The bundle is the only contract between export and the edge runtime, so every check here ends in
a BundleError whose message says what is wrong and what to do about it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge.errors import BundleError
from edge.preprocess import PREPROCESSING_NAME

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


def load_manifest(bundle_dir: str | Path) -> dict:
    """Read manifest.json and check the parts every variant shares: schema, preprocessing, labels.

    Raises:
        BundleError: folder or manifest missing, manifest not JSON, unknown schema version,
            preprocessing this runtime does not implement, or malformed labels.
    """
    folder = Path(bundle_dir)
    if not folder.is_dir():
        raise BundleError(f"bundle folder {folder} does not exist (export a run first)")
    path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is missing: {folder} is not a LesionLite bundle") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path} must hold a JSON object, got {type(manifest).__name__}")
    _check_shared_fields(manifest, path)
    return manifest


def _check_shared_fields(manifest: dict, path: Path) -> None:
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{path} has schema_version {version}, this runtime knows {SCHEMA_VERSION}: "
            "update LesionLite or re-export the bundle"
        )
    preprocessing = manifest.get("preprocessing")
    if preprocessing != PREPROCESSING_NAME:
        raise BundleError(
            f"{path} needs preprocessing {preprocessing!r}, this runtime implements "
            f"{PREPROCESSING_NAME!r}: the model would see different pixels than in training"
        )
    labels = manifest.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, dict) and "code" in x for x in labels):
        raise BundleError(f"{path}: 'labels' must be a list of {{'code', 'name'}} objects")
    size = (manifest.get("input") or {}).get("size")
    if not isinstance(size, int) or size <= 0:
        raise BundleError(f"{path}: 'input.size' must be a positive integer, got {size!r}")
    if not isinstance(manifest.get("variants"), dict) or not manifest["variants"]:
        raise BundleError(f"{path}: 'variants' must name at least one model file")


def labels_of(manifest: dict) -> list[tuple[str, str]]:
    """The (code, name) pairs in model output order."""
    return [(label["code"], label.get("name", label["code"])) for label in manifest["labels"]]


def variant_info(manifest: dict, variant: str) -> dict:
    """The manifest entry of one variant.

    Raises:
        BundleError: the bundle has no such variant (the message lists the ones it has).
    """
    variants = manifest["variants"]
    if variant not in variants:
        raise BundleError(f"unknown variant {variant!r}: this bundle has {', '.join(variants)}")
    return variants[variant]


def read_verified_model(bundle_dir: str | Path, info: dict) -> bytes:
    """Return the model file's bytes after checking them against the manifest's sha256.

    The same bytes are handed to the interpreter, so what was verified is what runs.

    Raises:
        BundleError: the file is missing or its hash differs from the manifest.
    """
    path = Path(bundle_dir) / info["file"]
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path} is missing: re-export the bundle") from None
    expected = info.get("sha256", "")
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise BundleError(
            f"{info['file']}: sha256 mismatch, expected {expected[:12]}..., got {actual[:12]}...: "
            "the file was changed or corrupted; re-export the bundle"
        )
    return content
