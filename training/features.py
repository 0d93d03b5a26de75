"""The model's outputs that honest answers use: probabilities and globally averaged activations.

Out-of-distribution detection works best on features that still describe the photo itself
(colour, texture, edges): on the demo data, Mahalanobis distance on the mid-level block
conv_pw_5 separated non-lesion photos from lesions with AUROC 1.000 where the final pooled
features reached 0.947 (ARCHITECTURE.md, "Honest answers"). So the evaluation compares several
layers and the export ships the one it chose as the model's second output.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from training.model import BASE_NAME

# Candidate layers per architecture: two mid-level blocks, one at 1/8 and one at 1/16 of the input
# side, and the final pooled features ("pool"). In MobileNetV2 the expansions are the wide
# activations (192 and 384 channels at alpha 1), as v1's pointwise outputs are (256 and 512).
MID_LAYERS = {"mobilenet": ("conv_pw_5_relu", "conv_pw_7_relu"),
              "mobilenet_v2": ("block_6_expand_relu", "block_10_expand_relu")}


def candidate_layers(arch: str) -> tuple[str, ...]:
    return (*MID_LAYERS[arch], "pool")


def graph(model, layers: tuple[str, ...]):
    """(input, pooled features, {layer: globally averaged activations}) as a new graph on the
    trained model's layers (shared weights; BatchNorm in inference mode; dropout left out)."""
    import keras

    base = model.get_layer(BASE_NAME)
    mids = [name for name in layers if name != "pool"]
    sub = keras.Model(base.input, [base.get_layer(name).output for name in mids] + [base.output])
    outs = sub(model.get_layer("to_minus1_1")(model.input), training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    pooled = model.get_layer("pool")(outs[-1])
    averaged = {name: keras.layers.GlobalAveragePooling2D(name=f"gap_{name}")(out)
                for name, out in zip(mids, outs[:-1], strict=True)}
    return model.input, pooled, {**averaged, "pool": pooled}


def model_for(model, layers: tuple[str, ...]):
    """A Keras model: pixels -> [softmax probabilities, *globally averaged activations of LAYERS]."""
    import keras

    inputs, pooled, averaged = graph(model, layers)
    probabilities = model.get_layer("probabilities")(pooled)
    return keras.Model(inputs, [probabilities, *[averaged[name] for name in layers]])


def float_chunks(pixels, size: int = 256) -> Iterator[np.ndarray]:
    """The images as float32 arrays of at most SIZE: a HAM10000-sized split (a lazy cache view or
    an array) is never one float32 array (8,000 images at 224 px would be 4.8 GB)."""
    for start in range(0, len(pixels), size):
        yield np.asarray(pixels[start:start + size], np.float32)


def extract(model, pixels, layers: tuple[str, ...], batch_size: int, built=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(softmax probabilities, {layer: (N, width) features}) of the trained model, in chunks.

    BUILT is model_for(model, layers) when the caller extracts several times (one graph, no retracing)."""
    both = built or model_for(model, layers)
    probs, feats = [], {name: [] for name in layers}
    for chunk in float_chunks(pixels):
        out = both.predict(chunk, batch_size=batch_size, verbose=0)
        probs.append(out[0])
        for name, values in zip(layers, out[1:], strict=True):
            feats[name].append(values)
    widths = {name: int(both.output[i + 1].shape[-1]) for i, name in enumerate(layers)}
    return (np.concatenate(probs) if probs else np.zeros((0, 7)),
            {name: np.concatenate(v) if v else np.zeros((0, widths[name])) for name, v in feats.items()})
