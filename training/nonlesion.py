"""Photos with no skin lesion in them, to measure whether "unsure" catches them.

Two sets from different sources, so that the set that reports the out-of-distribution check
did not also choose it:
- "selection" (chooses the score and layer): scikit-learn's two sample photos (a temple and a
  flower), periodic textures, flat colours, colour gradients, and shaded terrain rendered from
  matplotlib's sample elevation data;
- "report" (only measured): matplotlib's sample photos (a portrait and a product photo), a
  medical image that is not a dermoscopy (matplotlib's MRI slice), printed text, and noise.
Each is what a phone pointed at the wrong thing might give. `KINDS[set]` names them; the report
lists them beside the figures.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SETS = ("selection", "report")
KINDS = {"selection": ("photo", "texture", "flat", "gradient", "terrain"),
         "report": ("photo", "medical", "text", "noise")}
SEEDS = {"selection": 101, "report": 202}
SOURCES = {"selection": "scikit-learn's sample photos (temple, flower), textures, flat colours, gradients, "
                        "shaded terrain (matplotlib's elevation sample)",
           "report": "matplotlib's sample photos (portrait, product), an MRI slice (matplotlib's sample), "
                     "printed text, noise"}
SIZE = (600, 450)
Maker = Callable[[np.random.Generator], Image.Image]


def _sample_data() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data"


def photo_sources(which: str) -> list[Path]:
    """The natural photos of a set: scikit-learn's for selection, matplotlib's for the report."""
    if which == "selection":
        import sklearn.datasets

        return [Path(p) for p in sklearn.datasets.load_sample_images().filenames]
    return [_sample_data() / "grace_hopper.jpg", _sample_data() / "Minduka_Present_Blue_Pack.png"]


def _crop(rng: np.random.Generator, image: Image.Image) -> Image.Image:
    scale = rng.uniform(0.35, 1.0)
    w, h = int(image.width * scale), int(image.height * scale)
    left, top = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
    return image.crop((left, top, left + w, top + h)).resize(SIZE)


def _photo(sources: list[Image.Image]) -> Maker:
    return lambda rng: _crop(rng, sources[int(rng.integers(len(sources)))])


def _texture(rng: np.random.Generator) -> Image.Image:
    yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 60)
    wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    if rng.random() < 0.5:  # checkerboard or woven pattern
        wave = wave * np.sin((xx * -np.sin(angle) + yy * np.cos(angle)) * 2 * np.pi / period)
    colours = rng.integers(0, 256, (2, 3))
    mix = ((wave + 1) / 2)[..., np.newaxis]
    return Image.fromarray((colours[0] * mix + colours[1] * (1 - mix)).astype(np.uint8))


def _text(rng: np.random.Generator) -> Image.Image:
    paper = tuple(int(v) for v in rng.integers(200, 256, 3))
    image = Image.new("RGB", SIZE, paper)
    draw = ImageDraw.Draw(image)
    words = ["lesion", "invoice", "total", "meeting", "the", "quick", "brown", "fox", "page", "notes", "2026"]
    for line in range(int(rng.integers(10, 30))):
        text = " ".join(rng.choice(words, int(rng.integers(3, 9))))
        draw.text((20, 12 + line * 15), text, fill=tuple(int(v) for v in rng.integers(0, 80, 3)))
    return image


def _flat(rng: np.random.Generator) -> Image.Image:
    return Image.new("RGB", SIZE, tuple(int(v) for v in rng.integers(0, 256, 3)))


def _gradient(rng: np.random.Generator) -> Image.Image:
    ramp = np.linspace(0, 1, SIZE[0], dtype=np.float32)[np.newaxis, :, np.newaxis]
    a, b = rng.integers(0, 256, (2, 3))
    return Image.fromarray(np.broadcast_to(a * (1 - ramp) + b * ramp, (SIZE[1], SIZE[0], 3)).astype(np.uint8))


def _noise(rng: np.random.Generator) -> Image.Image:
    pixels = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 3))))


def _terrain(elevation: np.ndarray) -> Maker:
    """Hill-shaded elevation in a map colour scale, lit from a random direction."""
    def make(rng: np.random.Generator) -> Image.Image:
        import matplotlib
        from matplotlib import colors

        shade = colors.LightSource(azdeg=float(rng.uniform(0, 360)), altdeg=float(rng.uniform(20, 60)))
        colour_map = matplotlib.colormaps[str(rng.choice(["gist_earth", "terrain", "copper"]))]
        rgb = shade.shade(elevation, cmap=colour_map, blend_mode="soft")
        return _crop(rng, Image.fromarray((rgb[..., :3] * 255).astype(np.uint8)))
    return make


def _medical(slice_: np.ndarray) -> Maker:
    """The MRI slice (grey, 256x256) at a random window, as a phone photo of a screen would show it."""
    def make(rng: np.random.Generator) -> Image.Image:
        low, high = np.percentile(slice_, [rng.uniform(0, 5), rng.uniform(95, 100)])
        grey = np.clip((slice_ - low) / max(high - low, 1) * 255, 0, 255).astype(np.uint8)
        return _crop(rng, Image.fromarray(grey).convert("RGB"))
    return make


def _makers(which: str) -> dict[str, Maker]:
    photos = _photo([Image.open(p).convert("RGB") for p in photo_sources(which)])
    if which == "selection":
        elevation = np.load(_sample_data() / "jacksboro_fault_dem.npz")["elevation"].astype(float)
        return {"photo": photos, "texture": _texture, "flat": _flat, "gradient": _gradient,
                "terrain": _terrain(elevation)}
    with gzip.open(_sample_data() / "s1045.ima.gz") as fh:
        mri = np.frombuffer(fh.read(), np.uint16).reshape(256, 256).astype(float)
    return {"photo": photos, "medical": _medical(mri), "text": _text, "noise": _noise}


def images(count: int, which: str = "report") -> list[tuple[str, Image.Image]]:
    """COUNT (kind, 600x450 RGB image) pairs of set WHICH: half photos, the rest its other kinds in turn."""
    if which not in SETS:
        raise ValueError(f"unknown non-lesion set {which!r}; choose one of {', '.join(SETS)}")
    rng = np.random.default_rng(SEEDS[which])
    makers = _makers(which)
    others = [k for k in KINDS[which] if k != "photo"]
    made = []
    for i in range(count):
        kind = "photo" if i % 2 == 0 else others[(i // 2) % len(others)]
        made.append((kind, makers[kind](rng)))
    return made


def pixels(count: int, which: str, size: int) -> tuple[np.ndarray, list[str]]:
    """The images through the shared preprocessing: (N, size, size, 3) uint8 and their kinds."""
    from edge.preprocess import preprocess

    made = images(count, which)
    return np.stack([preprocess(image, size) for _, image in made]), [kind for kind, _ in made]
