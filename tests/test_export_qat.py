"""Full int8 by quantization-aware training (export/qat.py, export/qat_scheme.py): an exact
tf-keras copy, ranges from the calibration images, a converted file that answers as its
fake-quantized model, and the export's gate applied to it as to any variant."""

from __future__ import annotations

import functools
import json
import re
import shutil

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.conftest import ARTIFACTS, built_once, run_module, source_hash


@functools.cache
def _export_model(arch: str, alpha: float, size: int, layers: tuple[str, ...], seed: int = 1):
    """A calibrated export model (temperature 1.7) of an untrained MobileNet with random head weights
    (built once per module: the tests only read it)."""
    import keras

    from export.calibrated import export_model
    from training.config import resolve
    from training.model import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(resolve("demo", {"arch": arch, "alpha": str(alpha), "image_size": str(size),
                                         "weights": "none"}))
    return export_model(model, 1.7, list(layers))


def _pixels(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random photos spanning 0..255 (a gradient plus noise), as uint8."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size, dtype=np.float32)[None, :, None, None]
    noise = rng.normal(0, 40, (n, size, size, 3)).astype(np.float32)
    return np.clip(ramp.transpose(0, 2, 1, 3) * 0.5 + ramp * 0.5 + noise, 0, 255).astype(np.uint8)


@pytest.mark.tf
@pytest.mark.parametrize(("arch", "alpha", "layers"), [
    ("mobilenet_v2", 0.35, ("block_6_expand_relu",)),
    ("mobilenet", 0.25, ("conv_pw_5_relu", "pool")),
])
def test_the_tf_keras_rebuild_answers_as_the_export_model(arch, alpha, layers):
    from export import qat

    export = _export_model(arch, alpha, 64, layers)
    student = qat.rebuild(export, arch, alpha, list(layers))
    pixels = _pixels(4, 64).astype(np.float32)
    theirs, ours = export.predict(pixels, verbose=0), student.predict(pixels, verbose=0)
    for expected, got in zip(theirs, ours, strict=True):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert qat.check_rebuild(export, student, pixels) <= qat.REBUILD_TOLERANCE


@pytest.mark.tf
def test_a_rebuild_with_other_weights_is_refused():
    from export import qat

    export = _export_model("mobilenet_v2", 0.35, 64, ("block_6_expand_relu",))
    student = qat.rebuild(export, "mobilenet_v2", 0.35, ["block_6_expand_relu"])
    kernel, bias = student.get_layer("calibrated_probabilities").get_weights()
    student.get_layer("calibrated_probabilities").set_weights([kernel, bias + np.eye(len(bias))[0]])
    with pytest.raises(qat.QatError, match="differs from the export model"):
        qat.check_rebuild(export, student, _pixels(4, 64))


@pytest.fixture(scope="module")
def quantized_and_file(tmp_path_factory):
    """An untrained MobileNetV2's fake-quantized model, its ranges calibrated, and its int8 file."""
    from export import qat, qat_scheme

    export = _export_model("mobilenet_v2", 0.35, 64, ("block_6_expand_relu",))
    model = qat_scheme.quantized(qat.rebuild(export, "mobilenet_v2", 0.35, ["block_6_expand_relu"]))
    before = _ranges(model, "quant_to_minus1_1")
    qat_scheme.calibrate_ranges(model, _pixels(64, 64), batch_size=16)
    content = qat.convert(model, tmp_path_factory.mktemp("qat"))
    return model, content, before


def _ranges(model, layer: str) -> tuple[float, float]:
    """The output range a wrapped layer's quantizer holds."""
    weights = {w.name.split("/")[-1].split(":")[0]: float(w.numpy()) for w in model.get_layer(layer).weights
               if "output_max" in w.name or "output_min" in w.name}
    return weights["output_min"], weights["output_max"]


@pytest.mark.tf
def test_calibration_replaces_the_toolkits_start_ranges_by_the_images_ranges(quantized_and_file):
    model, _, before = quantized_and_file
    assert before == (-6.0, 6.0)
    low, high = _ranges(model, "quant_to_minus1_1")  # raw pixels 0..255 scaled to [-1, 1]
    assert low == pytest.approx(-1.0, abs=0.01)
    assert high == pytest.approx(1.0, abs=0.01)


@pytest.mark.tf
def test_a_depthwise_kernel_is_fake_quantized_per_channel_as_the_converter_quantizes_it(quantized_and_file):
    """A kernel whose two channels differ 500 times in scale: one range per channel keeps the small
    channel within half a step of its own range; the toolkit's own quantizer (one range for the
    whole kernel, tensorflow/model-optimization#808) rounds it to zero."""
    import tensorflow as tf
    import tf_keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantizers

    from export import qat_scheme

    rng = np.random.default_rng(0)
    kernel = np.stack([rng.uniform(-1, 1, (3, 3)), rng.uniform(-0.002, 0.002, (3, 3))], -1)[..., None]  # 3x3x2x1
    small = kernel[:, :, 1, 0]

    def fake_quantized(quantizer):
        weights = quantizer.build(kernel.shape, "depthwise_kernel", tf_keras.layers.Layer())
        return quantizer(tf.constant(kernel, tf.float32), True, weights).numpy()[:, :, 1, 0]

    ours = fake_quantized(qat_scheme.DepthwiseKernelQuantizer())
    assert np.abs(ours - small).max() <= np.abs(small).max() / 127 / 2 + 1e-7
    assert np.abs(fake_quantized(default_8bit_quantizers.Default8BitConvWeightsQuantizer())).max() == 0
    model, _, _ = quantized_and_file  # and the export's fake-quantized MobileNetV2 uses it
    depthwise = model.get_layer("quant_expanded_conv_depthwise")
    assert [tuple(w.shape) for w in depthwise.weights if w.name.endswith("depthwise_kernel_min:0")] == [
        (depthwise.layer.depthwise_kernel.shape[2],)]


@pytest.mark.tf
def test_the_int8_file_answers_as_its_fake_quantized_model(quantized_and_file):
    model, content, _ = quantized_and_file
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    given = interpreter.get_input_details()[0]
    assert given["dtype"] == np.uint8 and given["quantization"] == (1.0, 0)
    outputs = {int(o["shape"][-1]): o for o in interpreter.get_output_details()}
    assert all(o["dtype"] == np.uint8 for o in outputs.values())
    probabilities = outputs[7]
    pixels = _pixels(16, 64, seed=3)
    expected = model.predict(pixels.astype(np.float32), verbose=0)[0]
    for image, reference in zip(pixels, expected, strict=True):
        interpreter.set_tensor(given["index"], image[None])
        interpreter.invoke()
        scale, zero = probabilities["quantization"]
        got = (interpreter.get_tensor(probabilities["index"])[0].astype(np.float32) - zero) * scale
        # The fake-quantized model emulates the integer kernels: a few output steps (1/256) at most.
        np.testing.assert_allclose(got, reference, atol=4 * scale)


@pytest.mark.tf
def test_distillation_keeps_the_epoch_that_agrees_best_with_float32_on_validation():
    """Trained towards class 1 while validation asks for class 0, the model agrees less every epoch:
    the weights kept are the best epoch's, not the last one's."""
    import tf_keras

    from export import qat

    tf_keras.utils.set_random_seed(0)
    pixels = tf_keras.Input((8, 8, 3))
    mean = tf_keras.layers.GlobalAveragePooling2D()(tf_keras.layers.Rescaling(1 / 255)(pixels))
    # Starts sure of class 0 (bias 3 above the rest); Adam from 0.1, falling to 0, gets it past class 1.
    head = tf_keras.layers.Dense(7, activation="softmax", kernel_initializer="zeros",
                                 bias_initializer=tf_keras.initializers.Constant([3, 0, 0, 0, 0, 0, 0]))
    model = tf_keras.Model(pixels, [head(mean), tf_keras.layers.Dense(4)(mean)])
    images = _pixels(64, 8, seed=5)
    towards, reference = np.eye(7, dtype=np.float32)[[1] * 64], np.eye(7, dtype=np.float32)[[0] * 64]
    logged: list[str] = []
    made = qat.distil(model, images, towards, qat.QatSettings(epochs=4, learning_rate=0.1, batch_size=16),
                      (images, reference), logged.append)
    agreements = made["validation_top1_agreement"]
    assert len(agreements) == 4 and len(made["distillation_loss"]) == 4
    assert agreements[0] > agreements[-1]  # the scenario: later epochs are worse
    assert made["kept_epoch"] == int(np.argmax(agreements)) + 1 < 4
    assert qat._agreement(model, images, reference) == pytest.approx(max(agreements), abs=1e-5)
    assert any("top-1 agreement with float32 on validation" in line for line in logged)
    # The rate fell along the cosine: the last of the 4 x 4 steps ran at 0.1 * (1 + cos(15/16 pi)) / 2.
    assert int(model.optimizer.iterations) == 16
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05 * (1 + np.cos(15 / 16 * np.pi)), rel=1e-4)


