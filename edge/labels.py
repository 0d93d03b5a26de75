"""The seven HAM10000 diagnostic classes, in the fixed order every model outputs them."""

from __future__ import annotations

CLASSES: tuple[tuple[str, str], ...] = (
    ("akiec", "Actinic keratoses and intraepithelial carcinoma"),
    ("bcc", "Basal cell carcinoma"),
    ("bkl", "Benign keratosis-like lesions"),
    ("df", "Dermatofibroma"),
    ("mel", "Melanoma"),
    ("nv", "Melanocytic nevi"),
    ("vasc", "Vascular lesions"),
)
CODES: tuple[str, ...] = tuple(code for code, _ in CLASSES)
NAMES: dict[str, str] = dict(CLASSES)
MELANOMA = "mel"
# The classes that are skin cancers or can become one (melanoma, basal cell carcinoma, actinic
# keratosis / intraepithelial carcinoma): an answer naming one at the top sends the person to a doctor.
MALIGNANT: tuple[str, ...] = ("akiec", "bcc", "mel")

DISCLAIMER = (
    "LesionLite is a triage and teaching aid, not a diagnosis. It can be wrong. "
    "Show any changing, bleeding or worrying skin lesion to a doctor or dermatologist."
)
