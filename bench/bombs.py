"""Hostile photos: decompression bombs in every format the server accepts, cheap to make.

Each is a valid file that Pillow (and a browser) would decode if asked: a few kilobytes that
claim tens of millions of pixels. They are built without holding their pixels in memory where
the format allows (PNG rows are streamed through zlib; the JPEGs are written by hand, one flat
grey block repeated), so the process making them stays small; a WebP needs Pillow's encoder.
Used by `python -m bench hostile`, the soak test and the browser test of the phone's path.

Example usage:
    from bench.bombs import png_bomb, sequential_jpeg
    png_bomb(8000, 8000)                         # 79 KB, 64 MP of grey
    sequential_jpeg(8000, 8000, separate_scans=True)  # a baseline JPEG libjpeg must buffer whole
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, PngImagePlugin

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int, mode: str = "L") -> bytes:
    """A flat PNG of width x height, greyscale ("L"), grey with alpha ("LA": the costliest to turn
    into RGB) or RGBA, whose rows are streamed through zlib."""
    colour_type, channels = {"L": (0, 1), "LA": (4, 2), "RGBA": (6, 4)}[mode]
    row = b"\0" + b"\x80" * (width * channels)  # filter type 0, then mid-grey (or translucent grey)
    packer = zlib.compressobj(9)
    compressed = [packer.compress(row) for _ in range(height)] + [packer.flush()]
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(compressed))
            + _png_chunk(b"IEND", b""))


def png_text_bomb(chunks: int = 60, chunk_bytes: int = 1_000_000) -> bytes:
    """A small, ordinary PNG carrying `chunks` zTXt chunks that each inflate to `chunk_bytes`:
    memory spent on text before a pixel is decoded."""
    info = PngImagePlugin.PngInfo()
    for i in range(chunks):
        info.add_text(f"note{i}", "x" * chunk_bytes, zip=True)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 150, 120)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def webp_bomb(width: int, height: int) -> bytes:
    """A flat lossless WebP (a few KB). Pillow's encoder needs the pixels: about 4 bytes each here."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def progressive_jpeg(width: int, height: int) -> bytes:
    """A flat progressive JPEG: libjpeg keeps every DCT coefficient of a progressive image until
    the last scan, whatever size it is asked to decode at. Pillow's encoder needs the pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 120, 110)).save(buffer, "JPEG", quality=50, progressive=True)
    return buffer.getvalue()


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def sequential_jpeg(width: int, height: int, components: int = 1, separate_scans: bool = False) -> bytes:
    """A flat mid-grey baseline JPEG, written block by block without an encoder.

    Every 8x8 block is "DC difference 0, end of block": two bits with one-code Huffman tables, so
    64 MP take 250 KB. With `separate_scans` each of the (three) components has its own scan: still
    a baseline (SOF0) file, but one that libjpeg, like a progressive one, must buffer whole.
    """
    blocks = -(-width // 8) * -(-height // 8)
    ids = range(1, components + 1)
    frame = struct.pack(">BHHB", 8, height, width, components) + b"".join(bytes([i, 0x11, 0]) for i in ids)
    one_code = bytes([1] + [0] * 15) + b"\0"  # a single code of length 1, for the value 0
    head = (b"\xff\xd8" + _segment(0xFFDB, b"\0" + b"\x01" * 64) + _segment(0xFFC0, frame)
            + _segment(0xFFC4, b"\x00" + one_code) + _segment(0xFFC4, b"\x10" + one_code))
    scans = [[i] for i in ids] if separate_scans else [list(ids)]
    body = b""
    for scan in scans:
        selectors = b"".join(bytes([i, 0x00]) for i in scan)
        data = bytes(-(-(2 * blocks * len(scan)) // 8))  # all zero bits: no 0xFF byte to stuff
        body += _segment(0xFFDA, bytes([len(scan)]) + selectors + b"\x00\x3f\x00") + data
    return head + body + b"\xff\xd9"


def mpo_bomb(width: int, height: int) -> bytes:
    """A two-frame MPO (a JPEG with a second picture, as some cameras save): Pillow names it "MPO",
    and a decoder that drafts only what is called "JPEG" decodes it at full size."""
    buffer = io.BytesIO()
    first = Image.new("RGB", (width, height), (128, 120, 110))
    first.save(buffer, "MPO", save_all=True, append_images=[Image.new("RGB", (64, 64))], quality=50)
    return buffer.getvalue()


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first `keep` of a file, as an interrupted upload leaves it."""
    return data[: int(len(data) * keep)]
