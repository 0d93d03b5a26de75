"""`python -m export.publish`: a bundle and its external evaluations become models/NAME with a model
card and a licence; the published manifest carries the card's figures; bad input gets one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge import Classifier
from edge.manifest import Manifest
from tests.conftest import run_module
from tests.test_bench_external import isic_set, scored  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def published(tiny_bundle, scored, tmp_path_factory):  # noqa: F811
    out, _ = scored
    run = tmp_path_factory.mktemp("run")
    shutil.copytree(tiny_bundle, run / "bundle")
    log = run / "training.log"
    log.write_text("phase decode: 12.5 s, peak RSS 700 MB\nphase train: 3000.0 s, peak RSS 2,100 MB\n")
    # The darker-skin figures as `bench external --transform darker-skin` writes them, made distinct
    # from the originals (balanced accuracy 10 points lower, every answer "unsure") to see which the card quotes.
    darker = json.loads((out / "metrics.json").read_text())
    int8 = darker["variants"]["int8"]
    int8["balanced_accuracy"] -= 0.1
    int8["statuses"] = {"ok": 0, "unsure": sum(int8["statuses"].values()), "retake": 0}
    (run / "darker.json").write_text(json.dumps({**darker, "transform": "darker-skin"}))
    target = tmp_path_factory.mktemp("models") / "tiny-model"
    result = run_module("export.publish", str(run), str(target), "--variants", "int8,float32",
                        "--isic", str(out / "metrics.json"), "--ham-test", str(out / "metrics.json"),
                        "--darker-skin", str(run / "darker.json"), "--training-log", str(log), check=False)
    assert result.returncode == 0, result.stderr
    return target, out


def test_the_published_folder_holds_the_chosen_variants_and_verifies(published):
    target, _ = published
    manifest = Manifest.load(target)
    assert list(manifest.variants) == ["float32", "int8"] and manifest.default_variant == "int8"
    names = {p.name for p in target.iterdir()}
    assert {"manifest.json", "MODEL_CARD.md", "LICENSE.md", "float32.tflite", "int8.tflite", "honesty.bin"} <= names
    assert "float16.tflite" not in names and "dynamic_int8.tflite" not in names
    grey = np.full((manifest.input_size, manifest.input_size, 3), 128, np.uint8)
    for variant in manifest.variants:
        assert Classifier(target, variant).classify_array(grey).status in ("ok", "unsure", "retake")


def test_the_manifest_carries_the_model_cards_figures(published):
    target, out = published
    manifest = json.loads((target / "manifest.json").read_text())
    card = (target / "MODEL_CARD.md").read_text()
    measured = json.loads((out / "metrics.json").read_text())["variants"]
    for evaluation in ("isic2018_task3_test", "ham10000_test_split"):
        figures = manifest["source_run"]["evaluations"][evaluation]["variants"]
        for variant, r in figures.items():
            assert r["balanced_accuracy"] == measured[variant]["balanced_accuracy"]
            assert r["referral_sensitivity"] == measured[variant]["melanoma"]["referral_sensitivity"]["image_rate"]
    row = next(line for line in card.splitlines() if line.startswith("| balanced accuracy (ISIC challenge scorer)"))
    shown = [cell.strip() for cell in row.strip("|").split("|")[1:]]
    isic = manifest["source_run"]["evaluations"]["isic2018_task3_test"]["variants"]
    assert shown == [f"{100 * isic[v]['balanced_accuracy']:.1f}%" for v in isic]
    assert manifest["source_run"]["training_phases"]["train"] == {"seconds": 3000.0, "peak_rss_mb": 2100.0}
    assert "train 50.0 min (peak 2,100 MB)" in card


def test_the_cards_skin_type_limit_quotes_the_darker_skin_figures(published):
    target, out = published
    card = (target / "MODEL_CARD.md").read_text()
    manifest = json.loads((target / "manifest.json").read_text())
    darker = manifest["source_run"]["evaluations"]["isic2018_task3_test_darker_skin"]["variants"]["int8"]
    original = json.loads((out / "metrics.json").read_text())["variants"]["int8"]
    limit = next(block for block in card.split("\n- ") if block.startswith("**Skin types are under-represented.**"))
    limit = " ".join(limit.split())
    assert "no figure here says" not in limit
    assert (f"balanced accuracy {100 * darker['balanced_accuracy']:.1f}% (originals: "
            f"{100 * original['balanced_accuracy']:.1f}%)") in limit
    assert '"cannot assess" 100.0% (originals:' in limit and 'int8 answered 0 of them "retake"' in limit


def test_licence_and_attribution_sit_beside_the_model(published):
    target, _ = published
    licence = (target / "LICENSE.md").read_text()
    assert "CC BY-NC-SA 4.0" in licence and "Tschandl" in licence and "No commercial use" in licence
    assert "Licence: CC BY-NC-SA 4.0, non-commercial" in (target / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize(("config", "paper", "source"), [
    ({"arch": "mobilenet", "weights": "/data/mobilenet_v1_0.75_192_dequant_from_coral_tflite_no_top.weights.h5"},
     "Howard A. G. et al.", "google-coral/test_data"),
    ({"arch": "mobilenet_v2", "weights": "w/mobilenet_v2_1.0_224_no_top_from_JonathanCMitchell_npy.weights.h5"},
     "Sandler M. et al.", "TensorFlow-Slim"),
    ({"arch": "mobilenet_v2", "weights": "imagenet"}, "Sandler M. et al.", "downloaded by Keras"),
    ({"arch": "mobilenet", "weights": "/w/mobilenet_7_5_192_tf_no_top.h5"}, "Howard A. G. et al.",
     "Keras Applications' ImageNet weights file mobilenet_7_5_192_tf_no_top.h5"),
    # A file of the user's own is not credited to anyone else, Keras included.
    ({"arch": "mobilenet", "weights": "/w/my_mobilenet_tf_no_top.h5"}, "Howard A. G. et al.",
     "the weights file my_mobilenet_tf_no_top.h5, given by whoever trained this model"),
    ({"arch": "mobilenet", "weights": "none"}, None, "none: trained from random weights"),
])
def test_the_licence_credits_the_weights_the_run_started_from(config, paper, source):
    """The paper of the architecture, and the source of the very file the run was given."""
    from types import SimpleNamespace

    from export import model_card

    text = model_card.licence(SimpleNamespace(source_run={"config": config}))
    credit = " ".join(text.split("- The starting point, ")[1].split("No dataset image")[0].split())
    assert source in credit and "Tschandl" in text
    assert ("Sandler" in credit) == (paper == "Sandler M. et al.") and ("Howard" in credit) == (paper == "Howard A. G. et al.")
    others = {"google-coral", "TensorFlow-Slim", "Keras"} - {word for word in ("google-coral", "TensorFlow-Slim", "Keras")
                                                            if word in source}
    assert not any(other in credit for other in others)
    block = text.split("- The starting point, ")[1].split("\n\n")[0]
    assert max(len(line) for line in ("- The starting point, " + block).splitlines()) <= 100


@pytest.mark.parametrize(("args", "message"), [
    (["--variants", "float32"], "the default variant int8 must be shipped"),
    (["--variants", "int8,int4"], "the bundle has no variant(s) int4"),
])
def test_bad_choices_get_one_line(published, tiny_bundle, tmp_path, args, message):
    _, out = published
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    result = run_module("export.publish", str(run), str(tmp_path / "m"), "--isic", str(out / "metrics.json"),
                        "--ham-test", str(out / "metrics.json"), *args, check=False)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(("flag", "transform", "message"), [
    ("--darker-skin", "none", "the darker-skin evaluation was scored with --transform none; it must be darker-skin"),
    ("--isic", "darker-skin", "the isic evaluation was scored with --transform darker-skin; it must be none"),
])
def test_an_evaluation_of_the_wrong_images_gets_one_line(published, tiny_bundle, tmp_path, flag, transform, message):
    _, out = published
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    figures = {**json.loads((out / "metrics.json").read_text()), "transform": transform}
    (tmp_path / "wrong.json").write_text(json.dumps(figures))
    given = {"--isic": out / "metrics.json", "--ham-test": out / "metrics.json", flag: tmp_path / "wrong.json"}
    result = run_module("export.publish", str(run), str(tmp_path / "m"), "--variants", "int8,float32",
                        *[part for pair in given.items() for part in map(str, pair)], check=False)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_the_card_says_how_a_quantization_aware_int8_was_made():
    from types import SimpleNamespace

    from edge.manifest_fields import Variant
    from export.model_card import int8_lines

    made = {"method": "quantization-aware training (distilled from float32)", "epochs": 2, "learning_rate": 3e-5,
            "training_images": 8011}
    validation = {"top1_agreement": 0.961, "decision_agreement": 0.982, "referral_agreement": 0.953}
    int8 = Variant("int8.tflite", 1, "0" * 64, "uint8", "uint8", conversion=made, metrics={"validation": validation})
    lines = int8_lines(SimpleNamespace(variants={"int8": int8}))
    assert lines[0].startswith("int8 was made by quantization-aware training (distilled from float32): 2 epoch(s) "
                               "over 8,011 training-split images, learning rate 3e-05.")
    assert "top class for 96.1%" in lines[0] and "for 98.2%" in lines[0] and "referral for 95.3%" in lines[0]
    calibrated = Variant("int8.tflite", 1, "0" * 64, "uint8", "uint8", conversion={"seconds": 3.0})
    assert int8_lines(SimpleNamespace(variants={"int8": calibrated})) == []
    assert int8_lines(SimpleNamespace(variants={})) == []
