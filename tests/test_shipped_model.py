"""The model LesionLite ships (models/): it loads and verifies with the edge runtime alone, answers a
photo, carries its licence, and its model card says what its manifest says."""

from __future__ import annotations

import json

import pytest

from bench.photos import synthetic_jpeg
from edge import Classifier
from edge.answer import STATUSES
from edge.bundle import SHIPPED_MODEL
from edge.manifest import SCHEMA_VERSION, Manifest
from export import model_card


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.load(SHIPPED_MODEL)


def test_every_shipped_variant_loads_verifies_and_answers(manifest):
    photo = synthetic_jpeg(600, 450)
    for variant in manifest.variants:
        answer = Classifier(SHIPPED_MODEL, variant).classify(photo)
        assert answer.status in STATUSES
        assert sum(p.probability for p in answer.predictions) == pytest.approx(1.0, abs=1e-6)
    # Full int8, what the Pi and the phone run, passed the export gate (quantization-aware training,
    # docs/export.md) and is the default; float32 and float16 ship beside it.
    assert manifest.default_variant == "int8" and set(manifest.variants) == {"float32", "float16", "int8"}
    int8 = manifest.variant("int8")
    assert (int8.input_dtype, int8.output_dtype) == ("uint8", "uint8")
    assert int8.conversion["method"].startswith("quantization-aware training")
    assert int8.metrics["validation"]["top1_agreement"] >= 0.95 and int8.metrics["validation"]["referral_agreement"] >= 0.95


def test_it_was_trained_on_real_lesions_and_scored_on_the_isic_2018_test_set(manifest):
    source = manifest.source_run
    assert source["config"]["weights"] != "none" and source["config"]["arch"] == "mobilenet"
    isic = source["evaluations"]["isic2018_task3_test"]
    assert isic["images"] == 1512 and "ISIC2018_Task3_Test_GroundTruth.csv" in isic["data"]
    # A trained model, far above chance (1/7); the figure itself is the model card's.
    assert isic["variants"][manifest.default_variant]["balanced_accuracy"] >= 0.5
    assert source["evaluations"]["ham10000_test_split"]["images"] == 1002


def test_the_model_card_says_what_the_manifest_says(manifest):
    card = (SHIPPED_MODEL / "MODEL_CARD.md").read_text()
    assert card == model_card.render(manifest, SHIPPED_MODEL.name), "MODEL_CARD.md was edited by hand: re-publish"
    row = next(line for line in card.splitlines() if line.startswith("| balanced accuracy (ISIC challenge scorer)"))
    isic = manifest.source_run["evaluations"]["isic2018_task3_test"]["variants"]
    assert [c.strip() for c in row.strip("|").split("|")[1:]] == [f"{100 * isic[v]['balanced_accuracy']:.1f}%" for v in isic]


def test_licence_and_attribution_sit_beside_it():
    licence = (SHIPPED_MODEL / "LICENSE.md").read_text()
    assert "CC BY-NC-SA 4.0" in licence and "HAM10000" in licence and "Tschandl" in licence
    assert "No dataset image is included" in licence
    names = {p.name for p in SHIPPED_MODEL.iterdir()}
    assert not {n for n in names if n.lower().endswith((".jpg", ".jpeg", ".png"))}


def test_it_stays_small(manifest):
    total = sum(p.stat().st_size for p in SHIPPED_MODEL.iterdir())
    assert total <= 15 * 2**20, f"{total / 2**20:.1f} MiB"
    assert json.loads((SHIPPED_MODEL / "manifest.json").read_text())["schema_version"] == SCHEMA_VERSION


def test_its_manifest_is_strict_json_a_browser_can_parse():
    text = (SHIPPED_MODEL / "manifest.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"manifest.json holds {name}, which JSON.parse refuses"))
