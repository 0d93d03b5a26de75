"""Photo quality: is this photo usable at all, before anyone asks what it shows?

One function, :func:`measure`, reads four numbers off the model input (the preprocessed
square, so the phone, the server and the Pi measure the very same pixels):

- brightness: mean luma (ITU-R BT.601 weights), 0-255 — too bright (washed out);
- highlights: the 99th percentile of luma — the brightest parts of the photo. Too dark is judged
  on these, not on the mean: darker skin lowers the mean of a well-lit photo as much as a dim
  light does, but an underexposed photo has no bright parts at all (ARCHITECTURE.md);
- clipped: the share of pixels whose luma is at least CLIPPED_LUMA — blown-out highlights;
- sharpness: the variance of the 4-neighbour Laplacian of luma over the variance of luma — low
  when the photo is blurred (or shows nothing at all, such as a flat wall); dividing by the
  contrast keeps a dark but sharp photo from also reading as blurred.

The limits are not chosen here: the export derives them from the training images' own
percentiles and stores them in the bundle (ARCHITECTURE.md, "Honest answers").
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# A pixel this bright in every channel has lost its detail (8-bit sensors clip at 255; JPEG
# rounding leaves clipped areas a few levels below it).
CLIPPED_LUMA = 250.0
MEASURES = ("brightness", "highlights", "clipped", "sharpness")
# The percentile of luma that stands for the photo's highlights (numpy's default linear method).
HIGHLIGHTS_PERCENTILE = 99.0
# Added to the luma variance so a flat image (variance 0) reads as sharpness 0, not 0/0.
CONTRAST_FLOOR = 1.0


def measure(pixels: np.ndarray) -> dict[str, np.ndarray | float]:
    """Brightness, highlights, clipped share and sharpness of one HxWx3 uint8 image or of a batch NxHxWx3.

    Returns floats for one image, arrays of N for a batch.
    """
    single = pixels.ndim == 3
    batch = pixels[np.newaxis] if single else pixels
    luma = batch.astype(np.float32) @ LUMA  # (N, H, W)
    laplacian = (luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] + luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:]
                 - 4.0 * luma[:, 1:-1, 1:-1])
    values = {
        "brightness": luma.mean(axis=(1, 2)),
        "highlights": highlights(luma.reshape(len(luma), -1)),
        "clipped": (luma >= CLIPPED_LUMA).mean(axis=(1, 2)),
        "sharpness": laplacian.var(axis=(1, 2)) / (luma.var(axis=(1, 2)) + CONTRAST_FLOOR),
    }
    return {k: float(v[0]) for k, v in values.items()} if single else values


def highlights(luma: np.ndarray) -> np.ndarray:
    """numpy's np.percentile(luma, HIGHLIGHTS_PERCENTILE, axis=1) (its default linear method) of an
    (N, pixels) luma array, three times faster at the model's input size: the check's whole budget
    is a tenth of an int8 invoke. The two order statistics it interpolates between are found in
    the few pixels at or above their integer luma level, read off a 256-bin histogram, instead of
    partitioning every pixel. Equal to np.percentile up to float32 rounding of the interpolation."""
    count = luma.shape[1]
    position = HIGHLIGHTS_PERCENTILE / 100.0 * (count - 1)
    low = int(position)
    high = min(low + 1, count - 1)
    result = np.empty(len(luma))
    for i, row in enumerate(luma):
        at_or_below = np.cumsum(np.bincount(row.astype(np.intp), minlength=257))
        level = int(np.searchsorted(at_or_below, low, side="right"))  # the integer level holding order statistic `low`
        skipped = int(at_or_below[level - 1]) if level else 0
        top = np.partition(row[row >= level], [low - skipped, high - skipped])
        a, b = float(top[low - skipped]), float(top[high - skipped])
        result[i] = a + (b - a) * (position - low)
    return result