@pytest.fixture(scope="module")
def qat_bundle(request, tiny_run):
    """The tiny run exported with float32 and an int8 made by one epoch of quantization-aware training."""
    key = source_hash("export.__main__", "export.qat", "tests.reproducible", extra=f"{tiny_run} qat")

    def build(tmp):
        shutil.copytree(tiny_run, tmp / "run", ignore=shutil.ignore_patterns("bundle"))
        result = run_module("tests.reproducible", "export", str(tmp / "run"), "--variants", "float32,int8",
                            "--calibration-images", "200", "--qat-epochs", "1", timeout=1200)
        (tmp / "stdout.txt").write_text(result.stdout)

    return built_once(ARTIFACTS / f"qat-bundle-{key}", build)


@pytest.mark.trained
def test_quantization_aware_int8_passes_the_gate_and_says_how_it_was_made(qat_bundle):
    manifest = json.loads((qat_bundle / "run" / "bundle" / "manifest.json").read_text())
    int8 = manifest["variants"]["int8"]
    assert manifest["default_variant"] == "int8"
    assert (int8["input_dtype"], int8["output_dtype"], int8["features_dtype"]) == ("uint8", "uint8", "uint8")
    made = int8["conversion"]
    assert made["method"].startswith("quantization-aware training")
    assert made["learning_rate_schedule"] == "cosine decay to 0 over all epochs"
    assert made["epochs"] == 1 and len(made["distillation_loss"]) == 1 and made["distillation_loss"][0] > 0
    assert made["kept_epoch"] == 1 and made["validation_top1_agreement"][0] >= 0.5
    assert made["rebuild_max_difference"] <= 1e-4
    assert made["training_images"] > 0
    validation = int8["metrics"]["validation"]
    assert validation["top1_agreement"] >= 0.95  # the export's own gate (it exited 0)
    stdout = (qat_bundle / "stdout.txt").read_text()
    assert "int8 by quantization-aware training: 1 epoch(s)" in stdout
    assert "quantization-aware epoch 1/1: distillation loss" in stdout
    assert "top-1 agreement with float32 on validation" in stdout
    # where the disagreements sit: the bands cover every validation image and add up to the gate's figure
    line = next(x for x in stdout.splitlines() if x.startswith("int8: top-1 disagreements with float32"))
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+) of (\d+) with a margin", line)]
    images = int(re.search(r"gate: (\d+) validation images", stdout).group(1))
    assert len(counts) == 3 and sum(b for _, b in counts) == images
    assert sum(a for a, _ in counts) == round((1 - validation["top1_agreement"]) * images)
