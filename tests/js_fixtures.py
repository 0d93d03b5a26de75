"""Expected values for the front end's pure on-device code, computed by the Python implementation
itself (Pillow's resize, edge.quality, edge.honesty, the server's refusals of hostile photos),
written as JSON for tests/js/*.test.mjs.

tests/test_pwa_js.py writes the file and passes its path in LESIONLITE_JS_FIXTURE, so the JS is
held to the very code the server runs, not to numbers copied by hand.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from bench import bombs
from edge import answer, quality
from edge.errors import ImageError
from edge.honesty import Honesty
from edge.labels import CLASSES, MALIGNANT
from edge.manifest import HonestyInfo
from edge.preprocess import PIXEL_LIMITS, preprocess
from pwa.api import PHOTO
from pwa.pages import photo_limits
from tests.pwa_helpers import gif_bytes, heic_header, jpeg_bytes, png_header_only, synthetic_photo

RESIZES = [(300, 96), (225, 96), (97, 96), (192, 96), (50, 96), (451, 128), (96, 96)]
FEATURES = 16
HONESTY_ARRAYS = ("whitening", "whitened_means", "dense_kernel", "dense_bias")


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()


def resize_cases(rng: np.random.Generator) -> list[dict]:
    """Random squares (smooth and noisy) and what Pillow's bilinear resize makes of them."""
    cases = []
    for side, size in RESIZES:
        noise = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        ramp = np.linspace(0, 255, side)[:, None, None] * np.ones((1, side, 3))
        for pixels in (noise, ramp.astype(np.uint8)):
            resized = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR))
            cases.append({"side": side, "size": size, "input": b64(pixels), "output": b64(resized)})
    return cases


def test_images(rng: np.random.Generator, size: int = 96) -> dict[str, np.ndarray]:
    """Images that exercise each quality measure: noise, flat, dark, blown out, near the clipped level."""
    noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    near_clip = rng.integers(247, 256, (size, size, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, 3))
    return {
        "noise": noise,
        "flat": np.full((size, size, 3), 140, np.uint8),
        "dark": (noise // 8).astype(np.uint8),
        "bright": np.clip(noise.astype(int) + 200, 0, 255).astype(np.uint8),
        "near_clip": near_clip,
        "ramp": ramp.astype(np.uint8),
        "lesion_like": np.clip(150 + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8),
    }


def honesty_arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "whitening": rng.normal(0, 0.3, (FEATURES, FEATURES)).astype("<f4"),
        "whitened_means": rng.normal(0, 1, (len(CLASSES), FEATURES)).astype("<f4"),
        "dense_kernel": rng.normal(0, 0.5, (FEATURES, len(CLASSES))).astype("<f4"),
        "dense_bias": rng.normal(0, 0.1, (len(CLASSES),)).astype("<f4"),
    }


def honesty_bin(arrays: dict[str, np.ndarray]) -> tuple[bytes, dict]:
    chunks, layout, offset = [], {}, 0
    for name in HONESTY_ARRAYS:
        layout[name] = {"offset": offset, "shape": list(arrays[name].shape)}
        chunks.append(arrays[name].tobytes())
        offset += arrays[name].nbytes
    return b"".join(chunks), layout


def honesty_info(layout: dict, score: str) -> HonestyInfo:
    return HonestyInfo(
        file="honesty.bin", bytes=0, sha256="", arrays=layout, temperature=1.0,
        ood={"score": score, "threshold": {"mahalanobis": 30.0, "msp": 0.6, "energy": -1.5}[score]},
        quality={"highlights_min": 60.0, "brightness_max": 200.0, "clipped_max": 0.05, "sharpness_min": 0.05},
        melanoma={"threshold": 0.2}, low_confidence_below=0.5)


def honesty_for(info: HonestyInfo, arrays: dict[str, np.ndarray]) -> Honesty:
    """edge.honesty.Honesty with its arrays given rather than read from a bundle folder."""
    honesty = Honesty.__new__(Honesty)
    honesty.info = info
    honesty.arrays = {name: values.astype(np.float64) for name, values in arrays.items()}
    return honesty


def ood_score(kind: str, layout: dict, arrays: dict[str, np.ndarray], features: np.ndarray) -> float:
    """edge/honesty.py's score of one kind for these features, as decide() reports it."""
    honesty = honesty_for(honesty_info(layout, kind), arrays)
    uniform = np.full(len(CLASSES), 1 / len(CLASSES))
    pixels = np.full((8, 8, 3), 128, np.uint8)
    return honesty.decide(pixels, uniform, features, [], [c for c, _ in CLASSES]).checks["ood_score"]


