"""MODEL_CARD.md and LICENSE.md of a published model, written from its manifest only.

Every figure in the card is read from the manifest that ships beside it (source_run: config,
metrics, evaluations, training phases; honesty; variants), so `python -m export.publish` writes
both from the same numbers and a test checks that they still agree.
"""

from __future__ import annotations

import textwrap
from pathlib import PurePath

from edge.answer import STATUSES
from edge.labels import CODES, DISCLAIMER, NAMES
from training.config import named_as
from training.weights import FAMILIES

# What the figures of one variant in one evaluation are, as the card and the manifest keep them.
SUMMARY_KEYS = ("balanced_accuracy", "balanced_accuracy_ci95", "roc_auc_macro", "accuracy", "ece", "statuses",
                "balanced_accuracy_of_ok_answers")

DATA = """\
- **Training data: HAM10000** (Tschandl, Rosendahl & Kittler, "The HAM10000 dataset, a large collection of
  multi-source dermatoscopic images of common pigmented skin lesions", *Scientific Data* 5, 180161, 2018):
  10,015 dermatoscopic images of 7,470 lesions, 600x450 px, labels from HAM10000's own metadata table
  (lesion_id, dx, dx_type, age, sex, localization). The image files used here are the copy in the first
  commit of the public repository `arsenduzgun/skin-lesion-detection`, whose author re-encoded them at
  about JPEG quality 75: same geometry as the originals, mean absolute pixel difference 1.4-4.8 of 255
  on 70 files compared with originals. Split by lesion (scikit-learn's StratifiedGroupKFold on
  lesion_id, stratified by diagnosis), so no lesion has images in two splits.
- **External test set: ISIC 2018 Task 3 test images** (1,512 dermatoscopic images, the same re-encoded
  copy) with the challenge's official ground truth. Reported only: nothing was chosen on it.
- Scored by `python -m bench external`, every variant through the edge runtime (LiteRT) with its
  honest-answer checks, the balanced accuracy by the ISIC Challenge's own scorer (isic-challenge-scoring).
"""

LIMITS = """\
- **Dermatoscope images only.** It learned from dermatoscopic images (polarised light, the lens on the
  skin). An ordinary phone photo of skin is not what it learned from: a clip-on dermatoscope lens makes a
  phone photo look like its training images. Photos unlike them should be answered "cannot assess"
  (the out-of-distribution check), but that check is a guard, not a guarantee; no set of real phone
  photos of skin could be scored here.
- **Skin types are under-represented.** HAM10000 comes from Vienna and Queensland clinics and is mostly
  fair skin; {darker_skin}
- **Seven classes only.** Squamous cell carcinoma is inside "akiec"; anything else (a wart, a scar, a
  tattoo) is still answered as the most similar of the seven, or as "cannot assess".
- **Small classes.** The HAM10000 test split has 12 dermatofibromas and 14 vascular lesions: their
  recalls move by 7-8 points per image. Read the intervals.
- **Not a diagnosis.** Probabilities are calibrated on the validation split (temperature scaling), but a
  low melanoma probability never rules a melanoma out: anything changing, bleeding or worrying goes to
  a doctor.
"""

LICENSE = """\
# Licence of this model

The model files in this folder (`*.tflite`, `honesty*.bin`, `manifest.json`) were trained on the
HAM10000 dataset and are distributed under the same non-commercial terms as that data:
**Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International (CC BY-NC-SA 4.0)**,
https://creativecommons.org/licenses/by-nc-sa/4.0/ . No commercial use. (LesionLite's code is
Apache-2.0; that licence does not extend to these files.)

Attribution:
- HAM10000: Tschandl P., Rosendahl C. & Kittler H. "The HAM10000 dataset, a large collection of
  multi-source dermatoscopic images of common pigmented skin lesions." Sci. Data 5, 180161 (2018),
  doi:10.1038/sdata.2018.161. Images: Harvard Dataverse (CC BY-NC-SA 4.0) and the ISIC Archive
  (CC BY-NC 4.0), ViDIR Group, Department of Dermatology, Medical University of Vienna, and Cliff
  Rosendahl's practice, Queensland.
- ISIC 2018 Task 3 test set, used for evaluation only: Codella N. et al. "Skin Lesion Analysis Toward
  Melanoma Detection 2018: A Challenge Hosted by the International Skin Imaging Collaboration (ISIC)",
  arXiv:1902.03368; Tschandl et al. 2018 (above).
- The starting point, {starting_point}

No dataset image is included in this folder or in the LesionLite repository.
"""

