"""The photo-quality highlights (edge/quality.py): the 99th percentile of luma, found from a
histogram for speed, must stay numpy's np.percentile."""

from __future__ import annotations

import numpy as np

from edge import quality


def test_highlights_equal_numpys_percentile():
    """quality.highlights is np.percentile(..., 99) found faster: the same value on noise, on few
    grey levels (ties at the order statistics), on flat images, at 255, on a batch and on one pixel."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
              (rng.integers(0, 4, (96, 96, 3)) * 85).astype(np.uint8),
              np.full((96, 96, 3), 255, np.uint8), np.zeros((96, 96, 3), np.uint8),
              rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)]
    for image in images:
        luma = (image.astype(np.float32) @ quality.LUMA).reshape(1, -1)
        expected = np.percentile(luma, quality.HIGHLIGHTS_PERCENTILE, axis=1)
        np.testing.assert_allclose(quality.highlights(luma), expected, rtol=0, atol=1e-4)
    batch = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    luma = (batch.astype(np.float32) @ quality.LUMA).reshape(5, -1)
    np.testing.assert_allclose(quality.measure(batch)["highlights"], np.percentile(luma, 99.0, axis=1), atol=1e-4)
