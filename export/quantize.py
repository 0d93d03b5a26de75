"""TFLite conversion recipes, one named constructor per variant.

Conversion always goes SavedModel (``model.export``) -> ``TFLiteConverter.from_saved_model``:
``from_concrete_functions`` produces a silently broken model here (ARCHITECTURE.md, "Export").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from export import VARIANTS


@dataclass(frozen=True)
class Quantization:
    """How one variant is converted."""

    name: str
    optimize: bool = False
    float16: bool = False
    representative_data: Callable[[], Iterator[list[np.ndarray]]] | None = None

    @classmethod
    def for_float32(cls) -> Quantization:
        return cls("float32")

    @classmethod
    def for_float16(cls) -> Quantization:
        # Without Optimize.DEFAULT the float16 type request is ignored and the file equals float32.
        return cls("float16", optimize=True, float16=True)

    @classmethod
    def for_dynamic(cls) -> Quantization:
        """int8 weights, float activations: smaller, not necessarily faster."""
        return cls("dynamic_int8", optimize=True)

    @classmethod
    def for_int8(cls, representative_data: Callable[[], Iterator[list[np.ndarray]]]) -> Quantization:
        """Full integer: uint8 raw pixels in, uint8 probabilities out, int8 kernels throughout."""
        if representative_data is None:
            raise ValueError("full int8 needs representative (calibration) data")
        return cls("int8", optimize=True, representative_data=representative_data)

    def converter(self, saved_model: Path) -> tf.lite.TFLiteConverter:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        if self.optimize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if self.float16:
            converter.target_spec.supported_types = [tf.float16]
        if self.representative_data is not None:
            converter.representative_dataset = self.representative_data
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        return converter

    def convert(self, saved_model: Path) -> bytes:
        return self.converter(saved_model).convert()


def calibration_data(pixels: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Representative dataset of raw 0-255 pixels, exactly as the edge feeds the model."""

    def generate() -> Iterator[list[np.ndarray]]:
        for image in pixels:
            yield [image[np.newaxis].astype(np.float32)]

    return generate


def recipe(name: str, calibration: np.ndarray | None) -> Quantization:
    """The Quantization for a variant name.

    Raises:
        ValueError: unknown variant, or int8 without calibration images.
    """
    if name == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("full int8 needs calibration images")
        return Quantization.for_int8(calibration_data(calibration))
    makers = {"float32": Quantization.for_float32, "float16": Quantization.for_float16,
              "dynamic_int8": Quantization.for_dynamic}
    if name not in makers:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return makers[name]()
