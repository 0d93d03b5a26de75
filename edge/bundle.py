"""The model files of a bundle folder: hashed when the export writes them, checked before they run.

The manifest (edge/manifest.py) says which file each variant is and its sha256; this module is
the one place that computes that hash, so the writer and every reader agree on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edge.errors import BundleError
from edge.manifest import Variant


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def read_verified_model(bundle_dir: str | Path, variant: Variant) -> bytes:
    """Return the model file's bytes after checking them against the manifest's sha256.

    The same bytes are handed to the interpreter, so what was verified is what runs.

    Raises:
        BundleError: the file is missing or its hash differs from the manifest.
    """
    path = Path(bundle_dir) / variant.file
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path} is missing: re-export the bundle") from None
    actual = sha256_hex(content)
    if actual != variant.sha256:
        raise BundleError(
            f"{variant.file}: sha256 mismatch, expected {variant.sha256[:12]}..., got {actual[:12]}...: "
            "the file was changed or corrupted; re-export the bundle"
        )
    return content
