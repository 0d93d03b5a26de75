"""The model files of a bundle folder: hashed when the export writes them, checked before they run.

The manifest (edge/manifest.py) says which file each variant is and its sha256; this module is
the one place that computes that hash, so the writer and every reader agree on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edge.errors import BundleError
from edge.manifest import Variant

# The model LesionLite ships (models/NAME/, with its model card): what every command runs when no
# bundle is given.
SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "models" / "ham10000"


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def read_verified_file(bundle_dir: str | Path, name: str, sha256: str) -> bytes:
    """Return a bundle file's bytes after checking them against the manifest's sha256.

    Raises:
        BundleError: the file is missing or its hash differs from the manifest.
    """
    path = Path(bundle_dir) / name
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path} is missing: re-export the bundle") from None
    actual = sha256_hex(content)
    if actual != sha256:
        raise BundleError(
            f"{name}: sha256 mismatch, expected {sha256[:12]}..., got {actual[:12]}...: "
            "the file was changed or corrupted; re-export the bundle"
        )
    return content


def read_verified_model(bundle_dir: str | Path, variant: Variant) -> bytes:
    """The model file's verified bytes; the same bytes are handed to the interpreter, so what was
    verified is what runs.

    Raises:
        BundleError: the file is missing or its hash differs from the manifest.
    """
    return read_verified_file(bundle_dir, variant.file, variant.sha256)
