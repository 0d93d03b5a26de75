"""The figures of `python -m bench external`, per variant, and the files it writes.

The headline balanced accuracy and macro AUC are the ISIC Challenge's own scorer's
(`isic-challenge-scoring`, run on the written submission and ground truth): the mean per-class
recall of the top class, with the challenge's details (tied top probabilities count as wrong;
ISIC_0035068 of the 2018 test set carries no weight). The rest comes from scikit-learn,
intervals from training/lesionstats.py (bootstrap over lesions; exact Clopper-Pearson for
proportions), calibration from training/calibration.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from bench.external_data import CHALLENGE_COLUMNS
from edge.answer import STATUSES, refers
from edge.labels import MELANOMA
from training import lesionstats
from training.calibration import expected_calibration_error
from training.report import plot_confusion

BOOTSTRAP_RESAMPLES = 1000


def _table(records: pd.DataFrame, answers: dict, codes: list[str]) -> pd.DataFrame:
    """One row per image: ids, metadata, truth, top class, status, referral and every probability."""
    table = records.drop(columns=["path"]).copy()
    table["lesion_id"] = table["lesion_id"].fillna(table["image_id"])  # unknown: each image its own lesion
    table["predicted"] = [codes[i] for i in answers["probabilities"].argmax(axis=1)]
    table["status"] = answers["statuses"]
    table["referred"] = [refers(s, r) for s, r in zip(answers["statuses"], answers["reasons"], strict=True)]
    return pd.concat([table, pd.DataFrame(answers["probabilities"], columns=codes)], axis=1)


def _bootstrapped(codes: list[str]):
    def statistic(table: pd.DataFrame) -> dict[str, float]:
        truth = table["dx"].to_numpy()
        values = {"balanced_accuracy": skm.balanced_accuracy_score(truth, table["predicted"])}
        if len(set(truth)) == len(codes):
            values["roc_auc_macro"] = skm.roc_auc_score(truth, table[codes].to_numpy(), multi_class="ovr",
                                                        average="macro", labels=codes)
        return values

    return statistic


def _per_class(table: pd.DataFrame, codes: list[str]) -> dict:
    precision, recall, _, support = skm.precision_recall_fscore_support(table["dx"], table["predicted"], labels=codes,
                                                                        zero_division=0)
    statuses = pd.crosstab(table["dx"], table["status"]).reindex(index=codes, columns=list(STATUSES), fill_value=0)
    return {code: {"support": int(support[i]), "recall": float(recall[i]), "precision": float(precision[i]),
                   "statuses": {s: int(statuses.at[code, s]) for s in STATUSES},
                   "acceptance": lesionstats.lesion_proportion(table.loc[table["dx"] == code, "status"] == "ok",
                                                               table.loc[table["dx"] == code, "lesion_id"])}
            for i, code in enumerate(codes)}


def _melanoma(table: pd.DataFrame) -> dict:
    mel = table["dx"] == MELANOMA
    said = table["predicted"] == MELANOMA
    return {"sensitivity": lesionstats.lesion_proportion(said[mel], table.loc[mel, "lesion_id"]),
            "specificity": lesionstats.lesion_proportion(~said[~mel], table.loc[~mel, "lesion_id"]),
            "referral_sensitivity": lesionstats.lesion_proportion(table.loc[mel, "referred"], table.loc[mel, "lesion_id"]),
            "referral_specificity": lesionstats.lesion_proportion(~table.loc[~mel, "referred"],
                                                                  table.loc[~mel, "lesion_id"])}


def scorer_on_pandas_3() -> None:
    """isic-challenge-scoring 5.6.0 still calls DataFrame.applymap, which pandas 3 removed after
    deprecating it for DataFrame.map (the same behaviour): given back under its old name."""
    if not hasattr(pd.DataFrame, "applymap"):
        pd.DataFrame.applymap = pd.DataFrame.map


def challenge_scores(truth_csv: Path, predictions_csv: Path) -> dict[str, float]:
    """Balanced accuracy and macro AUC as the ISIC Challenge's scorer computes them."""
    from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore

    scorer_on_pandas_3()
    score = ClassificationScore.from_file(truth_csv, predictions_csv, ClassificationMetric.BALANCED_ACCURACY)
    return {"balanced_accuracy": float(score.overall), "roc_auc_macro": float(score.macro_average["auc"])}


