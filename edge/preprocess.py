"""The one image preprocessing function shared by training, export, the edge runner and the server.

Every stage that turns a photo into model input calls :func:`preprocess`, so training, int8
calibration, the Raspberry Pi runner and the web server all see byte-identical pixels.
Normalization is *not* done here: it is a layer inside the model, which takes raw RGB 0-255.

What a photo may be is decided here too, once, by :func:`open_image`: the format allow-list, the
HEIC advice, the pixel limits (PixelLimits) and corrupt data, each raised as its own edge.errors type with the
message the user sees (the web API only maps those types to HTTP statuses).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

from edge.errors import CorruptImageError, ImageError, ImageTooLargeError, UnsupportedImageError
from edge.photo_limits import DECODE_BYTES_PER_PIXEL, PIXEL_LIMITS, WHOLE_KINDS, PixelLimits, kind_of

__all__ = [
    "ACCEPTED_FORMATS", "PIXEL_LIMITS", "PREPROCESSING_NAME", "ImageError", "ImageSource", "PixelLimits", "open_image",
    "preprocess",
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
TOO_MANY_PIXELS = "{label} is {width}x{height} pixels, over the limit of {limit:,} for {kind}: send a smaller photo."
BOMB = "{label} has far too many pixels (limit {limit:,}): send a smaller photo."

ImageSource = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray


def is_heif(data: bytes) -> bool:
    """True for an ISO-BMFF file with a HEIC/HEIF brand (what an iPhone saves by default)."""
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def open_image(source: ImageSource, limits: PixelLimits = PIXEL_LIMITS, formats: tuple[str, ...] = ACCEPTED_FORMATS,
               label: str | None = None) -> Image.Image:
    """Open a path, encoded bytes, a PIL image or an HxWx3 / HxW uint8 array, without decoding pixels yet.

    Encoded input must be one of `formats` and within its `limits`. `label` names the input in
    messages (default: the path, or "image data").

    Raises:
        UnsupportedImageError: not an image, or a format outside `formats` (HEIC named with advice).
        CorruptImageError: empty, or a header too damaged to read.
        ImageTooLargeError: more pixels than `limits` allow its kind (or past Pillow's guard).
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
    return _open_checked(data, limits, formats, label)[0]


def _open_checked(data: bytes, limits: PixelLimits, formats: tuple[str, ...], label: str) -> tuple[Image.Image, str]:
    if not data:
        raise CorruptImageError(EMPTY.format(label=label))
    image = _open_encoded(data, formats, label)
    kind = kind_of(image, data)
    limit, name = limits.for_kind(kind, image.format)
    if image.width * image.height > limit:
        raise ImageTooLargeError(
            TOO_MANY_PIXELS.format(label=label, width=image.width, height=image.height, limit=limit, kind=name))
    return image, kind


def open_for_model(source: bytes, size: int, limits: PixelLimits = PIXEL_LIMITS, label: str = "image data",
                   formats: tuple[str, ...] = ACCEPTED_FORMATS) -> tuple[Image.Image, int]:
    """Encoded bytes opened and checked (open_image) and set to decode at the smallest size the
    format allows (reduce_on_decode), nothing decoded yet; with the most memory the decode may take.

    Raises:
        ImageError: see open_image and reduce_on_decode.
    """
    image, kind = _open_checked(source, limits, formats, label)
    stored = image.width * image.height
    reduce_on_decode(image, size, limits, label)
    pixels = stored if kind in WHOLE_KINDS else image.width * image.height
    return image, pixels * DECODE_BYTES_PER_PIXEL[kind]


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


def _open_encoded(data: bytes, formats: tuple[str, ...], label: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Past MAX_IMAGE_PIXELS Pillow only warns: open_image's own check refuses such a photo.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(formats))
    except UnidentifiedImageError:
        raise UnsupportedImageError((HEIF if is_heif(data) else UNSUPPORTED).format(label=label)) from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(BOMB.format(label=label, limit=Image.MAX_IMAGE_PIXELS)) from None
    except (OSError, SyntaxError, ValueError):
        raise CorruptImageError(CORRUPT.format(label=label)) from None


def reduce_on_decode(image: Image.Image, size: int, limits: PixelLimits = PIXEL_LIMITS, label: str = "the image") -> None:
    """Have a JPEG decoded at the smallest scale its draft mode allows (1/2, 1/4 or 1/8, never
    below DRAFT_OVERSAMPLE x size), and refuse one that would still decode too large.

    Raises:
        ImageTooLargeError: the reduced size is over limits.jpeg_reduced (a long, thin JPEG).
    """
    if not isinstance(image, JpegImageFile) or not image.tile:  # not a JPEG, or already decoded
        return
    stored = image.size
    want = size * DRAFT_OVERSAMPLE
    image.draft("RGB", (want, want))
    if image.width * image.height > limits.jpeg_reduced:
        limit, kind = limits.rules()["reduced_jpeg"]
        raise ImageTooLargeError(TOO_MANY_PIXELS.format(label=label, width=stored[0], height=stored[1],
                                                        limit=limit, kind=kind))


def to_rgb_square(image: Image.Image, in_place: bool = False) -> Image.Image:
    """Decode, orient, centre-crop to a square and convert to RGB.

    Cropped before converting (the same pixels, as conversion works pixel by pixel) and, with
    `in_place` (an image nobody else holds), oriented without a copy: a full-size decode is then
    held about once rather than three times.

    Raises:
        OSError, SyntaxError, ValueError: Pillow's own, when the pixel data is truncated or corrupt.
    """
    if in_place:
        ImageOps.exif_transpose(image, in_place=True)
    else:
        image = ImageOps.exif_transpose(image)
    side = min(image.size)
    if image.width != image.height:
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def preprocess(source: ImageSource, size: int, limits: PixelLimits = PIXEL_LIMITS, label: str | None = None,
               around_decode: Callable[[int], AbstractContextManager] | None = None) -> np.ndarray:
    """Return the model input for one image: uint8 array of shape (size, size, 3), raw RGB 0-255.

    `limits` and `label` are passed to :func:`open_image`. For encoded bytes, `around_decode(bytes)`
    (if given) is entered around the decode with the most memory it may take (the server's decode
    slots, pwa/decoding.py).

    Raises:
        ImageError: unreadable, truncated, corrupt, oversized or not an accepted format (the
            subclass says which; see open_image and reduce_on_decode).
    """
    label = label or default_label(source)
    if isinstance(source, (bytes, bytearray)):
        image, cost = open_for_model(bytes(source), size, limits, label)
    else:
        image, cost = open_image(source, limits, label=label), 0
        reduce_on_decode(image, size, limits, label)
    with around_decode(cost) if around_decode else contextlib.nullcontext():
        return decode_for_model(image, size, label, in_place=image is not source)


def decode_for_model(image: Image.Image, size: int, label: str, in_place: bool = False) -> np.ndarray:
    """Decode an opened image into the model input (to_rgb_square, then Pillow's bilinear resize).

    Raises:
        ImageTooLargeError: past Pillow's guard while decoding.
        CorruptImageError: the pixel data is truncated or corrupt.
    """
    try:
        square = to_rgb_square(image, in_place=in_place)
        resized = square.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise ImageTooLargeError(BOMB.format(label=label, limit=Image.MAX_IMAGE_PIXELS)) from None
    except (OSError, SyntaxError, ValueError):
        raise CorruptImageError(CORRUPT.format(label=label)) from None
