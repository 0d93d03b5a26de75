"""The fake quantization of quantization-aware training: where TFLite's int8 conversion will round.

export/qat.py distils the export model into a copy quantized here. The toolkit's 8-bit scheme is
kept (its Conv + BatchNorm + ReLU patterns, weights per channel, activations per tensor) with two
additions: the scaling of raw pixels to [-1, 1] gets an output quantizer (OutputQuantized), and
depthwise kernels get one range per output channel (DepthwiseKernelQuantizer), as the converter
writes them; the toolkit's own gives the whole kernel one range (tensorflow/model-optimization#808).
Activation ranges start from calibration images (calibrate_ranges) rather than [-6, 6].
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot  # tf-keras (Keras 2) underneath; the project is Keras 3
import tf_keras
from tensorflow_model_optimization.python.core.quantization.keras import quant_ops
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_registry as registry_8bit,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_scheme as scheme_8bit,
)


class OutputQuantized(tfmot.quantization.keras.QuantizeConfig):
    """Quantize a weightless layer's output only (the Rescaling of pixels to [-1, 1])."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


class DepthwiseKernelQuantizer(tfmot.quantization.keras.quantizers.LastValueQuantizer):
    """A depthwise kernel quantized per output channel, as TFLite's converter quantizes it.

    The toolkit's own per-axis quantizer takes the kernel's last axis, which for a depthwise
    kernel (height, width, channels, multiplier) is the multiplier, 1: the whole kernel then gets
    one range (tensorflow/model-optimization#808), while the converted file has one per channel.
    MobileNetV2's first depthwise kernel spans 516 times between its channels' ranges, so training
    against the one range fitted noise the int8 file does not have."""

    def __init__(self, num_bits=8, per_axis=True, symmetric=True, narrow_range=True):
        super().__init__(num_bits=num_bits, per_axis=per_axis, symmetric=symmetric, narrow_range=narrow_range)

    def build(self, tensor_shape, name, layer):
        channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
        start = tf_keras.initializers.Constant
        return {"min_var": layer.add_weight(name + "_min", shape=(channels,), initializer=start(-6.0), trainable=False),
                "max_var": layer.add_weight(name + "_max", shape=(channels,), initializer=start(6.0), trainable=False)}

    def __call__(self, inputs, training, weights, **kwargs):
        height, width, channels, multiplier = inputs.shape
        # 4-D, as the toolkit's per-channel range needs; output channel c * multiplier + m on the last axis
        flat = tf.reshape(inputs, (height, width, 1, channels * multiplier))
        return tf.reshape(super().__call__(flat, training, weights, **kwargs), inputs.shape)


class _DepthwiseQuantizeConfig(registry_8bit.Default8BitConvQuantizeConfig):
    """The toolkit's configuration of a depthwise convolution, its kernel quantized per channel."""

    def __init__(self, weight_attrs, activation_attrs, quantize_output):
        super().__init__(weight_attrs, activation_attrs, quantize_output)
        self.weight_quantizer = DepthwiseKernelQuantizer()


class _Registry(registry_8bit.Default8BitQuantizeRegistry):
    def __init__(self):
        super().__init__()
        self._layer_quantize_map[tf_keras.layers.DepthwiseConv2D] = _DepthwiseQuantizeConfig(
            ["depthwise_kernel"], ["activation"], False)


class _Scheme(scheme_8bit.Default8BitQuantizeScheme):
    """The toolkit's 8-bit scheme (its Conv + BatchNorm + ReLU patterns kept), depthwise per channel."""

    def get_quantize_registry(self):
        return _Registry()


def quantized(student: tf_keras.Model) -> tf_keras.Model:
    """STUDENT with fake quantization as TFLite's int8 kernels will run it."""
    keras_q = tfmot.quantization.keras

    def annotate(layer):
        config = OutputQuantized() if isinstance(layer, tf_keras.layers.Rescaling) else None
        return keras_q.quantize_annotate_layer(layer, config)

    annotated = tf_keras.models.clone_model(student, clone_function=annotate)
    annotated.set_weights(student.get_weights())
    with keras_q.quantize_scope({"OutputQuantized": OutputQuantized, "_DepthwiseQuantizeConfig": _DepthwiseQuantizeConfig,
                                 "DepthwiseKernelQuantizer": DepthwiseKernelQuantizer}):
        return keras_q.quantize_apply(annotated, scheme=_Scheme())


@contextlib.contextmanager
def _range_averaging() -> Iterator[Callable[[], None]]:
    """While open, the toolkit's moving-average quantizers keep the running mean of per-batch
    ranges (decay k/(k+1) at batch k, so the first batch replaces the [-6, 6] start); the caller
    advances k after each batch. Eager calls only: a traced function keeps the decay it saw."""
    original, batches = quant_ops.MovingAvgQuantize, [0]

    def averaging(*args, **kwargs):
        kwargs["ema_decay"] = batches[0] / (batches[0] + 1.0)
        return original(*args, **kwargs)

    quant_ops.MovingAvgQuantize = averaging
    try:
        yield lambda: batches.__setitem__(0, batches[0] + 1)
    finally:
        quant_ops.MovingAvgQuantize = original


def calibrate_ranges(model: tf_keras.Model, calibration: np.ndarray, batch_size: int) -> None:
    """Set every activation range from the calibration images, weights untouched."""
    with _range_averaging() as next_batch:
        for start in range(0, len(calibration), batch_size):
            model(np.asarray(calibration[start:start + batch_size], np.float32), training=True)
            next_batch()