def decision_cases(rng: np.random.Generator, images: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
                   layout: dict) -> list[dict]:
    """Python's answer for each image, score and model output (its reason codes and its JSON keys);
    the outputs are drawn so that every status and reason appears."""
    cases = []
    for score in ("mahalanobis", "msp", "energy"):
        info = honesty_info(layout, score)
        honesty = honesty_for(info, arrays)
        for name, pixels in images.items():
            for scale in (0.2, 3.0):
                features = (rng.normal(0, scale, FEATURES)).astype(np.float32)
                logits = rng.normal(0, 3 * scale, len(CLASSES))
                probabilities = np.exp(logits) / np.exp(logits).sum()
                said = honesty.decide(pixels, probabilities, features, [], [c for c, _ in CLASSES])
                cases.append({
                    "score": score, "image": name, "honesty": asdict(info),
                    "features": features.tolist(), "probabilities": probabilities.tolist(),
                    "status": said.status, "reasons": [r.code for r in said.reasons], "checks": said.checks,
                    "keys": list(said.to_dict()),
                })
    return cases


HEADER_BYTES = 64 * 1024  # the phone reads only a photo's header; its SOS comes within the first kilobytes


def webp_with_exif(width: int, height: int) -> bytes:
    """A WebP whose first chunk is VP8X (extended: here for its EXIF), which holds the canvas size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, "WEBP", lossless=True, exif=Image.Exif().tobytes())
    return buffer.getvalue()


def photo_refusal_cases() -> list[dict]:
    """Hostile and ordinary photos with what the server answers for each: its message refusing
    it, or None when it classifies it (preprocess at 224 and 96 px, the server's own code)."""
    photos = {
        "png-over": png_header_only(3000, 2000), "png-within": bombs.png_bomb(2236, 2236),
        "webp-lossless-over": bombs.webp_bomb(1733, 1733), "webp-vp8x-over": webp_with_exif(1800, 1700),
        "webp-lossy-within": _webp_lossy(1200, 900),
        "jpeg-progressive-over": bombs.progressive_jpeg(2829, 2829), "jpeg-progressive-within": bombs.progressive_jpeg(900, 700),
        "jpeg-multiscan-over": bombs.sequential_jpeg(3000, 3000, components=3, separate_scans=True),
        "jpeg-over": bombs.sequential_jpeg(8001, 8000), "jpeg-within": bombs.sequential_jpeg(8000, 8000),
        "jpeg-thin": bombs.sequential_jpeg(60000, 300), "jpeg-thin-at-224-only": bombs.sequential_jpeg(60000, 800),
        "jpeg-past-guard": bombs.sequential_jpeg(12000, 11000), "jpeg-photo": jpeg_bytes(synthetic_photo(2)),
        "mpo": bombs.mpo_bomb(900, 600), "gif": gif_bytes(), "heic": heic_header(), "text": b"not a photo\n" * 10,
    }
    cases = []
    for name, data in photos.items():
        for size in (224, 96):
            try:
                preprocess(data, size, label=PHOTO)
                refusal = None
            except ImageError as err:
                refusal = str(err)
            cases.append({"name": name, "size": size, "header": b64bytes(data[:HEADER_BYTES]), "refusal": refusal})
    return cases


def _webp_lossy(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    synthetic_photo(3, (width, height)).save(buffer, "WEBP", quality=80)
    return buffer.getvalue()


def b64bytes(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(path: Path, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    images = test_images(rng)
    arrays = honesty_arrays(rng)
    content, layout = honesty_bin(arrays)
    features = [rng.normal(0, 1, FEATURES).astype(np.float32) for _ in range(5)]
    fixture = {
        "resize": resize_cases(rng),
        "quality": [{"name": n, "pixels": b64(p), "size": p.shape[0], **quality.measure(p)} for n, p in images.items()],
        "images": {n: b64(p) for n, p in images.items()},
        "honesty_bin": base64.b64encode(content).decode(),
        "layout": layout,
        "arrays": {n: a.astype(np.float64).ravel().tolist() for n, a in arrays.items()},
        "ood": [{"features": f.tolist(), **{kind: ood_score(kind, layout, arrays, f) for kind in ("mahalanobis", "energy")}}
                for f in features],
        "decisions": decision_cases(rng, images, arrays, layout),
        "labels": [{"code": c, "name": n} for c, n in CLASSES],
        "messages": answer.MESSAGES,
        "malignant": list(MALIGNANT),
        "answer": {"unassessed": answer.UNASSESSED, "doctor_reasons": list(answer.DOCTOR_REASONS),
                   "with_output_only": list(answer.WITH_OUTPUT_ONLY), "statuses": list(answer.STATUSES),
                   "output_keys": {status: answer.json_name("predictions", status) for status in answer.STATUSES}},
        "photo_limits": photo_limits(PIXEL_LIMITS),
        "photo_refusals": photo_refusal_cases(),
    }
    path.write_text(json.dumps(fixture))
    return path
