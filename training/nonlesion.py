"""Photos with no skin lesion in them, to measure whether "unsure" catches them.

Natural photos that packages this project already depends on ship (scikit-learn's china.jpg and
flower.jpg, matplotlib's grace_hopper.jpg and a product photo), cut into many crops, plus what a
phone pointed at the wrong thing produces: textures, text, flat colours, gradients and noise.
Two seeds give two disjoint-by-construction sets: one to choose the out-of-distribution score
with, one to report it on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("natural", "texture", "text", "flat", "gradient", "noise")
SIZE = (600, 450)


def natural_sources() -> list[Path]:
    import matplotlib
    import sklearn.datasets

    sample = Path(matplotlib.get_data_path()) / "sample_data"
    return [Path(p) for p in sklearn.datasets.load_sample_images().filenames] + [
        sample / "grace_hopper.jpg", sample / "Minduka_Present_Blue_Pack.png"]


def _natural(rng: np.random.Generator, sources: list[Image.Image]) -> Image.Image:
    image = sources[int(rng.integers(len(sources)))]
    scale = rng.uniform(0.35, 1.0)
    w, h = int(image.width * scale), int(image.height * scale)
    left, top = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
    return image.crop((left, top, left + w, top + h)).resize(SIZE)


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
    image = Image.fromarray(pixels)
    return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 3))))


def images(count: int, seed: int) -> list[tuple[str, Image.Image]]:
    """COUNT (kind, 600x450 RGB image) pairs, half natural photos, the rest the other kinds in turn."""
    rng = np.random.default_rng(seed)
    sources = [Image.open(p).convert("RGB") for p in natural_sources()]
    makers = {"texture": _texture, "text": _text, "flat": _flat, "gradient": _gradient, "noise": _noise}
    others = list(makers)
    made = []
    for i in range(count):
        if i % 2 == 0:
            made.append(("natural", _natural(rng, sources)))
        else:
            kind = others[(i // 2) % len(others)]
            made.append((kind, makers[kind](rng)))
    return made


def pixels(count: int, seed: int, size: int) -> tuple[np.ndarray, list[str]]:
    """The images through the shared preprocessing: (N, size, size, 3) uint8 and their kinds."""
    from edge.preprocess import preprocess

    made = images(count, seed)
    return np.stack([preprocess(image, size) for _, image in made]), [kind for kind, _ in made]
