"""The one synthetic photo the benchmarks send: a lesion-like JPEG that decodes like a real one.

A few blurred dark blobs on skin colour, drawn at 600x450 and scaled to the asked size, plus
sensor-like noise at full size, so JPEG size and decoding cost are those of a camera photo
rather than of a flat image.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from bench import BenchError

HAM10000_SIZE = (600, 450)  # a dermatoscope image as HAM10000 distributes it
PHONE_12MP_SIZE = (4032, 3024)  # a phone camera photo
SKIN = (214, 170, 150)
JPEG_QUALITY = 90


def synthetic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB lesion-like photo of the given size; the same seed gives the same blobs
    (the noise differs run to run)."""
    rng = np.random.default_rng(seed)
    small = Image.new("RGB", HAM10000_SIZE, SKIN)
    draw = ImageDraw.Draw(small)
    for _ in range(6):
        x, y, r = rng.integers(150, 450), rng.integers(110, 340), rng.integers(20, 110)
        colour = tuple(int(c) for c in rng.integers(40, 160, 3))
        draw.ellipse((x - r, y - r * 0.8, x + r, y + r * 0.8), fill=colour)
    base = small.filter(ImageFilter.GaussianBlur(6)).resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((width, height), 6).convert("RGB")
    return ImageChops.add(base, noise, offset=-128)


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def synthetic_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    return jpeg_bytes(synthetic_photo(width, height, seed))


def jpeg_photos(sizes: dict[str, tuple[int, int]], source: Path | None = None) -> dict[str, bytes]:
    """name -> JPEG bytes at each size: the synthetic photo, or SOURCE scaled to each size."""
    if source is None:
        return {name: synthetic_jpeg(*size) for name, size in sizes.items()}
    try:
        with Image.open(source) as opened:
            image = opened.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # missing, not an image, truncated
        raise BenchError(f"cannot use {source} as the photo: {err}") from None
    return {name: jpeg_bytes(image.resize(size, Image.Resampling.BICUBIC)) for name, size in sizes.items()}


# Darker skin under the same light: linear-light reflectance scaled per channel, red least and blue
# most, as melanin absorbs short wavelengths more. The factors approximate the ratio of Fitzpatrick
# V-VI to I-II skin reflectance in published diffuse-reflectance spectra (red ~0.45, green ~0.3,
# blue ~0.28); they make a proxy for testing, not a model of any person's skin.
DARKER_SKIN = (0.45, 0.32, 0.28)


def _linear(srgb: np.ndarray) -> np.ndarray:
    v = srgb / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb(linear: np.ndarray) -> np.ndarray:
    v = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.maximum(linear, 0) ** (1 / 2.4) - 0.055)
    return np.clip(np.round(v * 255), 0, 255).astype(np.uint8)


def darker_skin(image: Image.Image, factors: tuple[float, float, float] = DARKER_SKIN) -> Image.Image:
    """The photo as it would look with darker skin under the same, good light (same exposure)."""
    pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.float64)
    return Image.fromarray(_srgb(_linear(pixels) * np.asarray(factors)))
