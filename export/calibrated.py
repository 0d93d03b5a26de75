"""The model that ships: calibrated probabilities and the pooled features, from one invoke.

The trained model outputs softmax(f W + b). The exported one outputs softmax(f W/T + b/T), the
temperature-calibrated probabilities (1/T folded into the last layer, so int8 gets it too), and
the features the evaluation chose for the out-of-distribution check (training/features.py). Dropout is the identity at
inference and is left out. The input signature is fixed at batch 1: LiteRT.js refuses a dynamic
batch, and every runtime classifies one photo at a time.
"""

from __future__ import annotations

import numpy as np

from edge.manifest import HonestyInfo

# The arrays edge/honesty.py may read from honesty.bin, in file order (the chosen score says which
# are present: mahalanobis the first two, energy the last two, msp none).
HONESTY_ARRAYS = ("whitening", "whitened_means", "dense_kernel", "dense_bias")
HONESTY_FILE = "honesty.bin"


def export_model(model, temperature: float, layers: list[str]):
    """A Keras model: uint8-range pixels -> [calibrated probabilities, features of LAYERS]."""
    import keras

    from training.features import graph

    inputs, pooled, averaged = graph(model, tuple(dict.fromkeys([*layers, "pool"])))
    kernel, bias = model.get_layer("probabilities").get_weights()
    dense = keras.layers.Dense(len(bias), activation="softmax", name="calibrated_probabilities")
    probabilities = dense(pooled)
    dense.set_weights([kernel / temperature, bias / temperature])
    chosen = [averaged[name] for name in layers]
    feats = chosen[0] if len(chosen) == 1 else keras.layers.Concatenate(name="ood_features")(chosen)
    return keras.Model(inputs, [probabilities, feats], name="lesionlite_calibrated")


def probabilities(model, pixels) -> np.ndarray:
    """The calibrated export model's probabilities (its first output) on PIXELS, a chunk at a time."""
    from training.features import float_chunks

    chunks = [model.predict(chunk, batch_size=32, verbose=0)[0] for chunk in float_chunks(pixels)]
    return np.concatenate(chunks) if chunks else np.zeros((0, model.output[0].shape[-1]), np.float32)


def save_for_conversion(model, folder, image_size: int) -> None:
    """SavedModel with a fixed batch-1 signature (ARCHITECTURE.md, "Export")."""
    import tensorflow as tf

    signature = [tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="pixels")]
    model.export(str(folder), verbose=False, input_signature=signature)


def honesty_bytes(arrays: dict[str, np.ndarray]) -> tuple[bytes, dict[str, dict]]:
    """honesty.bin's content (little-endian float32, one array after another) and its layout."""
    chunks, layout, offset = [], {}, 0
    for name in (n for n in HONESTY_ARRAYS if n in arrays):
        values = np.ascontiguousarray(arrays[name], dtype="<f4")
        layout[name] = {"offset": offset, "shape": list(values.shape)}
        chunks.append(values.tobytes())
        offset += values.nbytes
    return b"".join(chunks), layout


def honesty_info(params: dict, content: bytes, layout: dict, sha256: str) -> HonestyInfo:
    return HonestyInfo(file=HONESTY_FILE, bytes=len(content), sha256=sha256, arrays=layout,
                       temperature=params["temperature"], ood=params["ood"], quality=params["quality"],
                       melanoma=params["melanoma"], low_confidence_below=params["low_confidence_below"])
