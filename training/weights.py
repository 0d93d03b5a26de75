"""Resolve the pretrained weights a config asks for, before anything is decoded or written.

`--weights imagenet` downloads Keras's no-top file for the config's architecture (MobileNet v1
or MobileNetV2), or finds it in ~/.keras/models; `--weights PATH` opens the file and checks that
it is that architecture, of the config's width (alpha) and, when its name follows Keras's naming,
of its size too. Either way the file's sha256 is recorded in the run (run.json), so two runs can
be compared.

A download is checked against a known hash (KNOWN_MD5) before it is used, and a file already in
Keras's cache is checked again each time. Keras publishes no hash for the MobileNet files (its
`mobilenet.py` and `mobilenet_v2.py` call `get_file` without `file_hash`), so a hash is pinned only
where the file's bytes were seen and checked (docs/training.md, "The weights pin"): a wrong pin
would refuse every user's first run. A file without an entry is used with a printed notice, and
its sha256 goes into run.json. `LESIONLITE_IMAGENET_URL` points the download at a mirror (a folder
URL: http(s) or file://).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from training.config import ConfigError, TrainConfig, WeightsError


@dataclass(frozen=True)
class Family:
    """Where and under which names keras.applications finds one MobileNet generation's weights."""

    url: str
    alphas: dict[float, str]  # alpha -> its spelling in the file name
    sizes: tuple[int, ...]
    name: str  # file name pattern, {alpha} and {size} filled in
    pattern: re.Pattern  # a Keras file name of this family: groups alpha spelling, size
    convolutions: int  # 4-D weight arrays in a no-top file: tells the generations apart
    # The first convolution's filters (3x3 over RGB) at width ALPHA: the file's width.
    first_filters: Callable[[float], int]


def _make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding (keras.applications.mobilenet_v2._make_divisible)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


FAMILIES = {
    # 1 stem + 13 depthwise + 13 pointwise convolutions.
    "mobilenet": Family("https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/",
                        {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}, (128, 160, 192, 224),
                        "mobilenet_{alpha}_{size}_tf_no_top.h5", re.compile(r"mobilenet_(\d_\d)_(\d+)_tf(_no_top)?\.h5$"),
                        27, lambda alpha: int(32 * alpha)),
    # 1 stem + 17 inverted residual blocks (expand, depthwise, project; the first has no expand) + 1 head.
    "mobilenet_v2": Family("https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
                           {0.35: "0.35", 0.5: "0.5", 0.75: "0.75", 1.0: "1.0"}, (96, 128, 160, 192, 224),
                           "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}_no_top.h5",
                           re.compile(r"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_(\d\.\d+)_(\d+)(_no_top)?\.h5$"),
                           52, lambda alpha: _make_divisible(32 * alpha)),
}
# Known md5 of Keras's no-top files, pinned only for bytes that were checked: the v1 alpha 0.25 /
# 224 px file (2,108,140 bytes), two independent public copies with the same sha256
# (dbdb03ee...0e5b0bf), loading bit-identically into MobileNet(alpha=0.25, include_top=False).
KNOWN_MD5 = {"mobilenet_2_5_224_tf_no_top.h5": "f313cee49f5d33dfb06f2b255c4adb64"}
MIRROR_ENV = "LESIONLITE_IMAGENET_URL"


@dataclass(frozen=True)
class Weights:
    """What the base starts from: `source` as asked, the local file, and its sha256."""

    source: str  # "imagenet", "none" or the path given
    file: str | None
    sha256: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def imagenet_file_name(config: TrainConfig) -> str:
    """Keras's file name for the no-top ImageNet weights of this architecture, alpha and size.

    Raises:
        ConfigError: Keras publishes no ImageNet weights for this alpha or size.
    """
    family = FAMILIES[config.arch]
    if config.alpha not in family.alphas or config.image_size not in family.sizes:
        raise ConfigError(
            f"ImageNet weights for {config.arch} exist for alpha {', '.join(f'{a:g}' for a in family.alphas)} at "
            f"{', '.join(map(str, family.sizes))} px, not alpha {config.alpha:g} at {config.image_size} px; "
            "pass --weights none to train from scratch")
    return family.name.format(alpha=family.alphas[config.alpha], size=config.image_size)


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
    base = os.environ.get(MIRROR_ENV) or FAMILIES[config.arch].url
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
            f"internet access?). Pass --weights none to train from scratch, or download {url} on "
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


def _width_of(family: Family, first_filters: int) -> str:
    """The alpha (or alphas) whose first convolution has FIRST_FILTERS filters, for a message."""
    alphas = [f"{a:g}" for a in family.alphas if family.first_filters(a) == first_filters]
    return " or ".join(alphas) or f"unknown ({first_filters} first filters)"


def check_weights_file(path: Path, config: TrainConfig) -> None:
    """Raises WeightsError unless PATH holds no-top weights of the config's architecture, alpha and size."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; pass --weights imagenet, none or PATH.h5")
    shapes = _conv_shapes(path)
    first = [s for s in shapes if s[:3] == (3, 3, 3)]
    if not first:
        raise WeightsError(f"{path} holds no MobileNet weights (no 3x3 convolution over RGB)")
    if any(s[-1] == 1000 for s in shapes):
        raise WeightsError(f"{path} includes the ImageNet classifier; pass the _no_top file")
    family = FAMILIES[config.arch]
    if len(shapes) != family.convolutions:
        other = next((name for name, f in FAMILIES.items() if f.convolutions == len(shapes)), None)
        raise WeightsError(f"{path} holds {len(shapes)} convolutions, not the {family.convolutions} of {config.arch}"
                           + (f": it is {other}; pass --set arch={other} or a {config.arch} file" if other else ""))
    if first[0][3] != family.first_filters(config.alpha):
        width = _width_of(family, first[0][3])
        raise WeightsError(f"{path} is {config.arch} alpha {width} ({first[0][3]} first filters) but the config "
                           f"trains alpha {config.alpha:g}; pass --alpha {width.split()[0]} or the file for this alpha")
    named = family.pattern.search(path.name)
    if named and int(named.group(2)) != config.image_size:
        raise WeightsError(f"{path.name} was trained at {named.group(2)} px but the config trains at "
                           f"{config.image_size} px; pass --image-size {named.group(2)} or "
                           f"{family.name.format(alpha=named.group(1), size=config.image_size)}")


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
