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
  contrast keeps a dark but sharp photo from also reading as blurred. The Laplacian is taken
  where all four neighbours exist (the border row and column are left out).

The limits are not chosen here: the export derives them from the training images' own
percentiles and stores them in the bundle (ARCHITECTURE.md, "Honest answers").

The measures run on every answer, and their budget is a tenth of an int8 invoke (about 0.1 ms
at 192 px on a desktop CPU), so each is computed with OpenCV's vectorized kernels and passes as
few as the definitions allow: luma once in float32; mean and variance in two passes (cv2.mean,
then the squared norm of the deviations, accumulated in double); the clipped share and the
highlights' level from one 256-bin histogram of the luma's integer parts. tests/test_quality.py
holds each definition written plainly in numpy and checks these against it.
"""

from __future__ import annotations

import cv2
import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# A pixel this bright in every channel has lost its detail (8-bit sensors clip at 255; JPEG
# rounding leaves clipped areas a few levels below it). A whole number: the clipped share is
# read off the histogram of the luma's integer parts.
CLIPPED_LUMA = 250
MEASURES = ("brightness", "highlights", "clipped", "sharpness")
# The percentile of luma that stands for the photo's highlights (numpy's default linear method).
HIGHLIGHTS_PERCENTILE = 99.0
# Added to the luma variance so a flat image (variance 0) reads as sharpness 0, not 0/0.
CONTRAST_FLOOR = 1.0


def measure(pixels: np.ndarray) -> dict[str, np.ndarray | float]:
    """Brightness, highlights, clipped share and sharpness of one HxWx3 uint8 image or of a batch NxHxWx3.

    Returns floats for one image, arrays of N for a batch.
    """
    if pixels.ndim == 3:
        return dict(zip(MEASURES, _measure_one(pixels), strict=True))
    rows = np.array([_measure_one(image) for image in pixels], dtype=np.float64).reshape(len(pixels), len(MEASURES))
    return {name: rows[:, i] for i, name in enumerate(MEASURES)}


def _measure_one(image: np.ndarray) -> tuple[float, float, float, float]:
    luma = cv2.transform(np.ascontiguousarray(image, dtype=np.float32), LUMA[np.newaxis])
    if luma.ndim == 3:  # OpenCV keeps a trailing axis for a 1x1 image
        luma = luma[..., 0]
    brightness, luma_variance = mean_and_variance(luma)
    if min(luma.shape) >= 3:
        laplacian = cv2.Laplacian(luma, cv2.CV_32F, ksize=1)[1:-1, 1:-1]  # kernel 0 1 0 / 1 -4 1 / 0 1 0
        laplacian_variance = mean_and_variance(laplacian)[1]
    else:  # no pixel has four neighbours
        laplacian_variance = 0.0
    # Luma lies in [0, 255] (plus float32 rounding), so its integer part indexes 256 bins.
    counts = cv2.calcHist([luma.astype(np.uint8)], [0], None, [256], [0, 256]).reshape(-1)
    clipped = float(counts[CLIPPED_LUMA:].sum()) / luma.size
    sharpness = laplacian_variance / (luma_variance + CONTRAST_FLOOR)
    return brightness, highlights(luma, counts), clipped, sharpness


def mean_and_variance(values: np.ndarray) -> tuple[float, float]:
    """Mean and population variance of a float32 array, accumulated in double (two passes, so a
    bright flat photo's variance does not drown in its mean)."""
    mean = cv2.mean(values)[0]
    deviations = cv2.subtract(values, mean)
    return mean, cv2.norm(deviations, cv2.NORM_L2SQR) / values.size


def highlights(luma: np.ndarray, counts: np.ndarray) -> float:
    """numpy's np.percentile(luma, HIGHLIGHTS_PERCENTILE) (its default linear method) of one
    image's luma, several times faster: the two order statistics it interpolates between are found
    in the few pixels at or above their integer luma level, read off COUNTS (the 256-bin histogram
    of the luma's integer parts), instead of partitioning every pixel. Equal to np.percentile up to
    float32 rounding of the interpolation."""
    values = luma.reshape(-1)
    count = values.size
    position = HIGHLIGHTS_PERCENTILE / 100.0 * (count - 1)
    low = int(position)
    high = min(low + 1, count - 1)
    at_or_below = np.cumsum(counts)
    level = int(np.searchsorted(at_or_below, low, side="right"))  # the integer level holding order statistic `low`
    skipped = int(at_or_below[level - 1]) if level else 0
    top = np.partition(values[values >= level], [low - skipped, high - skipped])
    a, b = float(top[low - skipped]), float(top[high - skipped])
    return a + (b - a) * (position - low)
