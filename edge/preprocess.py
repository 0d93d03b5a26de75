"""The one image preprocessing function shared by training, export, the edge runner and the server.

Every stage that turns a photo into model input calls :func:`preprocess`, so training, int8
calibration, the Raspberry Pi runner and the web server all see byte-identical pixels.
Normalization is *not* done here: it is a layer inside the model, which takes raw RGB 0-255.

What a photo may be is decided here too, once, by :func:`open_image`: the format allow-list, the
HEIC advice, the pixel limit and corrupt data, each raised as its own edge.errors type with the
message the user sees (the web API only maps those types to HTTP statuses).
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edge.errors import CorruptImageError, ImageError, ImageTooLargeError, UnsupportedImageError

__all__ = [
    "ACCEPTED_FORMATS", "MAX_PIXELS", "PREPROCESSING_NAME", "ImageError", "ImageSource", "open_image", "preprocess",
]

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
# Formats a phone, a browser capture or a dermatoscope export produces. Pillow can open many
# more (EPS even runs Ghostscript), so nothing else reaches a decoder. JPEG includes MPO.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
# ISO-BMFF brands of HEIC/HEIF, the iPhone's default format, which Pillow cannot decode.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})

# The user-facing messages; {label} is a path, "image data", or the caller's word ("The photo").
SEND_JPEG = "send a JPEG or PNG"
UNSUPPORTED = "{label} is not an image format LesionLite reads: " + SEND_JPEG + "."
HEIF = ("{label} is HEIC/HEIF, which LesionLite cannot read: " + SEND_JPEG
        + " (on an iPhone: Settings > Camera > Formats > Most Compatible).")
EMPTY = "{label} is empty (0 bytes): take or choose it again."
CORRUPT = "{label} is corrupt or truncated: take or send the photo again."
TOO_MANY_PIXELS = "{label} is {width}x{height} pixels, over the limit of {limit:,}: send a smaller photo."
BOMB = "{label} has far too many pixels (limit {limit:,}): send a smaller photo."

ImageSource = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray


def is_heif(data: bytes) -> bool:
    """True for an ISO-BMFF file with a HEIC/HEIF brand (what an iPhone saves by default)."""
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def open_image(source: ImageSource, max_pixels: int = MAX_PIXELS, formats: tuple[str, ...] = ACCEPTED_FORMATS,
               label: str | None = None) -> Image.Image:
    """Open a path, encoded bytes, a PIL image or an HxWx3 / HxW uint8 array, without decoding pixels yet.

    Encoded input must be one of `formats` and have at most `max_pixels` pixels. `label` names the
    input in messages (default: the path, or "image data").

    Raises:
        UnsupportedImageError: not an image, or a format outside `formats` (HEIC named with advice).
        CorruptImageError: empty, or a header too damaged to read.
        ImageTooLargeError: more than `max_pixels` pixels (or past Pillow's decompression-bomb guard).
        ImageError: a path that cannot be read, or an array that is not uint8 HxW / HxWxC.
    """
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise ImageError(f"array must be uint8 HxW or HxWxC, got {source.dtype} {source.shape}")
        return Image.fromarray(source)
    label = label or default_label(source)
    data = _read(source, label)
    if not data:
        raise CorruptImageError(EMPTY.format(label=label))
    image = _open_encoded(data, formats, label, max_pixels)
    if image.width * image.height > max_pixels:
        raise ImageTooLargeError(
            TOO_MANY_PIXELS.format(label=label, width=image.width, height=image.height, limit=max_pixels))
    return image


def default_label(source: ImageSource) -> str:
    """How messages name an input that the caller did not name: its path, or what it is."""
    if isinstance(source, (bytes, bytearray)):
        return "image data"
    if isinstance(source, (Image.Image, np.ndarray)):
        return "the image"
    return os.fspath(source)


def _read(source: str | os.PathLike | bytes | bytearray, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    try:
        with open(source, "rb") as fh:  # read whole: no file handle outlives this call
            return fh.read()
    except OSError as err:
        raise ImageError(f"cannot open {label}: {err.strerror}") from None


def _open_encoded(data: bytes, formats: tuple[str, ...], label: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns past ~89 MP and raises past twice that: both mean "too large" here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(formats))
    except UnidentifiedImageError:
        raise UnsupportedImageError((HEIF if is_heif(data) else UNSUPPORTED).format(label=label)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(BOMB.format(label=label, limit=max_pixels)) from None
    except (OSError, SyntaxError, ValueError):
        raise CorruptImageError(CORRUPT.format(label=label)) from None


def to_rgb_square(image: Image.Image, size: int) -> Image.Image:
    """Decode (draft-scaled when possible), orient, convert to RGB and centre-crop to a square.

    Raises:
        OSError, SyntaxError, ValueError: Pillow's own, when the pixel data is truncated or corrupt.
    """
    if image.format == "JPEG":
        # draft() only ever reduces by 1/2, 1/4 or 1/8 while keeping both sides >= the request.
        want = size * DRAFT_OVERSAMPLE
        image.draft("RGB", (want, want))
    image = ImageOps.exif_transpose(image)
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


def preprocess(source: ImageSource, size: int, max_pixels: int = MAX_PIXELS, label: str | None = None) -> np.ndarray:
    """Return the model input for one image: uint8 array of shape (size, size, 3), raw RGB 0-255.

    `max_pixels` and `label` are passed to :func:`open_image`.

    Raises:
        ImageError: unreadable, truncated, corrupt, oversized or not an accepted format (the
            subclass says which; see open_image).
    """
    label = label or default_label(source)
    image = open_image(source, max_pixels, label=label)
    try:
        square = to_rgb_square(image, size)
        resized = square.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise ImageTooLargeError(BOMB.format(label=label, limit=max_pixels)) from None
    except (OSError, SyntaxError, ValueError):
        raise CorruptImageError(CORRUPT.format(label=label)) from None
