"""The answer's one definition (edge/answer.py): its JSON for each status against the schema made from
the same type, the schema refusing the shapes that would drift, and the words a person reads.
The phone's answers are held to the same schema in tests/test_pwa_answer_browser.py."""

from __future__ import annotations

import json
import re

import jsonschema_rs
import pytest

from edge.answer import (
    MESSAGES,
    NOT_AN_ASSESSMENT,
    UNASSESSED,
    Answer,
    Prediction,
    Reason,
    json_schema,
    percent,
    refers,
)
from edge.labels import CLASSES

# A melanoma at the top with 45%, then the others (written out, not computed by the code under test).
OUTPUT = (Prediction("mel", "Melanoma", 0.45), Prediction("nv", "Melanocytic nevi", 0.2),
          *(Prediction(code, name, 0.07) for code, name in CLASSES if code not in ("mel", "nv")))
WARNINGS = tuple(Reason.of(code) for code in ("malignant_class", "melanoma_risk", "low_confidence"))
CHECKS = {"brightness": 140.0, "clipped": 0.0, "sharpness": 0.2, "ood_score": 3.0, "ood_threshold": 5.0}


def answer(status: str, *photo_reasons: str) -> Answer:
    return Answer(status, tuple(Reason.of(code) for code in photo_reasons) + WARNINGS, OUTPUT, CHECKS)


@pytest.fixture(scope="module")
def validator():
    return jsonschema_rs.Draft4Validator(json_schema())


def test_each_status_keeps_the_output_under_its_own_name_and_fits_the_schema(validator):
    for status, photo in (("ok", ()), ("unsure", ("out_of_distribution",)), ("retake", ("too_dark", "blurry"))):
        body = json.loads(json.dumps(answer(status, *photo).to_dict()))  # as a client receives it
        output = "predictions" if status == "ok" else "unassessed_model_output"
        assert list(body) == ["status", "reasons", output, "checks"]
        assert body[output][0] == {"code": "mel", "name": "Melanoma", "probability": 0.45}
        assert [r["code"] for r in body["reasons"]] == [*photo, "malignant_class", "melanoma_risk", "low_confidence"]
        assert validator.is_valid(body), list(validator.iter_errors(body))


@pytest.mark.parametrize("drift", [
    lambda b: b.update(status="unsure"),  # an unassessed answer with its output under "predictions"
    lambda b: b.update(unassessed_model_output=b["predictions"]),  # both names at once
    lambda b: b.pop("checks"),  # a field of the type left out
    lambda b: b.update(confidence=0.45),  # a field the type does not have
    lambda b: b["reasons"].append({"code": "all_clear", "message": "OK"}),  # a reason code nobody defined
    lambda b: b["predictions"].pop(),  # six classes
    lambda b: b["predictions"][0].update(probability=1.2),
])
def test_the_schema_refuses_a_drifted_shape(validator, drift):
    body = json.loads(json.dumps(answer("ok").to_dict()))
    drift(body)
    assert not validator.is_valid(body)


def test_the_schema_names_every_field_of_the_type_and_documents_the_marked_one():
    schema = json_schema()
    assert set(schema["properties"]) == {"status", "reasons", "predictions", "checks", UNASSESSED}
    assert set(schema["properties"]["reasons"]["items"]["properties"]) == {"code", "message"}
    assert schema["properties"]["reasons"]["items"]["properties"]["code"]["enum"] == list(MESSAGES)
    assert "Not an assessment" in schema["properties"][UNASSESSED]["description"]


def test_the_headline_says_what_happened_never_ok():
    ok = answer("ok")
    assert ok.headline() == ("Most similar to Melanoma (mel), 45%. " + " ".join(r.message for r in WARNINGS))
    unsure = answer("unsure", "out_of_distribution")
    # Without the class shown, only the photo's reasons and the referral: nothing about a class.
    assert unsure.headline() == " ".join(["LesionLite cannot assess this photo.", MESSAGES["out_of_distribution"],
                                          MESSAGES["melanoma_risk"]])
    assert answer("retake", "too_dark").headline().startswith("Retake the photo. The photo is too dark")
    assert unsure.unassessed_statement() == " ".join([NOT_AN_ASSESSMENT, *(r.message for r in WARNINGS)])
    for each in (ok, unsure, answer("retake", "blurry")):
        assert not re.search(r"\bok\b", each.headline(), re.IGNORECASE), each.headline()


@pytest.mark.parametrize(("status", "codes", "told"), [
    ("ok", ["malignant_class"], True),  # the class is shown with its advice
    ("ok", ["low_confidence"], False),
    ("unsure", ["out_of_distribution", "malignant_class", "low_confidence"], False),  # only behind "show anyway"
    ("unsure", ["out_of_distribution", "melanoma_risk"], True),  # shown with the output hidden
    ("retake", ["too_dark", "melanoma_risk"], True),
])
def test_refers_counts_what_a_person_is_told_at_first_sight(status, codes, told):
    assert refers(status, codes) is told
    assert Answer(status, tuple(Reason.of(c) for c in codes), OUTPUT, CHECKS).refers() is told


@pytest.mark.parametrize(("probability", "shown"), [
    (0.0, "<1%"), (0.004, "<1%"), (0.005, "1%"), (0.125, "13%"), (0.45, "45%"), (0.994, "99%"), (0.995, ">99%"),
    (1.0, ">99%")])
def test_percent_never_says_0_or_100(probability, shown):
    assert percent(probability) == shown