def figures(records: pd.DataFrame, answers: dict, challenge: dict, decode_ms: np.ndarray, codes: list[str],
            seed: int) -> dict:
    """Every figure of one variant (JSON-ready); CHALLENGE is challenge_scores() of its submission."""
    table = _table(records, answers, codes)
    point = _bootstrapped(codes)(table)
    ci = lesionstats.lesion_bootstrap(table, _bootstrapped(codes), BOOTSTRAP_RESAMPLES, seed)
    labels = table["dx"].map(codes.index).to_numpy()
    ok = table["status"] == "ok"
    result = {
        "images": len(table), "lesions": int(table["lesion_id"].nunique()),
        "balanced_accuracy": challenge["balanced_accuracy"], "balanced_accuracy_ci95": list(ci["balanced_accuracy"]),
        "mean_recall_sklearn": float(point["balanced_accuracy"]),
        "roc_auc_macro": challenge["roc_auc_macro"], "roc_auc_macro_sklearn": float(point.get("roc_auc_macro", float("nan"))),
        "roc_auc_macro_ci95": list(ci.get("roc_auc_macro", (float("nan"), float("nan")))),
        "accuracy": float((table["dx"] == table["predicted"]).mean()),
        "per_class": _per_class(table, codes), "melanoma": _melanoma(table),
        "statuses": {s: int((table["status"] == s).sum()) for s in STATUSES},
        "reasons": pd.Series([c for r in answers["reasons"] for c in r], dtype=str).value_counts().to_dict(),
        "balanced_accuracy_of_ok_answers": (float(skm.balanced_accuracy_score(table.loc[ok, "dx"], table.loc[ok, "predicted"]))
                                            if ok.any() else float("nan")),
        "ece": expected_calibration_error(answers["probabilities"], labels),
        "latency_ms": {"classify_p50": float(np.median(answers["millis"])),
                       "classify_p90": float(np.percentile(answers["millis"], 90)),
                       "decode_preprocess_p50": float(np.median(decode_ms))},
        "confusion_matrix": skm.confusion_matrix(table["dx"], table["predicted"], labels=codes).tolist(),
    }
    if any(c in table for c in ("sex", "age", "localization")):
        result["subgroups"] = lesionstats.subgroups(table, MELANOMA, table["referred"]).to_dict("records")
    return result


def submission(records: pd.DataFrame, probabilities: np.ndarray, codes: list[str]) -> pd.DataFrame:
    """The ISIC 2018 Task 3 submission format: image, then MEL, NV, BCC, AKIEC, BKL, DF, VASC."""
    by_code = pd.DataFrame(probabilities, columns=[c.upper() for c in codes])
    return pd.concat([records[["image_id"]].rename(columns={"image_id": "image"}), by_code[list(CHALLENGE_COLUMNS)]],
                     axis=1)


def write_truth(records: pd.DataFrame, codes: list[str], path: Path) -> Path:
    """The scored images' ground truth in the challenge's one-hot format (what its scorer reads)."""
    one_hot = np.eye(len(codes))[records["dx"].map(codes.index).to_numpy()]
    submission(records, one_hot, codes).to_csv(path, index=False, float_format="%.1f")
    return path


