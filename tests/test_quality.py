"""The photo-quality measures (edge/quality.py) are computed with OpenCV kernels and a histogram
for speed; each must stay its plain numpy definition: mean and variance of BT.601 luma, numpy's
np.percentile(luma, 99), the share of luma >= 250, and the variance of the 4-neighbour Laplacian
over the interior divided by the luma variance plus one."""

from __future__ import annotations

import numpy as np
import pytest

from edge import quality


def by_definition(image: np.ndarray) -> dict[str, float]:
    luma = image.astype(np.float64) @ quality.LUMA.astype(np.float64)
    laplacian = luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4.0 * luma[1:-1, 1:-1]
    return {"brightness": luma.mean(), "highlights": np.percentile(luma, quality.HIGHLIGHTS_PERCENTILE),
            "clipped": (luma >= quality.CLIPPED_LUMA).mean(),
            "sharpness": (laplacian.var() if laplacian.size else 0.0) / (luma.var() + quality.CONTRAST_FLOOR)}


def images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:192, 0:192]
    # A smooth lesion-like blob on skin tone: low sharpness, few clipped pixels, a lit corner.
    blob = np.exp(-((yy - 90) ** 2 + (xx - 100) ** 2) / 2000.0)
    skin = np.stack([200 - 120 * blob, 160 - 110 * blob, 140 - 100 * blob], axis=-1)
    skin[:20, :20] = 252
    return {
        "noise": rng.integers(0, 256, (192, 192, 3), dtype=np.uint8),
        "few grey levels (ties at the order statistics)": (rng.integers(0, 4, (96, 96, 3)) * 85).astype(np.uint8),
        "smooth blob": np.clip(skin + rng.normal(0, 2, skin.shape), 0, 255).astype(np.uint8),
        "bright and flat": np.full((64, 64, 3), 251, np.uint8),
        "white": np.full((96, 96, 3), 255, np.uint8),
        "black": np.zeros((96, 96, 3), np.uint8),
        "not square": rng.integers(100, 140, (40, 70, 3), dtype=np.uint8),
        "3x3": rng.integers(0, 256, (3, 3, 3), dtype=np.uint8),
        "2x2 (no interior)": rng.integers(0, 256, (2, 2, 3), dtype=np.uint8),
        "one pixel": rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
    }


@pytest.mark.parametrize("name", list(images()))
def test_measures_equal_their_definitions(name):
    image = images()[name]
    measured, expected = quality.measure(image), by_definition(image)
    assert measured["clipped"] == expected["clipped"]
    assert measured["highlights"] == pytest.approx(expected["highlights"], abs=1e-4)
    assert measured["brightness"] == pytest.approx(expected["brightness"], rel=1e-6, abs=1e-4)
    assert measured["sharpness"] == pytest.approx(expected["sharpness"], rel=1e-4, abs=1e-9)


def test_a_batch_measures_each_image_as_alone():
    rng = np.random.default_rng(5)
    batch = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    batch[2] = 128  # a flat one among them
    measured = quality.measure(batch)
    assert set(measured) == set(quality.MEASURES)
    for i, image in enumerate(batch):
        alone = quality.measure(image)
        for name in quality.MEASURES:
            assert measured[name].shape == (5,)
            assert measured[name][i] == alone[name]
    assert measured["sharpness"][2] == 0.0 and measured["sharpness"][0] > 0.0


def test_highlights_alone_equals_numpys_percentile():
    """highlights() on luma values no image gives: uniform, all 255, three levels (ties)."""
    rng = np.random.default_rng(7)
    for luma in (rng.uniform(0, 255, 5000).astype(np.float32), np.full(10, 255.0, np.float32),
                 rng.integers(0, 3, 1000).astype(np.float32) * 100):
        counts = np.bincount(luma.astype(np.uint8), minlength=256)
        assert quality.highlights(luma, counts) == pytest.approx(np.percentile(luma, 99.0), abs=1e-4)
