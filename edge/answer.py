"""The answer LesionLite gives about one photo, defined once: its fields, its JSON and that JSON's schema.

`Answer.to_dict()` is what every front end sends or prints (POST /api/predict, the server camera's
capture, `python -m edge classify --json`; the phone builds the same shape in js/honesty.js), and
`json_schema()` describes it from the same dataclass fields, for the OpenAPI document
(pwa/openapi.py) and for the tests that hold the phone's answers to it. Which reasons an answer
carries is decided in edge/honesty.py; what they say to a person is MESSAGES, here.
"""

from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass

from edge.labels import CODES, MALIGNANT

STATUSES = ("ok", "unsure", "retake")
MESSAGES = {
    "too_dark": "The photo is too dark: add light and retake it.",
    "too_bright": "The photo is too bright or washed out: avoid direct light and flash glare, then retake it.",
    "blurry": "The photo is blurred: hold the camera steady, let it focus on the skin, then retake it.",
    "out_of_distribution": ("It does not look like the skin-lesion images LesionLite learned from: retake it "
                            "close up, with the lesion in the middle of the frame."),
    "malignant_class": ("The most similar class is a skin cancer or can become one: show this lesion to a "
                        "doctor."),
    "melanoma_risk": "Features similar to melanoma: show this lesion to a doctor.",
    "low_confidence": "The model is unsure between several classes: treat this answer with extra caution.",
}
# Reasons that send the person to a doctor (which of them a person sees at once: refers()).
DOCTOR_REASONS = ("malignant_class", "melanoma_risk")
# Reasons about the model's class names and probabilities, shown only beside them; every other
# reason is shown whatever the status, so a referral is seen even when the output stays hidden.
WITH_OUTPUT_ONLY = ("malignant_class", "low_confidence")
# The words a person reads first: what happened, never "OK".
STATUS_WORDS = {"ok": "Most similar to", "unsure": "LesionLite cannot assess this photo",
                "retake": "Retake the photo"}
# What precedes the model's output for an answer that is not an assessment, wherever it is shown.
NOT_AN_ASSESSMENT = "LesionLite cannot assess this photo: the model's output is not an assessment."
# Where the JSON keeps the model's output for an answer that is not an assessment (unsure, retake).
UNASSESSED = "unassessed_model_output"
UNASSESSED_DESCRIPTION = (
    "Only for unsure and retake (then `predictions` is absent): the model's output for a photo LesionLite "
    "cannot assess, kept for transparency. Not an assessment: show it only under that statement, with the "
    "malignant_class, melanoma_risk and low_confidence reasons the answer carries.")


def _schema(description: str, **keywords) -> dict:
    """A field's metadata: its description and any JSON Schema keywords its type does not give."""
    return {"schema": {"description": description, **keywords}}


@dataclass(frozen=True)
class Reason:
    code: str = field(metadata=_schema(
        "Photo: too_dark, too_bright, blurry (status retake), out_of_distribution (unsure). Model output, "
        f"whatever the status: malignant_class (the top class is one of {', '.join(MALIGNANT)}: see a doctor), "
        "melanoma_risk (the melanoma probability reached the bundle's referral threshold: see a doctor), "
        "low_confidence (the top probability is under the bundle's limit).", enum=list(MESSAGES)))
    message: str = field(metadata=_schema("A sentence for a person: what it means and what to do."))

    @classmethod
    def of(cls, code: str) -> Reason:
        return cls(code, MESSAGES[code])