def write_predictions(folder: Path, records: pd.DataFrame, answers: dict, codes: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "predictions.csv"
    # Nine digits: the challenge's scorer calls tied top probabilities wrong, so do not round ties in.
    submission(records, answers["probabilities"], codes).to_csv(path, index=False, float_format="%.9f")
    return path


def write_variant(folder: Path, records: pd.DataFrame, answers: dict, result: dict, codes: list[str]) -> None:
    table = _table(records, answers, codes)
    table.drop(columns=codes).assign(reasons=[" ".join(r) for r in answers["reasons"]]).to_csv(
        folder / "answers.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_confusion(result["confusion_matrix"], folder / "confusion_matrix.png", title=folder.name)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


def _ci(pair) -> str:
    low, high = pair
    return "n/a" if low != low else f"{100 * low:.1f}–{100 * high:.1f}%"


def _proportion(p: dict, level: str) -> str:
    return f"{_pct(p[f'{level}_rate'])} ({p[f'{level}_hits']}/{p[f'{level}s']}, {_ci(p[f'{level}_ci95'])})"


def variant_lines(name: str, r: dict, codes: list[str], level: str) -> list[str]:
    """One variant's Markdown section."""
    mel = r["melanoma"]
    lines = [f"### {name}", "", "| figure | value | 95% interval |", "|---|---:|---|",
             f"| balanced accuracy (ISIC challenge scorer) | {_pct(r['balanced_accuracy'])} "
             f"| {_ci(r['balanced_accuracy_ci95'])} |",
             f"| macro ROC-AUC | {r['roc_auc_macro']:.3f} | {_ci(r['roc_auc_macro_ci95'])} |",
             f"| accuracy | {_pct(r['accuracy'])} | |",
             f"| melanoma sensitivity (top class) | {_proportion(mel['sensitivity'], level)} | |",
             f"| melanoma specificity (top class) | {_proportion(mel['specificity'], level)} | |",
             f"| melanomas told to see a doctor (end to end) | {_proportion(mel['referral_sensitivity'], level)} | |",
             f"| non-melanomas not told to (end to end) | {_proportion(mel['referral_specificity'], level)} | |",
             f"| answers ok / unsure / retake | {' / '.join(str(r['statuses'][s]) for s in STATUSES)} | |",
             f"| reasons given | {', '.join(f'{k} {v}' for k, v in sorted(r['reasons'].items())) or 'none'} | |",
             f"| balanced accuracy of the ok answers | {_pct(r['balanced_accuracy_of_ok_answers'])} | |",
             f"| expected calibration error (15 bins) | {r['ece']:.3f} | |",
             f"| classify p50 / p90 (invoke + checks) | {r['latency_ms']['classify_p50']:.1f} / "
             f"{r['latency_ms']['classify_p90']:.1f} ms | |",
             f"| decode + preprocess p50 | {r['latency_ms']['decode_preprocess_p50']:.1f} ms | |", "",
             "| class | images | recall | precision | ok | unsure | retake | accepted (ok) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for code in codes:
        c = r["per_class"][code]
        lines.append(f"| {code} | {c['support']} | {_pct(c['recall'])} | {_pct(c['precision'])} | "
                     + " | ".join(str(c["statuses"][s]) for s in STATUSES) + f" | {_proportion(c['acceptance'], level)} |")
    return lines + [""]


def markdown(summary: dict, codes: list[str]) -> str:
    """OUT/report.md: what was scored, then one table per variant."""
    level = "lesion" if "lesion ids known" in summary["data"] else "image"
    lines = ["# External evaluation", "",
             f"Bundle `{summary['bundle']}`, {summary['images']} images: {summary['data']}; every variant run by the "
             f"edge runtime ({summary['threads']} threads) with its honest-answer checks. Proportions are per "
             f"{level} with exact (Clopper-Pearson) intervals; balanced accuracy and AUC intervals bootstrap "
             f"{level}s. \"Told to see a doctor\" counts answers that say so as first shown: melanoma_risk "
             "whatever their status, malignant_class (a cancer class at the top) when it is ok.", ""]
    for name, result in summary["variants"].items():
        lines += variant_lines(name, result, codes, level)
    return "\n".join(lines)