# Who made each architecture, whatever file its ImageNet weights were read from.
PAPERS = {
    "mobilenet_v2": 'MobileNetV2 ImageNet weights: Sandler M. et al. "MobileNetV2: Inverted Residuals and Linear '
                    'Bottlenecks", CVPR 2018',
    "mobilenet": 'MobileNet v1 ImageNet weights: Howard A. G. et al. "MobileNets: Efficient Convolutional Neural '
                 'Networks for Mobile Vision Applications", arXiv:1704.04861 (2017)',
}
# Where the files rebuilt for this project's shipped runs came from, told by their names (docs/training.md).
WEIGHT_SOURCES = (
    ("dequant_from_coral_tflite", "read from Google's int8 ImageNet classifier in google-coral/test_data (Apache-2.0)."),
    ("from_JonathanCMitchell", "TensorFlow-Slim's published checkpoint (Apache-2.0), as converted to numpy arrays in "
                               "JonathanCMitchell/mobilenet_v2_keras."),
)
KERAS_FILE = "Keras Applications' ImageNet weights file {name} (Apache-2.0)."


def starting_point(config: dict) -> str:
    """The licence's credit for the weights a run started from: its configuration's `weights`
    ("imagenet", "none" or the path of the file given) and its architecture."""
    weights = str(config.get("weights", "imagenet"))
    if weights == "none":
        return "none: trained from random weights."
    arch = config.get("arch", "mobilenet_v2")
    paper = PAPERS[arch]
    if weights == "imagenet":
        return f"{paper}; Keras Applications' ImageNet weights, downloaded by Keras (Apache-2.0)."
    name = PurePath(weights).name
    if FAMILIES[arch].pattern.fullmatch(name):  # Keras's own download, given by path
        return f"{paper}; {KERAS_FILE.format(name=name)}"
    source = next((text for marker, text in WEIGHT_SOURCES if marker in name),
                  f"the weights file {name}, given by whoever trained this model: its terms are theirs to state.")
    return f"{paper}; {source}"


def licence(manifest) -> str:
    """LICENSE.md: the data's non-commercial terms, its attribution and the weights' source."""
    line = textwrap.fill("- The starting point, " + starting_point(manifest.source_run.get("config", {})),
                         width=100, subsequent_indent="  ")
    return LICENSE.replace("- The starting point, {starting_point}", line)


def summary(result: dict) -> dict:
    """The figures of one variant that the manifest keeps (from `bench external`'s metrics.json)."""
    mel = result["melanoma"]
    return {**{k: result[k] for k in SUMMARY_KEYS},
            "melanoma_sensitivity": mel["sensitivity"]["image_rate"],
            "melanoma_specificity": mel["specificity"]["image_rate"],
            "referral_sensitivity": mel["referral_sensitivity"]["image_rate"],
            "referral_sensitivity_ci95": mel["referral_sensitivity"]["image_ci95"],
            "referral_sensitivity_lesions": mel["referral_sensitivity"]["lesion_rate"],
            "referral_specificity": mel["referral_specificity"]["image_rate"],
            "recall": {c: result["per_class"][c]["recall"] for c in CODES},
            "acceptance": {c: result["per_class"][c]["acceptance"]["image_rate"] for c in CODES},
            "classify_ms_p50": result["latency_ms"]["classify_p50"],
            "subgroups": result.get("subgroups", [])}


def pct(value: float | None) -> str:
    """A share as a percentage; "n/a" for none (null in manifest.json, NaN before it was written)."""
    return "n/a" if value is None or value != value else f"{100 * value:.1f}%"


def interval(pair: list[float]) -> str:
    return f"{pct(pair[0])}–{pct(pair[1])}"


