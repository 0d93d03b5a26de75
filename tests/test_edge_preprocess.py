"""edge.preprocess.open_image: the one place that decides what a photo may be, with typed errors."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from edge.errors import CorruptImageError, ImageError, ImageTooLargeError, UnsupportedImageError
from edge.preprocess import open_image, preprocess


def encoded(fmt: str, size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 150, 120)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_open_without_decoding(fmt):
    image = open_image(encoded(fmt))
    assert (image.format, image.size) == (fmt, (40, 30))


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (encoded("GIF"), UnsupportedImageError,
         "image data is not an image format LesionLite reads: send a JPEG or PNG."),
        (encoded("BMP"), UnsupportedImageError,
         "image data is not an image format LesionLite reads: send a JPEG or PNG."),
        (struct.pack(">I", 24) + b"ftypheic" + b"\0" * 40, UnsupportedImageError,
         "image data is HEIC/HEIF, which LesionLite cannot read: send a JPEG or PNG "
         "(on an iPhone: Settings > Camera > Formats > Most Compatible)."),
        (b"", CorruptImageError, "image data is empty (0 bytes): take or choose it again."),
        (encoded("JPEG")[:60], CorruptImageError, "image data is corrupt or truncated: take or send the photo again."),
    ],
)
def test_refusals_are_typed_with_the_users_message(data, error, message):
    with pytest.raises(error) as caught:
        preprocess(data, 32)
    assert str(caught.value) == message
    assert isinstance(caught.value, ImageError)


def test_pixel_limit_and_label_are_the_callers():
    with pytest.raises(ImageTooLargeError) as caught:
        open_image(encoded("PNG"), max_pixels=1000, label="The photo")
    assert str(caught.value) == "The photo is 40x30 pixels, over the limit of 1,000: send a smaller photo."


def test_the_format_list_is_the_callers():
    with pytest.raises(UnsupportedImageError):
        open_image(encoded("PNG"), formats=("JPEG",))
    assert open_image(encoded("GIF"), formats=("GIF",)).format == "GIF"


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(ImageError, match=f"cannot open {tmp_path / 'no.jpg'}: No such file or directory"):
        open_image(tmp_path / "no.jpg")
