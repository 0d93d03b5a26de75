"""The report's sections on honest answers: calibration, "unsure", "retake", referral, subgroups."""

from __future__ import annotations


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def _ci(pair: list[float]) -> str:
    return f"{_pct(pair[0])}–{_pct(pair[1])}"


def threshold_text(value: float) -> str:
    """A threshold with the digits it needs: 0.99892 -> "0.9989" (never "1.000"), 0.25 -> "0.250"."""
    decimals = f"{value:.8f}".split(".")[1]
    digits = max(3, len(decimals) - len(decimals.lstrip("9")) + 2)
    while digits < 8 and f"{value:.{digits}f}" in ("1." + "0" * digits, "0." + "0" * digits):
        digits += 1
    whole, decimals = f"{value:.{digits}f}".split(".")
    return f"{whole}.{decimals.rstrip('0').ljust(3, '0')}"


def _proportion(p: dict, level: str) -> str:
    return f"{_pct(p[f'{level}_rate'])} ({p[f'{level}_hits']} of {p[f'{level}s']}, exact 95% CI {_ci(p[f'{level}_ci95'])})"


def calibration_section(m: dict) -> list[str]:
    before, after = m["calibration"]["before"], m["calibration"]["after"]
    return [
        "## Calibration", "",
        f"Temperature T = {m['temperature']:.3f}, fitted on the validation split (minimum negative log-likelihood) "
        "and folded into every exported variant's last layer. On the test split:", "",
        "| | ECE (15 bins) | Brier score | NLL |", "|---|---:|---:|---:|",
        f"| before | {before['ece']:.4f} | {before['brier']:.4f} | {before['nll']:.4f} |",
        f"| after | {after['ece']:.4f} | {after['brier']:.4f} | {after['nll']:.4f} |", "",
        "![reliability diagram](reliability.png)", "",
    ]


def ood_section(m: dict) -> list[str]:
    ood = m["ood"]
    lines = [
        "## Unsure: photos unlike the training lesions", "",
        f"Kept score: **{ood['kept']}** (best AUROC on validation lesions against one set of non-lesion photos; "
        "ties go to the fewer features). "
        f"Its threshold accepts at least {_pct(ood['keep_target'])} of validation lesions. Test figures use the test "
        "split and a report set of non-lesion photos from other sources than the selection set.", "",
        f"- selection set: {ood.get('nonlesion_sources', {}).get('selection', 'n/a')}",
        f"- report set: {ood.get('nonlesion_sources', {}).get('report', 'n/a')}", "",
        "| score | features | selection AUROC | test AUROC | test lesions accepted | non-lesion photos accepted |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, e in ood["compared"].items():
        mark = " (kept)" if name == ood["kept"] else ""
        lines.append(f"| {name}{mark} | {e['feature_width']} | {e['selection_auroc']:.3f} | {e['test_auroc']:.3f} | "
                     f"{_pct(e['test_acceptance'])} | {_pct(e['nonlesion_acceptance'])} |")
    return lines + ["", "The export measures the same per variant (manifest `variants.*.metrics.ood`).", ""]


def quality_section(m: dict) -> list[str]:
    q = m["quality"]
    return [
        "## Retake: unusable photos", "",
        f"Limits from the training images' {q['percentile_tail'] * 100:g}th and {100 - q['percentile_tail'] * 100:g}th "
        f"percentiles: too dark when the highlights (99th percentile of luma) are below {q['highlights_min']:.1f}, "
        f"{q['dark_skin_stops']} stops under the training images' so that darker skin is not refused for its tone "
        f"(a mean-luma limit would sit at {q['brightness_at_tail']:.1f}); too bright above a mean luma of "
        f"{q['brightness_max']:.1f} or with more than {_pct(q['clipped_max'])} of the pixels clipped; blurred below "
        f"a sharpness of {q['sharpness_min']:.4f}. {_pct(q['training_pass_rate'])} of the training images pass.", "",
    ]


def _target_text(r: dict) -> str:
    if r.get("confidence"):
        return (f"enough melanomas for {_pct(r['target_sensitivity'])} sensitivity to be the one-sided "
                f"{_pct(r['confidence'])} exact lower bound of the share kept")
    return f"{_pct(r['target_sensitivity'])} sensitivity"


def _bound_text(r: dict) -> str:
    bound = r.get("validation_sensitivity_lower_bound")
    return f" (lower bound {_pct(bound)})" if bound is not None else ""


def referral_section(m: dict) -> list[str]:
    r = m["referral"]
    lines = [
        "## Melanoma referral", "",
        f"Every answer, whatever its status, says *show it to a doctor* when the melanoma probability is at least "
        f"**{threshold_text(r['threshold'])}**: the lower of the thresholds that keep "
        f"{_target_text(r)} on the validation split per image "
        f"({threshold_text(r.get('image_threshold', r['threshold']))}) and per lesion "
        f"({threshold_text(r.get('lesion_threshold', r['threshold']))}; a lesion counts as referred when at least half "
        f"of its images are). Validation sensitivity there: {_pct(r['validation_sensitivity'])} per image"
        f"{_bound_text(r)}.", "",
    ]
    if "test_sensitivity_exact" in r:
        sens, spec = r["test_sensitivity_exact"], r["test_specificity_exact"]
        lines += ["| on the test split | per image | per lesion |", "|---|---|---|",
                  f"| sensitivity (melanomas referred) | {_proportion(sens, 'image')} | {_proportion(sens, 'lesion')} |",
                  f"| specificity (others not referred) | {_proportion(spec, 'image')} | {_proportion(spec, 'lesion')} |",
                  ""]
    return lines


def subgroup_section(m: dict) -> list[str]:
    rows = m.get("subgroups") or []
    if not rows:
        return []
    lines = ["## Subgroups (test split)", "",
             "Small groups give unstable figures: read the image and lesion counts first.", "",
             "| attribute | value | images | lesions | balanced accuracy | melanomas | melanoma referral sensitivity |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['attribute']} | {r['value']} | {r['images']} | {r['lesions']} | "
                     f"{_pct(r['balanced_accuracy'])} | {r['melanomas']} | {_pct(r['melanoma_sensitivity'])} |")
    return lines + [""]


def honest_sections(m: dict) -> list[str]:
    return [*calibration_section(m), *ood_section(m), *quality_section(m), *referral_section(m), *subgroup_section(m)]
