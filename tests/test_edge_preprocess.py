"""edge.preprocess.open_image: the one place that decides what a photo may be, with typed errors."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from bench.bombs import mpo_bomb, png_bomb, png_text_bomb, progressive_jpeg, sequential_jpeg, webp_bomb
from edge.errors import CorruptImageError, ImageError, ImageTooLargeError, UnsupportedImageError
from edge.preprocess import PixelLimits, open_for_model, open_image, preprocess
from tests.pwa_helpers import jpeg_bytes, synthetic_photo


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


def test_pixel_limits_and_label_are_the_callers():
    with pytest.raises(ImageTooLargeError) as caught:
        open_image(encoded("PNG"), PixelLimits(png=1000), label="The photo")
    assert str(caught.value) == "The photo is 40x30 pixels, over the limit of 1,000 for a PNG: send a smaller photo."
    assert open_image(encoded("JPEG"), PixelLimits(png=1000)).size == (40, 30)  # a JPEG has its own


# One bomb per kind, each a few KB to 1 MB that claims far more pixels than its kind may have.
BOMBS = [
    pytest.param(lambda: png_bomb(2237, 2237), "2237x2237 pixels, over the limit of 5,000,000 for a PNG", id="png"),
    pytest.param(lambda: png_bomb(2300, 2300, "RGBA"), "2300x2300 pixels, over the limit of 5,000,000 for a PNG",
                 id="png-rgba"),
    pytest.param(lambda: webp_bomb(1733, 1733), "1733x1733 pixels, over the limit of 3,000,000 for a WebP", id="webp"),
    pytest.param(lambda: progressive_jpeg(2829, 2829),
                 "2829x2829 pixels, over the limit of 8,000,000 for a progressive JPEG", id="progressive-jpeg"),
    pytest.param(lambda: sequential_jpeg(3000, 3000, components=3, separate_scans=True),
                 "3000x3000 pixels, over the limit of 8,000,000 for a multi-scan JPEG", id="multi-scan-jpeg"),
    pytest.param(lambda: sequential_jpeg(8001, 8000), "8001x8000 pixels, over the limit of 64,000,000 for a JPEG",
                 id="jpeg"),
    pytest.param(lambda: sequential_jpeg(60000, 300),
                 "60000x300 pixels, over the limit of 8,000,000 for a JPEG this long and narrow", id="thin-jpeg"),
    pytest.param(lambda: sequential_jpeg(12000, 11000), "has far too many pixels (limit 64,000,000)",
                 id="past-pillows-guard"),
]


@pytest.mark.parametrize(("make", "message"), BOMBS)
def test_every_kind_of_bomb_is_refused_with_its_limit_before_decoding(make, message):
    with pytest.raises(ImageTooLargeError) as caught:
        preprocess(make(), 224, label="The photo")
    assert str(caught.value) == f"The photo {'is ' if 'x' in message.split()[0] else ''}{message}: send a smaller photo."


def test_photos_just_within_each_limit_are_classified():
    # The other side of every limit above: same kinds, a little smaller, decoded to model input.
    for data in (png_bomb(2236, 2236), webp_bomb(1732, 1732), progressive_jpeg(2828, 2828),
                 sequential_jpeg(2828, 2828, components=3, separate_scans=True), sequential_jpeg(8000, 8000),
                 sequential_jpeg(60000, 1000)):
        assert preprocess(data, 96).shape == (96, 96, 3)


def test_an_mpo_is_a_jpeg_decoded_at_draft_scale():
    # Pillow calls it "MPO", not "JPEG"; decoded at full size, a 36 MP one took 415 MB.
    pixels = preprocess(mpo_bomb(3000, 2000), 96)
    assert pixels.shape == (96, 96, 3)
    image = open_image(mpo_bomb(3000, 2000))
    image.draft("RGB", (192, 192))
    assert (image.format, image.size) == ("MPO", (375, 250))  # the draft reduces it 8 times


def test_a_png_with_megabytes_of_text_is_refused_as_unreadable():
    with pytest.raises(CorruptImageError):
        open_image(png_text_bomb(chunks=4, chunk_bytes=400_000))
    assert open_image(png_text_bomb(chunks=2, chunk_bytes=400_000)).size == (64, 64)


def test_the_format_list_is_the_callers():
    with pytest.raises(UnsupportedImageError):
        open_image(encoded("PNG"), formats=("JPEG",))
    assert open_image(encoded("GIF"), formats=("GIF",)).format == "GIF"


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(ImageError, match=f"cannot open {tmp_path / 'no.jpg'}: No such file or directory"):
        open_image(tmp_path / "no.jpg")


def test_the_memory_a_decode_may_take_is_known_before_decoding():
    # Bytes per pixel by kind (edge/photo_limits.py): of the pixels decoded, for a progressive JPEG
    # of those stored. A phone's 12 MP JPEG is decoded at a quarter of each side for 224 px.
    phone = jpeg_bytes(synthetic_photo(1, (4032, 3024)))
    cases = [(phone, 1008 * 756 * 9), (png_bomb(2000, 1000, "LA"), 2000 * 1000 * 13),
             (webp_bomb(1000, 1000), 1000 * 1000 * 20), (progressive_jpeg(2000, 1500), 2000 * 1500 * 9)]
    for data, expected in cases:
        assert open_for_model(data, 224)[1] == expected
