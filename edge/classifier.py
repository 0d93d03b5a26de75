"""The LiteRT skin-lesion classifier: a verified bundle variant in, sorted class probabilities out.

Example usage:
    from edge import Classifier
    clf = Classifier("runs/demo/bundle")            # the bundle's default variant
    answer = clf.classify("photo.jpg")
    print(answer.status, [r.message for r in answer.reasons])
    for p in answer.predictions[:3]:
        print(p.code, p.name, f"{p.probability:.1%}")
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from edge.answer import Answer, Prediction
from edge.bundle import read_verified_model
from edge.errors import BundleError
from edge.honesty import Honesty
from edge.manifest import Manifest
from edge.preprocess import ImageSource, preprocess


def top_k(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[tuple[str, str]],
    k: int | None = None,
    threshold: float = 0.0,
) -> list[Prediction]:
    """The k most probable classes with probability >= threshold, most probable first.

    Ties keep label order, so results are deterministic.

    Raises:
        ValueError: probabilities and labels differ in length.
    """
    scores = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if len(scores) != len(labels):
        raise ValueError(f"expected {len(labels)} probabilities (one per label), got {len(scores)}")
    order = np.argsort(-scores, kind="stable")[:k]
    return [Prediction(labels[i][0], labels[i][1], float(scores[i])) for i in order if scores[i] >= threshold]


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values of a quantized tensor; the wide cast keeps uint8 - zero_point from wrapping."""
    return (values.astype(np.int32) - zero_point).astype(np.float32) * np.float32(scale)


def quantize_input(pixels: np.ndarray, dtype: type, scale: float, zero_point: int) -> np.ndarray:
    """Raw 0-255 pixels in the dtype and quantization the model's input tensor expects."""
    if np.issubdtype(dtype, np.floating):
        return pixels.astype(dtype)
    if scale == 0:
        # An unquantized integer input means raw pixels, shifted into range for int8.
        scale, zero_point = 1.0, int(np.iinfo(dtype).min)
    if dtype == np.uint8 and scale == 1.0 and zero_point == 0:
        return pixels  # the usual full-int8 export: skip a float round trip per image
    info = np.iinfo(dtype)
    quantized = np.round(pixels.astype(np.float32) / scale + zero_point)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def to_probabilities(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Output tensor to probabilities summing to 1 (quantized softmax outputs drift off 1)."""
    values = raw.reshape(-1)
    if np.issubdtype(values.dtype, np.integer):
        values = dequantize(values, scale, zero_point)
    values = np.clip(values.astype(np.float64), 0.0, None)
    total = values.sum()
    if total <= 0:
        return np.full(len(values), 1.0 / len(values))
    return values / total


class Classifier:
    """Classify skin-lesion photos with one variant of an exported bundle.

    Thread safety: one interpreter per Classifier, and a lock around set_tensor/invoke/get_tensor.
    Decoding and preprocessing (the slow part for phone photos) run outside the lock, so
    concurrent requests still overlap; the invoke itself already uses ``num_threads`` cores.
    One shared instance may be used from any number of threads.
    """

    def __init__(self, bundle_dir: str | Path, variant: str | None = None, num_threads: int | None = None):
        """Load and verify a bundle variant (None: the bundle's default_variant).

        Raises:
            BundleError: folder or manifest missing, manifest not JSON, unknown schema version,
                preprocessing mismatch, unknown variant, model file missing, sha256 mismatch,
                model not loadable by LiteRT, or label count different from the model output width.
        """
        self.bundle_dir = Path(bundle_dir)
        self.manifest = Manifest.load(self.bundle_dir)
        self.variant = variant or self.manifest.default_variant
        self.variant_info = self.manifest.variant(self.variant)
        self.sha256 = self.variant_info.sha256
        self.labels = self.manifest.labels
        self.input_size = self.manifest.input_size
        model = read_verified_model(self.bundle_dir, self.variant_info)
        self._interpreter = self._load_interpreter(model, num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output, self._features = self._find_outputs()
        self.honesty = Honesty(self.bundle_dir, self.manifest.honesty_for(self.variant), self.manifest.feature_width,
                               len(self.labels))
        self._lock = threading.Lock()

    def _load_interpreter(self, model: bytes, num_threads: int | None) -> Interpreter:
        try:
            interpreter = Interpreter(model_content=model, num_threads=num_threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise BundleError(f"{self.variant_info.file}: LiteRT cannot load it: {err}") from None
        return interpreter

    def _find_outputs(self) -> tuple[dict, dict]:
        """(probabilities, features) output details, told apart by their width as the manifest gives it."""
        name = self.variant_info.file
        expected_input = [1, self.input_size, self.input_size, 3]
        if list(self._input["shape"]) != expected_input:
            raise BundleError(f"{name}: model input shape {list(self._input['shape'])}, manifest says {expected_input}")
        by_width = {int(o["shape"][-1]): o for o in self._interpreter.get_output_details()}
        if len(self.labels) not in by_width:
            raise BundleError(f"{name}: the model outputs {sorted(by_width)} values but the manifest lists "
                              f"{len(self.labels)} labels")
        if self.manifest.feature_width not in by_width or len(by_width) != 2:
            raise BundleError(f"{name}: expected two outputs, {len(self.labels)} probabilities and "
                              f"{self.manifest.feature_width} features; the model has widths {sorted(by_width)}")
        return by_width[len(self.labels)], by_width[self.manifest.feature_width]

    def preprocess(self, image: ImageSource) -> np.ndarray:
        """The model input for one image: uint8 (size, size, 3), raw RGB.

        Raises:
            ImageError: unreadable, truncated, corrupt or oversized image.
        """
        return preprocess(image, self.input_size)

    def classify(self, image: ImageSource) -> Answer:
        """The answer for a path, encoded bytes, PIL image or uint8 array: status, reasons, predictions.

        Raises:
            ImageError: unreadable, truncated, corrupt or oversized image.
        """
        return self.classify_array(self.preprocess(image))

    def classify_array(self, pixels: np.ndarray) -> Answer:
        """The answer for an already preprocessed uint8 (size, size, 3) array.

        Raises:
            ValueError: the array is not uint8 of shape (size, size, 3).
        """
        probabilities, features = self.run(pixels)
        return self.honesty.decide(pixels, probabilities, features, top_k(probabilities, self.labels), self.manifest.codes)

    def predict_array(self, pixels: np.ndarray) -> list[Prediction]:
        """Every class for a preprocessed array, most probable first, without the honesty checks."""
        return top_k(self.run(pixels)[0], self.labels)

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's calibrated probabilities (label order) and pooled features for one image."""
        shape = (self.input_size, self.input_size, 3)
        if pixels.dtype != np.uint8 or pixels.shape != shape:
            raise ValueError(f"expected a uint8 array of shape {shape}, got {pixels.dtype} {pixels.shape}")
        scale, zero_point = self._input["quantization"]
        batch = quantize_input(pixels, self._input["dtype"], scale, zero_point)[np.newaxis]
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._output["index"])
            raw_features = self._interpreter.get_tensor(self._features["index"])
        features = raw_features.reshape(-1)
        if np.issubdtype(features.dtype, np.integer):
            features = dequantize(features, *self._features["quantization"])
        return to_probabilities(raw, *self._output["quantization"]), features.astype(np.float32)
