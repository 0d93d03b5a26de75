"""The one image preprocessing function shared by training, export, the edge runner and the server.

Every stage that turns a photo into model input calls :func:`preprocess`, so training, int8
calibration, the Raspberry Pi runner and the web server all see byte-identical pixels.
Normalization is *not* done here: it is a layer inside the model, which takes raw RGB 0-255.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edge.errors import CorruptImageError, ImageError, ImageTooLargeError, UnsupportedImageError

PREPROCESSING_NAME = "lesionlite-v1"
PREPROCESSING_DESCRIPTION = (
    "EXIF orientation applied; converted to RGB (alpha dropped, grey expanded, CMYK converted); "
    "JPEG draft-decoded at no less than twice the input size; centre-cropped to a square; "
    "resized with bilinear filtering to SIZE x SIZE; uint8 HxWx3, raw 0-255"
)
# A large JPEG is DCT-scaled while decoding, but never below this multiple of the input size,
# so the final bilinear resize still averages over several source pixels.
DRAFT_OVERSAMPLE = 2
# Pillow's decompression-bomb guard, made explicit: 12 MP phones are fine, 100+ MP is refused.
MAX_PIXELS = 64_000_000

ImageSource = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray


def open_image(source: ImageSource) -> Image.Image:
    """Open a path, encoded bytes, a PIL image or an HxWx3 / HxW uint8 array, without decoding yet.

    Raises:
        ImageError: the file is missing, empty, not an image, or larger than MAX_PIXELS.
    """
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise ImageError(f"array must be uint8 HxW or HxWxC, got {source.dtype} {source.shape}")
        return Image.fromarray(source)
    if isinstance(source, (bytes, bytearray)):
        data, label = bytes(source), "image data"
    else:
        label = os.fspath(source)
        try:
            with open(label, "rb") as fh:  # read whole: no file handle outlives this call
                data = fh.read()
        except OSError as err:
            raise ImageError(f"cannot open {label}: {err.strerror}") from None
    if not data:
        raise CorruptImageError(f"{label} is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedImageError(f"{label} is not an image format LesionLite reads (send JPEG or PNG)") from None
    except (OSError, SyntaxError) as err:
        raise CorruptImageError(f"{label} is corrupt or truncated: {err}") from None
    if image.width * image.height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{label} is {image.width}x{image.height} pixels, over the limit of {MAX_PIXELS:,}"
        )
    return image


def to_rgb_square(image: Image.Image, size: int) -> Image.Image:
    """Decode (draft-scaled when possible), orient, convert to RGB and centre-crop to a square."""
    if image.format == "JPEG":
        # draft() only ever reduces by 1/2, 1/4 or 1/8 while keeping both sides >= the request.
        want = size * DRAFT_OVERSAMPLE
        image.draft("RGB", (want, want))
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as err:
        raise CorruptImageError(f"corrupt or truncated image: {err}") from None
    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=image.getchannel("A"))
            image = background
        else:
            image = image.convert("RGB")
    side = min(image.size)
    left = (image.width - side) // 2
    top = (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def preprocess(source: ImageSource, size: int) -> np.ndarray:
    """Return the model input for one image: uint8 array of shape (size, size, 3), raw RGB 0-255.

    Raises:
        ImageError: unreadable, truncated, corrupt or oversized image.
    """
    image = open_image(source)
    try:
        square = to_rgb_square(image, size)
        resized = square.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)
    except (OSError, SyntaxError) as err:
        raise CorruptImageError(f"corrupt or truncated image: {err}") from None
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(str(err)) from None