@dataclass(frozen=True)
class Prediction:
    """One class and the model's probability for it."""

    code: str = field(metadata=_schema("The class's HAM10000 code.", enum=list(CODES)))
    name: str = field(metadata=_schema("The class's name."))
    probability: float = field(metadata=_schema("Calibrated probability.", minimum=0, maximum=1))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """What LesionLite says about one photo: the status first, then why, then the model's output."""

    status: str = field(metadata=_schema(
        "retake: the photo is unusable (checked first); unsure: it does not look like the skin-lesion images "
        "the model learned from; ok: the model's answer stands (a resemblance, never a diagnosis).",
        enum=list(STATUSES)))
    reasons: tuple[Reason, ...] = field(metadata=_schema(
        "Why the status is what it is, then what the model's output requires a person to be told (whatever "
        "the status); may be empty."))
    predictions: tuple[Prediction, ...] = field(metadata=_schema(
        f"Only for ok (for unsure and retake the same list is under `{UNASSESSED}`): every class, most "
        "probable first, with calibrated probabilities.", minItems=len(CODES), maxItems=len(CODES)))
    checks: dict[str, float] = field(default_factory=dict, metadata=_schema(
        "The measured figures the status was decided from: brightness, highlights, clipped, sharpness, ood_score, "
        "ood_threshold."))

    @property
    def assessed(self) -> bool:
        """Whether the model's output is an assessment (status ok) rather than kept for transparency."""
        return self.status == "ok"

    def to_dict(self) -> dict:
        """The JSON form, field by field (json_schema() describes it)."""
        return {json_name(f.name, self.status): _plain(getattr(self, f.name)) for f in fields(self)}

    def headline(self) -> str:
        """The status line a command line prints first: what happened, the class for ok, and every
        reason a person must see without the model's output."""
        words = STATUS_WORDS[self.status]
        if self.assessed:
            top = self.predictions[0]
            words = f"{words} {top.name} ({top.code}), {percent(top.probability)}"
        shown = [r.message for r in self.reasons if self.assessed or r.code not in WITH_OUTPUT_ONLY]
        return " ".join([words + ".", *shown])

    def output_warnings(self) -> list[Reason]:
        """The reasons that go with the model's output wherever it is shown."""
        return [r for r in self.reasons if r.code in WITH_OUTPUT_ONLY or r.code in DOCTOR_REASONS]

    def refers(self) -> bool:
        """Whether the answer, as first shown, tells the person to see a doctor (refers())."""
        return refers(self.status, [r.code for r in self.reasons])

    def unassessed_statement(self) -> str:
        """What a command line prints before an unsure or retake answer's output, when asked for it:
        that it is not an assessment, then the same warnings an ok answer would carry."""
        return " ".join([NOT_AN_ASSESSMENT, *(r.message for r in self.output_warnings())])


def refers(status: str, codes) -> bool:
    """Whether an answer with this status and these reason codes tells the person to see a doctor
    as every front end first shows it (before "show anyway" or --show-unassessed): melanoma_risk
    whatever the status, malignant_class with the class (ok). The referral figures count these."""
    return any(c in DOCTOR_REASONS and (status == "ok" or c not in WITH_OUTPUT_ONLY) for c in codes)


def json_name(name: str, status: str) -> str:
    """The JSON key of an Answer field: the model's output is `predictions` only when assessed."""
    return UNASSESSED if name == "predictions" and status != "ok" else name


def percent(probability: float) -> str:
    """A probability as a person reads it: a model is never certain, so never 0% or 100%."""
    rounded = math.floor(probability * 100 + 0.5)
    return "<1%" if rounded <= 0 else ">99%" if rounded >= 100 else f"{rounded}%"


def _plain(value):
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return dict(value) if isinstance(value, dict) else value


# --- The JSON Schema (OpenAPI 3.0's dialect) of Answer.to_dict(), from the fields above ---------

_SCALARS = {str: "string", float: "number", int: "integer", bool: "boolean"}


def _type_schema(hint) -> dict:
    if is_dataclass(hint):
        return object_schema(hint)
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:  # tuple[X, ...]
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is dict:  # dict[str, X]
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    raise TypeError(f"no JSON Schema for {hint!r}: add it to edge/answer.py")


def object_schema(cls) -> dict:
    """A dataclass as a closed JSON object: every field a property, and required (to_dict writes them all)."""
    hints = typing.get_type_hints(cls)
    return {
        "type": "object",
        "required": [f.name for f in fields(cls)],
        "properties": {f.name: {**_type_schema(hints[f.name]), **f.metadata.get("schema", {})} for f in fields(cls)},
        "additionalProperties": False,
    }


def _only(statuses: list[str], present: str, absent: str) -> dict:
    return {"properties": {"status": {"enum": statuses}}, "required": [present], "not": {"required": [absent]}}


def json_schema() -> dict:
    """The schema of Answer.to_dict(): Answer's fields, with the model's output under `predictions`
    for ok and under UNASSESSED (and never `predictions`) for unsure and retake."""
    schema = object_schema(Answer)
    properties = schema["properties"]
    properties[UNASSESSED] = {**properties["predictions"], "description": UNASSESSED_DESCRIPTION}
    schema["required"].remove("predictions")
    unassessed = [s for s in STATUSES if json_name("predictions", s) == UNASSESSED]
    schema["oneOf"] = [_only(["ok"], "predictions", UNASSESSED), _only(unassessed, UNASSESSED, "predictions")]
    return schema
