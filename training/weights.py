"""Resolve the pretrained weights a config asks for, before anything is decoded or written.

`--weights imagenet` downloads Keras's MobileNet no-top file (or finds it in ~/.keras/models);
`--weights PATH` opens the file and checks that it is a MobileNet of the config's width (alpha)
and, when its name follows Keras's `mobilenet_{alpha}_{size}_tf_no_top.h5`, of its size too.
Either way the file's sha256 is recorded in the run (run.json), so two runs can be compared.

A download is checked against a known hash (KNOWN_MD5) before it is used, and a file already in
Keras's cache is checked again each time. Keras publishes no hash for the MobileNet v1 files (its
`mobilenet.py` calls `get_file` without `file_hash`), so the table holds what could be found
elsewhere; a file without an entry is used with a printed notice that nothing vouches for it.
`LESIONLITE_IMAGENET_URL` points the download at a mirror (a folder URL: http(s) or file://).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from training.config import ConfigError, TrainConfig, WeightsError

# Where and under which names Keras's MobileNet looks for its ImageNet weights.
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
IMAGENET_ALPHAS = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}
IMAGENET_SIZES = (128, 160, 192, 224)
KERAS_NAME = re.compile(r"mobilenet_(\d_\d)_(\d+)_tf(_no_top)?\.h5$")
# Known md5 of Keras's no-top files (Keras's own get_file checks it). The 1.0/224 file, which the
# ham10000 config downloads (17,225,924 bytes), is pinned by the MIAnalyzer/MIA project's weights
# mirror with this md5 (same table as Keras's own hashes for the files Keras does publish). It
# could not be checked against a download on the machine this was written on (no internet
# there); a mismatch is refused with the advice to pass a file you trust as --weights PATH.
KNOWN_MD5 = {"mobilenet_1_0_224_tf_no_top.h5": "725ccbd03d61d7ced5b5c4cd17e7d527"}
MIRROR_ENV = "LESIONLITE_IMAGENET_URL"
# MobileNet's first convolution has int(32 * alpha) filters of 3x3x3: the file's width.
FIRST_FILTERS = 32


@dataclass(frozen=True)
class Weights:
    """What the base starts from: `source` as asked, the local file, and its sha256."""

    source: str  # "imagenet", "none" or the path given
    file: str | None
    sha256: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def imagenet_file_name(config: TrainConfig) -> str:
    """Keras's file name for the no-top ImageNet weights of this alpha and size.

    Raises:
        ConfigError: Keras publishes no ImageNet weights for this alpha or size.
    """
    if config.alpha not in IMAGENET_ALPHAS or config.image_size not in IMAGENET_SIZES:
        raise ConfigError(
            f"ImageNet weights exist for alpha {', '.join(f'{a:g}' for a in IMAGENET_ALPHAS)} at "
            f"{', '.join(map(str, IMAGENET_SIZES))} px, not alpha {config.alpha:g} at {config.image_size} px; "
            "pass --weights none to train from scratch")
    return f"mobilenet_{IMAGENET_ALPHAS[config.alpha]}_{config.image_size}_tf_no_top.h5"


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def download_imagenet(config: TrainConfig, cache_dir: Path | None = None) -> Path:
    """The ImageNet file from Keras's cache (checked again), downloaded first if needed.

    Raises:
        WeightsError: the download failed (no internet access, most often), or the file is not
            the one its known hash names.
    """
    import keras

    name = imagenet_file_name(config)
    base = os.environ.get(MIRROR_ENV) or IMAGENET_URL
    url = base.rstrip("/") + "/" + name
    known = KNOWN_MD5.get(name)
    home = Path(cache_dir or os.environ.get("KERAS_HOME") or Path.home() / ".keras")  # Keras's own default
    try:
        (home / "models").mkdir(parents=True, exist_ok=True)  # else Keras quietly falls back to /tmp/.keras
    except OSError as err:
        raise WeightsError(f"cannot create {home / 'models'} for the ImageNet weights ({err.strerror}); set "
                           "KERAS_HOME to a writable folder, or pass --weights PATH.h5") from None
    try:
        path = Path(keras.utils.get_file(name, url, cache_subdir="models", file_hash=known, hash_algorithm="md5",
                                         cache_dir=str(home)))
    except ValueError:  # Keras: "Incomplete or corrupted file detected" (the md5 differs)
        got = home / "models" / name
        rejected = got.with_name(name + ".rejected")
        if got.exists():
            got.replace(rejected)
        raise WeightsError(
            f"the downloaded {name} from {url} is not the known file (md5 {known} expected, "
            f"{digest_of(rejected, 'md5') if rejected.exists() else 'unknown'} "
            f"received): a broken or altered download; it was set aside as {rejected}. Try again, or pass "
            "--weights PATH/TO/" + name + " with a file you trust") from None
    except Exception as err:  # Keras raises a bare Exception for download failures
        raise WeightsError(
            f"cannot download the ImageNet weights from {url} ({type(err).__name__}: {str(err)[:120]}; no "
            f"internet access?). Pass --weights none to train from scratch, or download {IMAGENET_URL}{name} on "
            f"another machine and pass --weights PATH/TO/{name} (or set {MIRROR_ENV} to a folder that holds it)"
        ) from None
    if known is None:
        print(f"weights: no known hash for {name}, so nothing vouches for the download; its sha256 is recorded in run.json")
    return path


def _conv_shapes(path: Path) -> list[tuple[int, ...]]:
    """The shapes of every 4-D array in an HDF5 weights file (Keras 2 or Keras 3 layout)."""
    import h5py

    shapes: list[tuple[int, ...]] = []
    try:
        with h5py.File(path, "r") as fh:
            fh.visititems(lambda _, obj: shapes.append(obj.shape)
                          if isinstance(obj, h5py.Dataset) and len(obj.shape) == 4 else None)
    except OSError as err:
        raise WeightsError(f"weights file {path} is not an HDF5 (.h5) file: {err}") from None
    return shapes


def check_weights_file(path: Path, config: TrainConfig) -> None:
    """Raises WeightsError unless PATH holds no-top MobileNet weights of the config's alpha and size."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; pass --weights imagenet, none or PATH.h5")
    shapes = _conv_shapes(path)
    first = [s for s in shapes if s[:3] == (3, 3, 3)]
    if not first:
        raise WeightsError(f"{path} holds no MobileNet weights (no 3x3 convolution over RGB)")
    if any(s[-1] == 1000 for s in shapes):
        raise WeightsError(f"{path} includes the ImageNet classifier; pass the _no_top file")
    want = int(FIRST_FILTERS * config.alpha)
    if first[0][3] != want:
        raise WeightsError(f"{path} is MobileNet alpha {first[0][3] / FIRST_FILTERS:g} ({first[0][3]} first filters) "
                           f"but the config trains alpha {config.alpha:g}; pass --alpha {first[0][3] / FIRST_FILTERS:g} "
                           "or the file for this alpha")
    named = KERAS_NAME.search(path.name)
    if named and int(named.group(2)) != config.image_size:
        raise WeightsError(f"{path.name} was trained at {named.group(2)} px but the config trains at "
                           f"{config.image_size} px; pass --image-size {named.group(2)} or "
                           f"mobilenet_{named.group(1)}_{config.image_size}_tf_no_top.h5")


def resolve_weights(config: TrainConfig) -> Weights:
    """Find, fetch and check the config's weights; seconds, before any decoding.

    Raises:
        ConfigError: no ImageNet weights for this alpha or size.
        WeightsError: the download failed, or the given file is missing or does not fit.
    """
    if config.weights == "none":
        return Weights("none", None, None)
    path = download_imagenet(config) if config.weights == "imagenet" else Path(config.weights)
    check_weights_file(path, config)
    return Weights(config.weights, str(path.resolve()), digest_of(path))