def evaluation_table(evaluation: dict) -> list[str]:
    names = list(evaluation["variants"])
    rows = [("balanced accuracy (ISIC challenge scorer)", lambda r: pct(r["balanced_accuracy"])),
            ("95% interval (bootstrap)", lambda r: interval(r["balanced_accuracy_ci95"])),
            ("macro ROC-AUC", lambda r: f"{r['roc_auc_macro']:.3f}"),
            ("melanoma sensitivity / specificity (top class)",
             lambda r: f"{pct(r['melanoma_sensitivity'])} / {pct(r['melanoma_specificity'])}"),
            ("melanomas told to see a doctor (end to end)", lambda r: pct(r["referral_sensitivity"])),
            ("its exact 95% interval", lambda r: interval(r["referral_sensitivity_ci95"])),
            ("non-melanomas not told to", lambda r: pct(r["referral_specificity"])),
            ("answers " + " / ".join(STATUSES), lambda r: " / ".join(str(r["statuses"][s]) for s in STATUSES)),
            ("balanced accuracy of the answers given", lambda r: pct(r["balanced_accuracy_of_ok_answers"])),
            ("expected calibration error", lambda r: f"{r['ece']:.3f}"),
            ("classify p50 (invoke + checks, on the machine that scored it)", lambda r: f"{r['classify_ms_p50']:.1f} ms")]
    lines = [f"{evaluation['images']} images: {evaluation['data']}.", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {label} | " + " | ".join(show(evaluation["variants"][n]) for n in names) + " |" for label, show in rows]
    return lines + [""]


def per_class_table(evaluation: dict, variant: str) -> list[str]:
    r = evaluation["variants"][variant]
    lines = [f"Per class ({variant}): recall of the top class, and the share of images answered (not \"cannot "
             "assess\" or \"retake\").", "", "| class | recall | answered |", "|---|---:|---:|"]
    return lines + [f"| {c}: {NAMES[c]} | {pct(r['recall'][c])} | {pct(r['acceptance'][c])} |" for c in CODES] + [""]


def subgroup_table(evaluation: dict, variant: str) -> list[str]:
    rows = evaluation["variants"][variant]["subgroups"]
    lines = ["| attribute | value | images | lesions | balanced accuracy | melanomas | told to see a doctor |",
             "|---|---|---:|---:|---:|---:|---:|"]
    return lines + [f"| {r['attribute']} | {r['value']} | {r['images']} | {r['lesions']} | {pct(r['balanced_accuracy'])} "
                    f"| {r['melanomas']} | {pct(r['melanoma_sensitivity'])} |" for r in rows] + [""]


def training_lines(manifest) -> list[str]:
    config, run = manifest.source_run.get("config", {}), manifest.source_run
    phases = run.get("training_phases", {})
    lines = [f"- {config.get('arch')} alpha {config.get('alpha')} at {manifest.input_size} px, ImageNet weights, "
             f"{config.get('head_epochs')} head epochs (lr {config.get('head_learning_rate')}) then up to "
             f"{config.get('fine_tune_epochs')} epochs fine-tuning the last {config.get('fine_tune_layers')} layers "
             f"(lr {config.get('fine_tune_learning_rate')}, BatchNorm in inference mode), batch "
             f"{config.get('batch_size')}, {config.get('imbalance')}, best epoch by {config.get('monitor')}"
             + (f", on the moving average of the fine-tuning weights (EMA {config['ema_momentum']})"
                if config.get("ema_momentum") else "") + ".",
             (f"- Configuration `{name}`" if (name := named_as(config)) else "- Its own configuration (no named one)")
             + "; the full config is in manifest.json (source_run.config)."]
    if phases:
        total = sum(p["seconds"] for p in phases.values())
        lines.append("- Wall time on 2 CPU cores: " + ", ".join(
            f"{name} {p['seconds'] / 60:.1f} min" + (f" (peak {p['peak_rss_mb']:,.0f} MB)" if p["peak_rss_mb"] else "")
            for name, p in phases.items())
            + f"; {total / 60:.0f} min in all.")
    return lines + [""]


def honesty_lines(manifest) -> list[str]:
    h = manifest.honesty
    lines = [f"- Temperature {h.temperature:.3f} (validation NLL), folded into every variant.",
             f"- \"Cannot assess\": {h.ood['kept']} score, fitted on the training split, threshold keeping "
             f"{pct(h.ood['keep_target'])} of validation lesions; each quantized variant has its own statistics and "
             "thresholds fitted on its own outputs (manifest variants.*.honesty).",
             f"- Melanoma referral threshold {manifest.honesty_for(manifest.default_variant).melanoma_threshold:.4g} "
             f"({manifest.default_variant}) for {pct(h.melanoma['target_sensitivity'])} validation sensitivity per "
             "image and per lesion" + (f", as the one-sided {pct(h.melanoma['confidence'])} exact lower bound of the "
                                       f"share of validation melanomas referred ({pct(h.melanoma['validation_sensitivity'])})"
                                       if h.melanoma.get("confidence") else "") + ".",
             f"- Photo quality: {pct(h.quality['training_pass_rate'])} of training images pass."]
    return lines + [""]


def int8_lines(manifest) -> list[str]:
    """How the int8 variant was made, when quantization-aware training made it (export/qat.py)."""
    variant = manifest.variants.get("int8")
    made = variant.conversion if variant else {}
    if "method" not in made:
        return []
    validation = variant.metrics.get("validation", {})
    return [f"int8 was made by {made['method']}: {made['epochs']} epoch(s) over {made['training_images']:,} "
            f"training-split images, learning rate {made['learning_rate']:g}. On the validation split it gives "
            f"float32's top class for {pct(validation.get('top1_agreement'))} of images, float32's answer (ok / "
            f"unsure / retake) for {pct(validation.get('decision_agreement'))} and float32's referral for "
            f"{pct(validation.get('referral_agreement'))} (the export gate asks 95% of each).", ""]


def darker_skin_sentence(manifest) -> str:
    """What the card can say about darker skin: the proxy figures when they were measured."""
    darker = manifest.source_run["evaluations"].get("isic2018_task3_test_darker_skin")
    variant = manifest.default_variant
    if darker is None or variant not in darker["variants"]:
        return ("no figure here says how it performs on darker skin. The photo-quality check was made not to\n  "
                "refuse darker skin as \"too dark\" (docs/honest-answers.md), which says nothing about accuracy there.")
    dark = darker["variants"][variant]
    original = manifest.source_run["evaluations"]["isic2018_task3_test"]["variants"][variant]

    def unsure(r: dict) -> str:
        return pct(r["statuses"]["unsure"] / sum(r["statuses"].values()))

    return (f"no real photo of darker skin could be scored here. As a proxy, the ISIC 2018 test images made darker "
            f"(`python -m bench external --transform darker-skin`: linear-light reflectance scaled per channel, "
            f"docs/honest-answers.md): {variant} answered {dark['statuses']['retake']} of them \"retake\", "
            f"\"cannot assess\" {unsure(dark)} (originals: {unsure(original)}), balanced accuracy "
            f"{pct(dark['balanced_accuracy'])} (originals: {pct(original['balanced_accuracy'])}) and "
            f"{pct(dark['referral_sensitivity'])} of melanomas told to see a doctor (originals: "
            f"{pct(original['referral_sensitivity'])}): expect fewer and worse answers on darker skin.")


def render(manifest, name: str) -> str:
    evaluations = manifest.source_run["evaluations"]
    isic, ham = evaluations["isic2018_task3_test"], evaluations["ham10000_test_split"]
    default = manifest.default_variant
    shipped = ", ".join(f"`{v.file}` ({v.bytes / 2**20:.1f} MiB)" for v in manifest.variants.values())
    return "\n".join([
        f"# Model card: {name}", "", f"> {DISCLAIMER}", "",
        "LesionLite's shipped model: it names the most similar of seven HAM10000 classes for a dermatoscopic "
        "photo of a skin lesion, or says it cannot assess the photo, or asks for a retake. It is a triage and "
        "teaching aid, never a diagnosis. Licence: CC BY-NC-SA 4.0, non-commercial (LICENSE.md).", "",
        f"Shipped variants: {shipped}; default `{default}`, what the Pi, the phone and `make demo` run: the "
        "smallest variant that passed the export gate (agreement with float32 on validation)"
        + ("" if "int8" in manifest.variants else "; full int8 did not pass it for this model") + ".", "",
        *int8_lines(manifest), "## Data", "", DATA, "## Training", "", *training_lines(manifest),
        "## ISIC 2018 Task 3 test set", "", *evaluation_table(isic), *per_class_table(isic, default),
        "## HAM10000 test split (lesion-disjoint)", "", *evaluation_table(ham), *per_class_table(ham, default),
        f"### Subgroups ({default}, HAM10000 test split)", "",
        "Small groups give unstable figures: read the counts first.", "", *subgroup_table(ham, default),
        "## Honest answers", "", *honesty_lines(manifest), "## Known limits", "",
        LIMITS.format(darker_skin=darker_skin_sentence(manifest)),
        "## Licence and attribution", "", "See LICENSE.md (CC BY-NC-SA 4.0).", ""])
