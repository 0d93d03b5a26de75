"""How many pixels a photo may have, by how it will be decoded: the one place that decides it.

edge/preprocess.py's open_image applies these limits from a photo's header, before a pixel is
decoded; pwa/pages.py gives the same rules to the phone's own decoder. Importing this module also
sets Pillow's own decompression-bomb guard and caps a PNG's text for the whole process.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, PngImagePlugin
from PIL.JpegImagePlugin import JpegImageFile


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
        """(limit, what messages call it) for each kind of photo (kind_of): what open_image checks, and
        what the phone's own decoder is given (pwa/pages.py), so both refuse alike."""
        return {
            "jpeg": (self.jpeg, "a JPEG"),
            "progressive_jpeg": (self.jpeg_whole, "a progressive JPEG"),
            "multiscan_jpeg": (self.jpeg_whole, "a multi-scan JPEG"),
            "reduced_jpeg": (self.jpeg_reduced, "a JPEG this long and narrow"),
            "png": (self.png, "a PNG"),
            "webp": (self.webp, "a WebP"),
        }

    def for_kind(self, kind: str, image_format: str) -> tuple[int, str]:
        """(limit, what messages call it) for a kind of kind_of()."""
        return self.rules().get(kind, (self.other, f"a {image_format}"))


def kind_of(image: Image.Image, data: bytes) -> str:
    """How an opened, not yet decoded image will be decoded, as PixelLimits.rules names it
    ("other" for a format a caller added)."""
    if isinstance(image, JpegImageFile):  # MPO too: a JPEG with more pictures after it
        if image.info.get("progressive"):
            return "progressive_jpeg"
        return "multiscan_jpeg" if has_separate_scans(image, data) else "jpeg"
    return image.format.lower() if image.format in ("PNG", "WEBP") else "other"


# The most a decode holds per pixel, by kind, measured through preprocess (PixelLimits): of the
# pixels decoded, or for a JPEG libjpeg holds whole, of those stored.
DECODE_BYTES_PER_PIXEL = {"jpeg": 9, "progressive_jpeg": 9, "multiscan_jpeg": 9, "png": 13, "webp": 20, "other": 20}
WHOLE_KINDS = ("progressive_jpeg", "multiscan_jpeg")

PIXEL_LIMITS = PixelLimits()
# Pillow's own decompression-bomb guard, for every image this process opens: it refuses twice
# this many pixels as soon as it reads the header (and warns past it; open_image then refuses
# with the limit of the photo's kind).
Image.MAX_IMAGE_PIXELS = PIXEL_LIMITS.jpeg
# Text chunks are inflated while a PNG is opened, before the pixel check: Pillow allows 64 MB of
# them. A photo's text is never read, so a megabyte is plenty.
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024


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
