"""The LiteRT Classifier: bundle checks, every variant, input kinds, quantization, threads, draft decoding."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from edge import BundleError, Classifier, ImageError, Prediction, top_k
from edge.classifier import dequantize, quantize_input, to_probabilities
from edge.labels import CLASSES, CODES
from edge.manifest import SCHEMA_VERSION
from edge.preprocess import reduce_on_decode

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")


def copy_bundle(source: Path, target: Path, variants=("int8",)) -> Path:
    """A bundle copy with only the manifest and the named model files (fast, and safe to damage)."""
    target.mkdir()
    shutil.copy(source / "manifest.json", target)
    shutil.copy(source / "honesty.bin", target)
    for variant in variants:
        shutil.copy(source / f"{variant}.tflite", target)
        if (source / f"honesty-{variant}.bin").exists():  # a quantized variant's own honest-answer arrays
            shutil.copy(source / f"honesty-{variant}.bin", target)
    return target


def edit_manifest(bundle_dir: Path, edit) -> None:
    path = bundle_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def classifiers(random_bundle) -> dict[str, Classifier]:
    """Every variant of the untrained bundle: for contracts, not for answers."""
    return {variant: Classifier(random_bundle, variant) for variant in VARIANTS}


@pytest.fixture(scope="module")
def trained(tiny_bundle) -> dict[str, Classifier]:
    return {variant: Classifier(tiny_bundle, variant) for variant in ("float32", "int8")}


# ---------------------------------------------------------------- pure post-processing


LABELS = list(CLASSES)


def test_top_k_sorts_cuts_and_keeps_label_order_on_ties():
    predictions = top_k([0.1, 0.3, 0.05, 0.05, 0.4, 0.1, 0.0], LABELS, k=4)
    assert [(p.code, p.probability) for p in predictions] == [
        ("mel", 0.4),
        ("bcc", 0.3),
        ("akiec", 0.1),
        ("nv", 0.1),
    ]
    assert predictions[0] == Prediction("mel", "Melanoma", 0.4)


def test_top_k_threshold_and_all_by_default():
    assert len(top_k(np.full(7, 1 / 7), LABELS)) == 7
    assert [p.code for p in top_k([0.1, 0.3, 0.05, 0.05, 0.4, 0.1, 0.0], LABELS, threshold=0.3)] == [
        "mel",
        "bcc",
    ]


def test_top_k_rejects_wrong_width():
    with pytest.raises(ValueError, match="expected 7 probabilities \\(one per label\\), got 5"):
        top_k([0.2] * 5, LABELS)


def test_prediction_is_frozen_and_serializable():
    prediction = Prediction("nv", "Melanocytic nevi", 0.75)
    assert prediction.to_dict() == {"code": "nv", "name": "Melanocytic nevi", "probability": 0.75}
    with pytest.raises(AttributeError):
        prediction.probability = 1.0


def test_dequantize_casts_wide_before_subtracting_zero_point():
    uint8 = np.array([0, 128, 255], dtype=np.uint8)
    np.testing.assert_allclose(dequantize(uint8, 0.5, 128), [-64.0, 0.0, 63.5])
    int8 = np.array([-128, 0, 127], dtype=np.int8)
    np.testing.assert_allclose(dequantize(int8, 1 / 256, -128), [0.0, 0.5, 255 / 256])


def test_to_probabilities_renormalizes_quantized_softmax():
    # A uint8 softmax whose quantized values sum to 255/256, not 1.
    raw = np.array([[0, 0, 0, 0, 191, 64, 0]], dtype=np.uint8)
    np.testing.assert_allclose(to_probabilities(raw, 1 / 256, 0), [0, 0, 0, 0, 191 / 255, 64 / 255, 0])
    int8 = np.array([[-128, -128, -128, -128, 64, -64, -128]], dtype=np.int8)
    np.testing.assert_allclose(to_probabilities(int8, 1 / 256, -128), [0, 0, 0, 0, 0.75, 0.25, 0])
    floats = np.array([[0.2, 0.2, 0.1, 0.1, 0.2, 0.1, 0.1]], dtype=np.float32)
    np.testing.assert_allclose(to_probabilities(floats, 0.0, 0), floats[0], rtol=1e-6)


def test_quantize_input_for_each_input_dtype():
    pixels = np.array([[[0, 128, 255]]], dtype=np.uint8)
    assert quantize_input(pixels, np.uint8, 1.0, 0) is pixels
    assert quantize_input(pixels, np.float32, 0.0, 0).tolist() == [[[0.0, 128.0, 255.0]]]
    assert quantize_input(pixels, np.int8, 1.0, -128).tolist() == [[[-128, 0, 127]]]
    assert quantize_input(pixels, np.int8, 0.0, 0).tolist() == [[[-128, 0, 127]]]
    # Calibrated on darker pixels: a scale above 1 saturates instead of wrapping.
    assert quantize_input(pixels, np.uint8, 0.9, 0).tolist() == [[[0, 142, 255]]]


# ---------------------------------------------------------------- bundle checks


def damage(case: str, bundle_dir: Path) -> tuple[Path, str]:
    """Damage a bundle copy one way; return the folder to load and the variant to ask for."""
    if case == "missing folder":
        return bundle_dir / "nowhere", "int8"
    if case == "missing manifest":
        (bundle_dir / "manifest.json").unlink()
    elif case == "bad json":
        (bundle_dir / "manifest.json").write_text("{not json")
    elif case == "unknown schema":
        edit_manifest(bundle_dir, lambda m: m.update(schema_version=1))
    elif case == "other preprocessing":
        edit_manifest(bundle_dir, lambda m: m.update(preprocessing="other-v9"))
    elif case == "no default variant":
        edit_manifest(bundle_dir, lambda m: m.pop("default_variant"))
    elif case == "default variant absent":
        edit_manifest(bundle_dir, lambda m: m.update(default_variant="float64"))
    elif case == "mistyped size":
        edit_manifest(bundle_dir, lambda m: m["input"].update(size="96"))
    elif case == "batch not 1":
        edit_manifest(bundle_dir, lambda m: m["input"].update(batch=None))
    elif case == "missing honesty file":  # the default variant's (int8's own, fitted on its outputs)
        (bundle_dir / "honesty-int8.bin").unlink()
    elif case == "honesty tampered":
        data = bytearray((bundle_dir / "honesty-int8.bin").read_bytes())
        data[7] ^= 0x01
        (bundle_dir / "honesty-int8.bin").write_bytes(bytes(data))
    elif case == "unknown ood score":
        edit_manifest(bundle_dir, lambda m: m["honesty"]["ood"].update(score="vibes"))
    elif case == "no honesty section":
        edit_manifest(bundle_dir, lambda m: m.pop("honesty"))
    elif case == "unknown variant":
        return bundle_dir, "int4"
    elif case == "missing file":
        (bundle_dir / "int8.tflite").unlink()
    elif case == "hash mismatch":
        model = bytearray((bundle_dir / "int8.tflite").read_bytes())
        model[len(model) // 2] ^= 0xFF
        (bundle_dir / "int8.tflite").write_bytes(bytes(model))
    elif case == "label count":
        edit_manifest(bundle_dir, lambda m: m.update(labels=m["labels"][:6]))
    elif case == "not a model":
        garbage = b"this is not a flatbuffer" * 10
        (bundle_dir / "int8.tflite").write_bytes(garbage)
        sha = hashlib.sha256(garbage).hexdigest()
        edit_manifest(bundle_dir, lambda m: m["variants"]["int8"].update(sha256=sha))
    return bundle_dir, "int8"


BAD_BUNDLES = {
    "missing folder": r"bundle folder .*nowhere does not exist \(export a run first\)",
    "missing manifest": r"manifest.json is missing: .* is not a LesionLite bundle",
    "bad json": r"manifest.json is not valid JSON: Expecting property name",
    "unknown schema": rf"has schema_version 1, this runtime reads {SCHEMA_VERSION}: re-export the bundle with this version",
    "missing honesty file": r"honesty-int8.bin is missing: re-export the bundle",
    "honesty tampered": r"honesty-int8.bin: sha256 mismatch, expected [0-9a-f]{12}\.\.\., got [0-9a-f]{12}\.\.\.",
    "unknown ood score": r"honesty.ood.score 'vibes' is not one this runtime computes \(mahalanobis, msp, energy\)",
    "no honesty section": r"manifest.json: the field 'honesty' is missing",
    "no default variant": r"manifest.json: the field 'default_variant' is missing",
    "default variant absent": r"default_variant 'float64' is not one of its variants \(float32, float16, dynamic_int8, int8\)",
    "mistyped size": r"manifest.json: 'input.size' must be a JSON integer, got str",
    "batch not 1": r"manifest.json: 'input.batch' is None, this runtime runs batch 1 models only: re-export",
    "other preprocessing": r"needs preprocessing 'other-v9', this runtime implements 'lesionlite-v1'",
    "unknown variant": r"unknown variant 'int4': this bundle has float32, float16, dynamic_int8, int8$",
    "missing file": r"int8.tflite is missing: re-export the bundle",
    "hash mismatch": r"int8.tflite: sha256 mismatch, expected [0-9a-f]{12}\.\.\., got [0-9a-f]{12}\.\.\.: "
    r"the file was changed or corrupted; re-export the bundle",
    "label count": r"int8.tflite: the model outputs \[7, \d+\] values but the manifest lists 6 labels",
    "not a model": r"int8.tflite: LiteRT cannot load it",
}


@pytest.mark.parametrize("case", BAD_BUNDLES)
def test_bad_bundle_is_refused_with_a_specific_message(case, random_bundle, tmp_path):
    bundle_dir, variant = damage(case, copy_bundle(random_bundle, tmp_path / "bundle"))
    with pytest.raises(BundleError, match=BAD_BUNDLES[case]):
        Classifier(bundle_dir, variant)


def test_hash_mismatch_names_both_hashes(random_bundle, tmp_path):
    bundle_dir, _ = damage("hash mismatch", copy_bundle(random_bundle, tmp_path / "bundle"))
    expected = json.loads((random_bundle / "manifest.json").read_text())["variants"]["int8"]["sha256"]
    actual = hashlib.sha256((bundle_dir / "int8.tflite").read_bytes()).hexdigest()
    with pytest.raises(BundleError) as raised:
        Classifier(bundle_dir, "int8")
    assert f"expected {expected[:12]}..., got {actual[:12]}..." in str(raised.value)


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_gives_seven_sorted_probabilities(variant, classifiers, random_bundle, photos):
    classifier = classifiers[variant]
    manifest = json.loads((random_bundle / "manifest.json").read_text())
    assert classifier.variant == variant
    assert classifier.sha256 == manifest["variants"][variant]["sha256"]
    assert classifier.sha256 == hashlib.sha256((random_bundle / f"{variant}.tflite").read_bytes()).hexdigest()
    assert classifier.input_size == manifest["input"]["size"] == 96
    assert classifier.labels == tuple(CLASSES)
    for image in photos:
        answer = classifier.classify(image)
        assert answer.status in ("ok", "unsure", "retake")
        predictions = answer.predictions
        probabilities = [p.probability for p in predictions]
        assert sorted(p.code for p in predictions) == sorted(CODES)
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in probabilities)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_takes_exactly_one_image_as_the_manifest_says(variant, random_bundle):
    """A dynamic batch (-1 in the signature) is what LiteRT.js refuses; the export pins it to 1."""
    manifest = json.loads((random_bundle / "manifest.json").read_text())
    assert manifest["input"]["batch"] == 1
    interpreter = Interpreter(model_path=str(random_bundle / f"{variant}.tflite"))
    size = manifest["input"]["size"]
    assert interpreter.get_input_details()[0]["shape_signature"].tolist() == [1, size, size, 3]


def test_no_variant_named_runs_the_default_variant(random_bundle, tmp_path):
    assert Classifier(random_bundle).variant == "int8"
    only_float = copy_bundle(random_bundle, tmp_path / "float32-only", variants=("float32",))
    edit_manifest(only_float, lambda m: m.update(default_variant="float32",
                                                 variants={"float32": m["variants"]["float32"]}))
    classifier = Classifier(only_float)
    assert classifier.variant == "float32"
    assert len(classifier.classify(np.zeros((96, 96, 3), np.uint8)).predictions) == 7


@pytest.mark.trained
def test_full_int8_agrees_with_float32(trained, sample_images):
    """The dequantization path end to end: a wrong scale or zero point would move every number."""
    differences = []
    for image in sample_images:
        int8 = {p.code: p.probability for p in trained["int8"].classify(image).predictions}
        float32 = {p.code: p.probability for p in trained["float32"].classify(image).predictions}
        differences.append(np.mean([abs(int8[c] - float32[c]) for c in CODES]))
    assert np.mean(differences) < 0.05


def test_path_bytes_pil_and_array_give_identical_results(classifiers, photos):
    classifier = classifiers["int8"]
    path = photos[0]
    expected = classifier.classify(path)
    assert classifier.classify(str(path)) == expected
    assert classifier.classify(path.read_bytes()) == expected
    with Image.open(path) as image:
        assert classifier.classify(image) == expected
    pixels = classifier.preprocess(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (classifier.input_size, classifier.input_size, 3)
    assert classifier.classify(pixels) == expected
    assert classifier.classify_array(pixels) == expected


def test_classify_array_rejects_unpreprocessed_arrays(classifiers):
    classifier = classifiers["int8"]
    size = classifier.input_size
    with pytest.raises(
        ValueError, match=rf"expected a uint8 array of shape \({size}, {size}, 3\), got float32"
    ):
        classifier.classify_array(np.zeros((size, size, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"got uint8 \(450, 600, 3\)"):
        classifier.classify_array(np.zeros((450, 600, 3), dtype=np.uint8))


def test_unreadable_image_raises_image_error(classifiers):
    with pytest.raises(ImageError, match="image data is not an image format LesionLite reads"):
        classifiers["int8"].classify(b"definitely not a JPEG")


def test_shared_classifier_is_thread_safe(classifiers, photos):
    classifier = classifiers["int8"]
    images = [classifier.preprocess(path) for path in photos]
    images += [np.ascontiguousarray(image[:, ::-1]) for image in images]  # more distinct inputs
    expected = [classifier.classify_array(image) for image in images]
    results, errors = {}, []

    def worker(thread: int) -> None:
        try:
            for call in range(20):
                index = (thread * 20 + call) % len(images)
                results[(thread, call)] = (index, classifier.classify_array(images[index]))
        except Exception as err:  # surfaced below: an exception in a thread is otherwise lost
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 160
    assert all(predictions == expected[index] for index, predictions in results.values())


@pytest.mark.trained
def test_draft_decoding_of_a_12mp_photo_matches_a_full_decode(trained, sample_images, tmp_path):
    classifier = trained["int8"]
    phone = tmp_path / "phone.jpg"
    with Image.open(sample_images[0]) as image:
        image.convert("RGB").resize((4032, 3024), Image.Resampling.BICUBIC).save(phone, quality=92)
    with Image.open(phone) as image:
        reduce_on_decode(image, classifier.input_size)
        decoded_side = min(image.size)
    assert decoded_side < 3024  # the draft really did decode at a reduced scale
    drafted = classifier.classify(phone)
    with Image.open(phone) as image:
        full = classifier.classify(np.asarray(image.convert("RGB")))
    full_by_code = {p.code: p.probability for p in full.predictions}
    assert max(abs(p.probability - full_by_code[p.code]) for p in drafted.predictions) <= 0.02
    # Within 0.02 everywhere, the top class can change only where the full decode's two best are
    # within 0.04 (a near-tie of the tiny model, which is retrained with every change to its code).
    if full.predictions[0].probability - full.predictions[1].probability > 0.04:
        assert drafted.predictions[0].code == full.predictions[0].code
