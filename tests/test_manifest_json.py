"""manifest.json is strict JSON, which a browser's JSON.parse reads: no NaN or Infinity."""

from __future__ import annotations

import json

from edge.manifest import _finite


def test_figures_that_are_not_numbers_are_written_as_null():
    figures = {"subgroups": [{"melanomas": 0, "melanoma_sensitivity": float("nan")}], "ratio": float("inf"), "ok": 0.5}
    written = json.dumps(_finite(figures), allow_nan=False)  # raises on any NaN left
    assert json.loads(written) == {"subgroups": [{"melanomas": 0, "melanoma_sensitivity": None}], "ratio": None, "ok": 0.5}
