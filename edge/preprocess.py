"""The one image preprocessing function shared by training, export, the edge runner and the server.

Every stage that turns a photo into model input calls :func:`preprocess`, so training, int8
calibration, the Raspberry Pi runner and the web server all see byte-identical pixels.
Normalization is *not* done here: it is a layer inside the model, which takes raw RGB 0-255.

What a photo may be is decided here too, once, by :func:`open_image`: the format allow-list, the
HEIC advice, the pixel limits (PixelLimits) and corrupt data, each raised as its own edge.errors type with the
message the user sees (the web API only maps those types to HTTP statuses).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

from edge.errors import CorruptImageError, ImageError, ImageTooLargeError, UnsupportedImageError

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


@dataclass(frozen=True)
class PixelLimits:
    """How many pixels a photo may have, by how it is decoded; checked from the header, before any
    pixel is decoded (ARCHITECTURE.md, "Memory bounded by design").

    The model needs 224x224 (50 thousand pixels). Memory follows the pixels decoded, not the
    bytes. Measured through preprocess() (bench/bombs.py's files), a PNG costs 5-13 bytes per
    pixel and a WebP 16-20 (libwebp's two canvases and Pillow's copy), because both are decoded at
    full size; a baseline JPEG is decoded at 1/2 to 1/8 scale (draft mode) and costs little,
    unless libjpeg must hold all its DCT coefficients (progressive, or one scan per component:
    2-9 bytes per stored pixel whatever the draft). Each limit keeps one decode under about 64 MB.
    """

    jpeg: int = 64_000_000  # a baseline JPEG's stored pixels: more than any phone's 50 MP
    jpeg_reduced: int = 8_000_000  # what its draft decode still holds: a long, thin JPEG reduces little
    jpeg_whole: int = 8_000_000  # a JPEG libjpeg buffers whole (progressive, or a scan per component)
    png: int = 5_000_000  # decoded at full size: 2560x1920 and more
    webp: int = 3_000_000  # decoded at full size: 2000x1500 and more
    other: int = 3_000_000  # a format a caller adds to `formats` (GIF, BMP, TIFF are decoded at full size)

    def rules(self) -> dict[str, tuple[int, str]]:
        """(limit, what messages call it) for each kind of photo: what for_encoded picks from, and
        what the phone's own decoder is given (pwa/pages.py), so both refuse alike."""
        return {
            "jpeg": (self.jpeg, "a JPEG"),
            "progressive_jpeg": (self.jpeg_whole, "a progressive JPEG"),
            "multiscan_jpeg": (self.jpeg_whole, "a multi-scan JPEG"),
            "reduced_jpeg": (self.jpeg_reduced, "a JPEG this long and narrow"),
            "png": (self.png, "a PNG"),
            "webp": (self.webp, "a WebP"),
        }

    def for_encoded(self, image: Image.Image, data: bytes) -> tuple[int, str]:
        """(limit, what messages call it) for an opened, not yet decoded image."""
        if isinstance(image, JpegImageFile):  # MPO too: a JPEG with more pictures after it
            if image.info.get("progressive"):
                return self.rules()["progressive_jpeg"]
            return self.rules()["multiscan_jpeg" if has_separate_scans(image, data) else "jpeg"]
        if image.format in ("PNG", "WEBP"):
            return self.rules()[image.format.lower()]
        return self.other, f"a {image.format}"


PIXEL_LIMITS = PixelLimits()
# Pillow's own decompression-bomb guard, for every image this process opens: it refuses twice
# this many pixels as soon as it reads the header (and warns past it; open_image then refuses
# with the limit of the photo's kind).
Image.MAX_IMAGE_PIXELS = PIXEL_LIMITS.jpeg
# Text chunks are inflated while a PNG is opened, before the pixel check: Pillow allows 64 MB of
# them. A photo's text is never read, so a megabyte is plenty.
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024

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
    if not data:
        raise CorruptImageError(EMPTY.format(label=label))
    image = _open_encoded(data, formats, label)
    limit, kind = limits.for_encoded(image, data)
    if image.width * image.height > limit:
        raise ImageTooLargeError(
            TOO_MANY_PIXELS.format(label=label, width=image.width, height=image.height, limit=limit, kind=kind))
    return image


def has_separate_scans(image: JpegImageFile, data: bytes) -> bool:
    """True for a JPEG whose first scan carries fewer components than its frame (a scan per
    component, or no scan at all): libjpeg then keeps every DCT coefficient, as for a progressive
    one, and draft mode saves nothing."""
    components = first_scan_components(data)
    return components is None or components < image.layers


def first_scan_components(data: bytes) -> int | None:
    """The component count of a JPEG's first scan (its SOS header), or None if there is none."""
    at = 2
    while at + 4 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker == 0xDA:
            return data[at + 4]
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
        else:
            at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return None


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


def preprocess(source: ImageSource, size: int, limits: PixelLimits = PIXEL_LIMITS, label: str | None = None) -> np.ndarray:
    """Return the model input for one image: uint8 array of shape (size, size, 3), raw RGB 0-255.

    `limits` and `label` are passed to :func:`open_image`.

    Raises:
        ImageError: unreadable, truncated, corrupt, oversized or not an accepted format (the
            subclass says which; see open_image and reduce_on_decode).
    """
    label = label or default_label(source)
    image = open_image(source, limits, label=label)
    reduce_on_decode(image, size, limits, label)
    try:
        square = to_rgb_square(image, in_place=image is not source)
        resized = square.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise ImageTooLargeError(BOMB.format(label=label, limit=Image.MAX_IMAGE_PIXELS)) from None
    except (OSError, SyntaxError, ValueError):
        raise CorruptImageError(CORRUPT.format(label=label)) from None
