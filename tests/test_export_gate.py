"""The export gate's arithmetic (export/verify.py, training/metrics.py), without TensorFlow: where a quantized variant's
top-1 disagreements with float32 sit, and which figures refuse a variant."""

from __future__ import annotations

import numpy as np
import pytest

from export import verify
from training import metrics


def _rows(*rows):
    return np.array(rows, dtype=np.float64)


def test_disagreements_are_counted_by_float32s_margin_and_ties_found():
    reference = _rows([0.50, 0.48, 0.02],   # margin 0.02: near-tie
                      [0.45, 0.42, 0.13],   # margin 0.03: near-tie
                      [0.55, 0.45, 0.00],   # margin 0.10
                      [0.90, 0.05, 0.05],   # margin 0.85
                      [0.80, 0.10, 0.10])   # margin 0.70
    variant = _rows([0.48, 0.50, 0.02],     # flipped
                    [0.45, 0.42, 0.13],     # kept
                    [0.5, 0.5, 0.0],        # tied: argmax takes class 0, float32's, so it agrees
                    [0.10, 0.85, 0.05],     # flipped far from a tie
                    [0.75, 0.15, 0.10])     # kept
    found = metrics.disagreements(variant, reference)
    assert [(b["margin"], b["images"], b["disagree"]) for b in found["bands"]] == [
        ([0.0, 0.05], 2, 1), ([0.05, 0.2], 1, 0), ([0.2, 1.0], 2, 1)]
    assert found["ties"] == 1
    assert sum(b["disagree"] for b in found["bands"]) == (variant.argmax(1) != reference.argmax(1)).sum()


def test_disagreements_read_as_a_sentence():
    found = metrics.disagreements(_rows([0.6, 0.4]), _rows([0.4, 0.6]))
    assert metrics.describe_disagreements("int8", found) == (
        "int8: top-1 disagreements with float32 on validation, by float32's margin between its two largest "
        "probabilities: 0 of 0 with a margin of 0-0.05; 1 of 1 with a margin of 0.05-0.2; 0 of 0 with a margin "
        "of 0.2-1; 0 images with int8's two largest probabilities equal")


def _validation(top1=1.0, ece=0.03, balanced=0.70, **agreements):
    return {"top1_agreement": top1, "ece": ece, "balanced_accuracy": balanced, "max_probability_difference": 0.0,
            **agreements}


@pytest.mark.parametrize(("int8", "refused_for"), [
    (_validation(top1=0.94), "top-1 agreement with float32 on validation is 94.0%"),
    (_validation(referral_agreement=0.934), "refers to a doctor as float32 does for 93.4%"),
    (_validation(ece=0.058), "validation calibration error 0.058 is 0.028 above float32's"),
    (_validation(balanced=0.665), "3.5 points below float32"),
])
def test_the_gate_refuses_each_figure_on_its_own(int8, refused_for):
    problems = verify.failures({"float32": _validation(), "int8": int8}, 0.70, max_drop_points=3.0,
                               min_agreement=0.95, float32_tolerance=1e-4, max_ece_rise=0.02)
    assert len(problems) == 1 and problems[0].startswith("int8: ") and refused_for in problems[0]
    assert verify.failures({"float32": _validation(), "int8": _validation(top1=0.95, ece=0.049, balanced=0.671)},
                           0.70, 3.0, 0.95, 1e-4, 0.02) == []
