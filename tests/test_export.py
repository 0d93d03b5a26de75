"""Export: four LiteRT variants in one verified bundle, and nothing half-written on failure."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from edge.errors import run_cli
from edge.labels import CODES
from edge.manifest import SCHEMA_VERSION
from edge.preprocess import preprocess
from tests.conftest import PYTHON, ROOT, run_module

pytestmark = pytest.mark.trained
VARIANTS = ("float32", "float16", "dynamic_int8", "int8")


@pytest.fixture(scope="module")
def manifest(tiny_bundle) -> dict:
    return json.loads((tiny_bundle / "manifest.json").read_text())


def _invoke(path, pixels: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = next(o for o in interpreter.get_output_details() if o["shape"][-1] == len(CODES))
    interpreter.set_tensor(inp["index"], pixels[np.newaxis].astype(inp["dtype"]))
    interpreter.invoke()
    raw = interpreter.get_tensor(out["index"])[0]
    scale, zero_point = out["quantization"]
    return (raw.astype(np.int32) - zero_point) * scale if scale else raw


def test_every_variant_loads_in_litert_and_classifies(tiny_bundle, sample_images):
    pixels = preprocess(sample_images[0], 96)
    for name in VARIANTS:
        probs = _invoke(tiny_bundle / f"{name}.tflite", pixels)
        assert probs.shape == (len(CODES),)
        assert abs(float(probs.sum()) - 1) < 0.02, (name, probs)


def test_manifest_describes_the_bundle(manifest, tiny_bundle):
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["default_variant"] == "int8"
    honesty = manifest["honesty"]
    assert honesty["file"] == "honesty.bin" and (tiny_bundle / "honesty.bin").stat().st_size == honesty["bytes"]
    assert manifest["outputs"]["probabilities"] == 7
    assert manifest["outputs"]["features"] == sum(
        [honesty["ood"]["compared"][honesty["ood"]["kept"]]["feature_width"]])
    assert [label["code"] for label in manifest["labels"]] == list(CODES)
    assert manifest["labels"][4] == {"code": "mel", "name": "Melanoma"}
    assert manifest["input"]["size"] == 96 and "raw RGB 0-255" in manifest["input"]["dtype"]
    assert manifest["preprocessing"] == "lesionlite-v1"
    assert set(manifest["variants"]) == set(VARIANTS)
    int8 = manifest["variants"]["int8"]
    assert int8["input_dtype"] == "uint8" and int8["output_dtype"] == "uint8"
    assert int8["output_quantization"]["scale"] > 0
    assert manifest["variants"]["float32"]["input_quantization"] is None
    for entry in manifest["variants"].values():
        for key in ("accuracy", "balanced_accuracy", "per_class_recall", "top1_agreement", "max_probability_difference"):
            assert key in entry["metrics"]
        assert set(entry["metrics"]["per_class_recall"]) == set(CODES)
        assert entry["conversion"]["seconds"] > 0
    assert manifest["source_run"]["metrics"]["balanced_accuracy"] >= 0.8


def test_hashes_and_sizes_match_the_files(manifest, tiny_bundle):
    for entry in manifest["variants"].values():
        data = (tiny_bundle / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
        own = entry.get("honesty")  # a quantized variant's honest-answer arrays fitted on its own outputs
        if own is not None:
            data = (tiny_bundle / own["file"]).read_bytes()
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (own["sha256"], own["bytes"])
    quantized = [v for v in VARIANTS if v != "float32"]
    assert sorted(p.name for p in tiny_bundle.iterdir()) == sorted(
        ["manifest.json", "honesty.bin", *(f"{v}.tflite" for v in VARIANTS), *(f"honesty-{v}.bin" for v in quantized)])


def test_float32_equals_keras_on_real_inputs(tiny_bundle, sample_images):
    """float32 reproduces the trained Keras model, calibrated: softmax(log p / T)."""
    import keras

    from training.calibration import scaled

    model = keras.models.load_model(tiny_bundle.parent / "model.keras", compile=False)
    temperature = json.loads((tiny_bundle / "manifest.json").read_text())["honesty"]["temperature"]
    pixels = np.stack([preprocess(p, 96) for p in sample_images])
    expected = scaled(model.predict(pixels.astype(np.float32), verbose=0), temperature)
    for image, want in zip(pixels, expected, strict=True):
        assert np.abs(_invoke(tiny_bundle / "float32.tflite", image) - want).max() <= 1e-4


def test_int8_agrees_with_float32_and_keeps_balanced_accuracy(manifest):
    int8, float32 = manifest["variants"]["int8"]["metrics"], manifest["variants"]["float32"]["metrics"]
    assert int8["top1_agreement"] >= 0.95
    assert int8["validation"]["top1_agreement"] >= 0.95 and int8["validation"]["decision_agreement"] >= 0.95
    assert float32["balanced_accuracy"] - int8["balanced_accuracy"] <= 0.03
    assert float32["max_probability_difference"] <= 1e-4 and float32["top1_agreement"] == 1.0


def test_int8_file_is_at_most_35_percent_of_float32(manifest):
    variants = manifest["variants"]
    assert variants["int8"]["bytes"] <= 0.35 * variants["float32"]["bytes"]
    assert variants["float16"]["bytes"] <= 0.6 * variants["float32"]["bytes"]  # not silently float32


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def run_copy(tiny_bundle, tmp_path):
    shutil.copytree(tiny_bundle.parent, tmp_path / "run")
    return tmp_path / "run"


def test_interrupted_export_leaves_the_old_bundle_intact(run_copy):
    before = _digest(run_copy / "bundle")
    with subprocess.Popen([PYTHON, "-m", "export", str(run_copy)], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}) as proc:
        deadline = time.monotonic() + 300
        killed_after = None
        for line in proc.stdout:  # kill it between two conversions
            if line.startswith("converted float16") or time.monotonic() > deadline:
                killed_after = line.strip()
                break
        proc.send_signal(signal.SIGKILL)
    assert killed_after is not None and killed_after.startswith("converted float16"), killed_after
    assert _digest(run_copy / "bundle") == before
    assert not (run_copy / "bundle").is_symlink()


def test_failed_verification_keeps_the_old_bundle(run_copy, monkeypatch, capsys):
    from export import __main__ as cli
    from export import verify

    before = _digest(run_copy / "bundle")
    monkeypatch.setattr(verify, "failures", lambda *a, **k: ["float32 differs from Keras by 1.00e-02"])
    assert run_cli(cli.main, [str(run_copy), "--variants", "float32"]) == 2
    err = capsys.readouterr().err
    assert "verification failed, previous bundle kept" in err and "--variants" not in err  # float32 itself failed
    assert _digest(run_copy / "bundle") == before
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".bundle")]


@pytest.mark.parametrize(("args", "message"), [
    (["{missing}"], "does not exist"),
    (["{unfinished}"], "is not a finished run: model.keras"),
    (["{run}", "--variants", "float32,int4"], "unknown variant(s) int4; choose from float32, float16, dynamic_int8, int8"),
    (["{run}", "--calibration-images", "0"], "--calibration-images must be at least 1"),
    (["{run}", "--qat-epochs", "-1"], "--qat-epochs must not be negative, got -1"),
    (["{run}", "--qat-epochs", "1", "--variants", "float32"], "--qat-epochs makes the int8 variant"),
    (["{run}", "--data", "{missing}"], "missing calibration and test images: data folder"),
])
def test_bad_input_gets_a_specific_message(args, message, run_copy, tmp_path):
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text("{}")
    paths = {"missing": tmp_path / "missing", "unfinished": tmp_path / "unfinished", "run": run_copy}
    result = run_module("export", *[a.format(**paths) for a in args], check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_model_whose_output_width_does_not_match_the_labels(run_copy):
    labels = json.loads((run_copy / "labels.json").read_text())
    (run_copy / "labels.json").write_text(json.dumps(labels[:5]))
    result = run_module("export", str(run_copy), check=False)
    assert result.returncode == 2 and "labels.json lists" in result.stderr


def test_the_gate_reads_validation_agreement_on_top1_and_on_the_answer():
    from export.verify import failures

    def variant(balanced, top1, decisions=None, ece=0.05, **others):
        r = {"balanced_accuracy": balanced, "top1_agreement": top1, "max_probability_difference": 1e-6, "ece": ece,
             **others}
        return r if decisions is None else {**r, "decision_agreement": decisions}

    ok = {"float32": variant(0.80, 1.0, 1.0), "int8": variant(0.79, 0.97, 0.96)}
    assert failures(ok, 0.80, 3.0, 0.95, 1e-4) == []
    # A barely trained model: same balanced accuracy and top-1, but int8 calls every lesion "unsure".
    unsure = {"float32": variant(0.14, 1.0, 1.0), "int8": variant(0.14, 1.0, 0.216)}
    assert failures(unsure, 0.14, 3.0, 0.95, 1e-4) == [
        "int8: gives float32's answer (ok, unsure or retake) for 21.6% of validation images, below --min-agreement 95%"]
    disagree = {"float32": variant(0.50, 1.0, 1.0), "int8": variant(0.50, 0.0, 0.99)}
    assert failures(disagree, 0.50, 3.0, 0.95, 1e-4) == [
        "int8: top-1 agreement with float32 on validation is 0.0%, below --min-agreement 95%"]
    assert failures({"int8": variant(0.40, 0.99)}, 0.50, 3.0, 0.95, 1e-4) == [  # no float32: Keras's figure
        "int8: validation balanced accuracy 40.0% is 10.0 points below float32 (50.0%), more than --max-drop 3"]
    # Same top class and status, but it refers other lesions, calls non-lesion photos ok, and is less calibrated.
    drifts = {"float32": variant(0.60, 1.0, 1.0, ece=0.040),
              "int8": variant(0.60, 0.99, 0.99, ece=0.075, referral_agreement=0.90, nonlesion_decision_agreement=0.80)}
    assert failures(drifts, 0.60, 3.0, 0.95, 1e-4, max_ece_rise=0.02) == [
        "int8: gives float32's answer for 80.0% of the selection set's non-lesion photos, below --min-agreement 95%",
        "int8: refers to a doctor as float32 does for 90.0% of validation images, below --min-agreement 95%",
        "int8: validation calibration error 0.075 is 0.035 above float32's (0.040), more than --max-ece-rise 0.02"]
    from export.__main__ import ExportError, _gate
    with pytest.raises(ExportError, match=r"for 21.6% of validation images.*\n  to publish the variants that passed: "
                                          r"--variants float32$"):
        _gate({name: {"validation": r} for name, r in unsure.items()}, 0.14, 3.0, 0.95, 0.02)


def test_the_default_variant_is_the_smallest_that_passed():
    from export.build import default_variant

    assert default_variant(dict.fromkeys(VARIANTS)) == "int8"
    assert default_variant(dict.fromkeys(["float32", "float16"])) == "float16"  # full int8 refused by the gate
    assert default_variant(dict.fromkeys(["float32", "dynamic_int8"])) == "dynamic_int8"
    assert default_variant(dict.fromkeys(["float32"])) == "float32"


@pytest.mark.check
def test_quantization_aware_training_without_its_toolkit_says_how_to_install_it(monkeypatch, tmp_path):
    import argparse
    import sys
    from types import SimpleNamespace

    import export
    from export.__main__ import ExportError, _qat_maker

    monkeypatch.setitem(sys.modules, "export.qat", None)  # as if tf-keras were not installed
    monkeypatch.delattr(export, "qat", raising=False)  # another test of this worker may have imported it
    options = argparse.Namespace(qat_epochs=1, qat_learning_rate=1e-5)
    make = _qat_maker(None, SimpleNamespace(seed=0), [], None, None, options)
    with pytest.raises(ExportError, match=r"needs tf-keras and tensorflow-model-optimization .*requirements/qat.txt"):
        make(tmp_path)
