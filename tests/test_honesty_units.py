"""Honest answers, the parts that need no model: calibration, OOD scores, quality, referral,
lesion-level intervals and the decision order. Expected values are worked out by hand or come
from a second library, never from the code under test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import distance

from edge import quality
from edge.answer import MESSAGES
from edge.classifier import top_k
from edge.honesty import Honesty, quality_reasons
from edge.labels import CLASSES, CODES
from edge.manifest import HonestyInfo
from export.calibrated import honesty_bytes
from training import calibration, lesionstats, nonlesion, ood, referral
from training.metrics import wilson

LIMITS = {"highlights_min": 60.0, "brightness_max": 200.0, "clipped_max": 0.02, "sharpness_min": 0.05}


def test_ece_by_hand():
    # Two answers at 0.9 (one right) and two at 0.6 (both right), in two different bins:
    # ECE = 2/4 * |0.5 - 0.9| + 2/4 * |1.0 - 0.6| = 0.2 + 0.2 = 0.4.
    probs = np.array([[0.9, 0.1] + [0] * 5, [0.9, 0.1] + [0] * 5, [0.6, 0.4] + [0] * 5, [0.4, 0.6] + [0] * 5])
    labels = np.array([0, 1, 0, 1])
    assert calibration.expected_calibration_error(probs, labels) == pytest.approx(0.4)


def test_temperature_recovers_the_one_that_generated_the_labels():
    """Labels drawn from softmax(z / 2) while the model says softmax(z): the fitted T is about 2."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 7))
    true = np.exp(logits / 2) / np.exp(logits / 2).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in true])
    said = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    t = calibration.fit_temperature(said, labels)
    assert t == pytest.approx(2.0, rel=0.1)
    before, after = calibration.figures(said, labels), calibration.figures(calibration.scaled(said, t), labels)
    assert after["nll"] < before["nll"] and after["ece"] < before["ece"] / 2


def test_mahalanobis_matches_scipy_with_the_same_covariance():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    labels = rng.integers(0, 7, 300)
    arrays = ood.fit_mahalanobis(features, labels, 7)
    arrays.update(dense_kernel=np.zeros((5, 7)), dense_bias=np.zeros(7))
    probe = rng.normal(size=(4, 5))
    scores = ood.score("mahalanobis", probe, np.full((4, 7), 1 / 7), arrays)
    precision = arrays["whitening"] @ arrays["whitening"].T
    means = arrays["whitened_means"] @ np.linalg.inv(arrays["whitening"])
    for f, got in zip(probe, scores, strict=True):
        expected = min(distance.mahalanobis(f, m, precision) ** 2 for m in means)
        assert got == pytest.approx(expected, rel=1e-6)


def test_threshold_keeps_the_asked_share_and_auroc_by_hand():
    scores = np.arange(1, 101, dtype=float)  # 1..100
    assert ood.threshold_keeping(scores, 0.95) == 96.0  # 96 of 100 scores are <= 96
    assert ood.auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert ood.auroc(np.array([1.0, 3.0]), np.array([2.0, 4.0])) == 0.75  # 3 of 4 pairs ordered


def test_referral_threshold_by_hand():
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.1, 0.5, 0.05])
    is_mel = np.array([True, True, True, True, True, False, False])
    # 3 of 5 melanomas must reach it: the third is 0.3, the next lower probability is 0.2; halfway in
    # log-odds: logit^-1((logit 0.3 + logit 0.2) / 2) = 1 / (1 + sqrt(7/3 * 4)) = 0.24664...
    threshold = referral.threshold_for_sensitivity(p, is_mel, 0.6)
    assert threshold == pytest.approx(1 / (1 + (7 / 3 * 4) ** 0.5))
    assert referral.sensitivity_specificity(p, is_mel, threshold) == (0.6, 0.5)
    assert referral.threshold_for_sensitivity(np.array([1.0, 1.0]), np.array([True, True]), 1.0) == 1.0
    with pytest.raises(ValueError, match="no melanoma in the validation split"):
        referral.threshold_for_sensitivity(p, np.zeros(7, bool), 0.9)


def test_referral_keeps_enough_melanomas_for_the_target_to_be_a_lower_bound():
    from scipy import stats

    def lower(k, n):  # one-sided 95% Clopper-Pearson lower bound, from its beta-quantile definition
        return stats.beta.ppf(0.05, k, n - k + 1)

    for n in (111, 200, 29):
        k = referral.melanomas_to_keep(n, 0.9, 0.95)
        assert lower(k, n) >= 0.9 > lower(k - 1, n), n
    assert referral.melanomas_to_keep(111, 0.9, 0.95) == 106  # 95.5% of 111, not 100 of them
    assert referral.melanomas_to_keep(111, 0.9) == 100  # confidence 0: the point estimate, ceil(99.9)
    assert referral.melanomas_to_keep(10, 0.9, 0.95) == 10  # 10 of 10 bounds only 0.74: keep every one
    p = np.r_[np.linspace(0.99, 0.2, 111), [0.1, 0.05]]
    is_mel = np.r_[np.ones(111, bool), False, False]
    at_bound = referral.threshold_for_sensitivity(p, is_mel, 0.9, 0.95)
    assert referral.sensitivity_specificity(p, is_mel, at_bound)[0] == 106 / 111
    assert at_bound < referral.threshold_for_sensitivity(p, is_mel, 0.9)
    with pytest.raises(ValueError, match=r"confidence must be 0 or in \(0.5, 1\)"):
        referral.threshold_for_sensitivity(p, is_mel, 0.9, 0.4)


def test_referral_threshold_per_lesion_is_the_lower_when_lesions_repeat():
    # Melanoma lesion A has three images (0.9, 0.2, 0.15), B one (0.8), C one (0.7); two others 0.1, 0.05.
    p = np.array([0.9, 0.2, 0.15, 0.8, 0.7, 0.1, 0.05])
    is_mel = np.array([True, True, True, True, True, False, False])
    lesions = np.array(["A", "A", "A", "B", "C", "D", "E"])
    # A lesion is referred when at least half of its images are: A's score is its 2nd largest, 0.2.
    assert list(referral.lesion_scores(p[is_mel], lesions[is_mel])) == [0.2, 0.8, 0.7]
    # Target 3/5 images: the 3rd image is 0.7, the next lower 0.2. Target 2/3 lesions: B and C (0.7),
    # the next lower score among all images 0.2. Both halfway in log-odds between 0.7 and 0.2.
    chosen = referral.threshold_per_image_and_lesion(p, is_mel, lesions, 0.6)
    halfway = 1 / (1 + (3 / 7 * 4) ** 0.5)
    assert chosen["image"] == pytest.approx(halfway) and chosen["lesion"] == pytest.approx(halfway)
    # Target all: every image means 0.15; every lesion means A's score 0.2, so the image one is lower.
    chosen = referral.threshold_per_image_and_lesion(p, is_mel, lesions, 1.0)
    assert chosen["threshold"] == chosen["image"] < chosen["lesion"]


def test_exact_intervals_do_not_collapse_at_the_edges():
    # Clopper-Pearson 16/16: lower bound 0.025 ** (1 / 16) = 0.7941; 10/10: 0.025 ** 0.1 = 0.6915.
    assert lesionstats.exact_interval(16, 16) == pytest.approx((0.025 ** (1 / 16), 1.0))
    assert lesionstats.exact_interval(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1))
    # 16 melanoma images from 10 lesions, all referred: per lesion 10/10.
    hit = pd.Series([True] * 16)
    lesion = pd.Series([f"L{i}" for i in [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9]])
    found = lesionstats.lesion_proportion(hit, lesion)
    assert (found["image_hits"], found["images"], found["lesion_hits"], found["lesions"]) == (16, 16, 10, 10)
    assert found["lesion_ci95"] == pytest.approx([0.025 ** 0.1, 1.0])
    # A lesion with one of two images referred counts as referred (at least half); one of three does not.
    split = lesionstats.lesion_proportion(pd.Series([True, False, True, False, False]), pd.Series(list("AABBB")))
    assert (split["lesion_hits"], split["lesions"]) == (1, 2)


@pytest.mark.parametrize(("value", "text"), [(0.99892, "0.9989"), (0.25, "0.250"), (0.96, "0.960"),
                                             (0.99999, "0.99999"), (0.0004, "0.0004")])
def test_thresholds_print_with_the_digits_they_need(value, text):
    from training.report_honest import threshold_text

    assert threshold_text(value) == text


def test_wilson_interval_matches_the_published_values():
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 -> 0.2553-0.3662; 0/10 -> 0-0.2775.
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)


def test_lesion_bootstrap_is_wider_than_pretending_images_are_independent():
    """Ten lesions of five identical images each carry the information of ten cases, not fifty."""
    rng = np.random.default_rng(2)
    right = rng.random(10) < 0.6
    table = pd.DataFrame({"lesion_id": np.repeat([f"L{i}" for i in range(10)], 5),
                          "hit": np.repeat(right, 5).astype(float)})
    def share(t):
        return {"share": t["hit"].mean()}
    by_lesion = lesionstats.lesion_bootstrap(table, share, resamples=500)["share"]
    by_image = lesionstats.lesion_bootstrap(table.assign(lesion_id=range(50)), share, resamples=500)["share"]
    assert (by_lesion[1] - by_lesion[0]) > 1.7 * (by_image[1] - by_image[0])


def test_subgroups_by_sex_age_band_and_site():
    table = pd.DataFrame({
        "lesion_id": ["a", "b", "c", "d"], "dx": ["mel", "nv", "mel", "nv"], "predicted": ["mel", "nv", "nv", "nv"],
        "sex": ["male", "male", "female", "female"], "age": [25.0, 50.0, 80.0, None], "localization": ["back"] * 4})
    rows = lesionstats.subgroups(table, "mel", pd.Series([True, False, False, False]))
    male = rows[(rows.attribute == "sex") & (rows.value == "male")].iloc[0]
    assert (male.images, male.melanomas, male.melanoma_sensitivity, male.balanced_accuracy) == (2, 1, 1.0, 1.0)
    female = rows[(rows.attribute == "sex") & (rows.value == "female")].iloc[0]
    assert female.balanced_accuracy == 0.5 and female.melanoma_sensitivity == 0.0
    assert set(rows[rows.attribute == "age band"].value) == {"<30", "45-59", "75+", "unknown"}


def test_quality_measures_by_hand():
    grey = np.full((8, 8, 3), 128, np.uint8)
    assert quality.measure(grey) == {"brightness": pytest.approx(128.0), "highlights": pytest.approx(128.0),
                                     "clipped": 0.0, "sharpness": 0.0}
    white = np.full((8, 8, 3), 255, np.uint8)
    assert quality.measure(white)["clipped"] == 1.0 and quality.measure(white)["brightness"] == pytest.approx(255.0)
    # A 0/255 checkerboard: every interior Laplacian is +-1020, luma variance 127.5^2.
    board = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    measured = quality.measure(np.repeat(board[..., None], 3, axis=2))
    assert measured["sharpness"] == pytest.approx(1020**2 / (127.5**2 + 1.0), rel=1e-4)
    # Highlights, the 99th percentile of luma: 100 values 0..99 (luma = the grey level) put it
    # 99% of the way from the lowest to the highest, at 98.01 (numpy's linear method by hand).
    ramp = np.repeat(np.arange(100, dtype=np.uint8).reshape(10, 10)[..., None], 3, axis=2)
    assert quality.measure(ramp)["highlights"] == pytest.approx(98.01, abs=1e-3)
    # A dark photo of dark skin with one lit highlight keeps its highlights; a dim photo has none.
    lit = np.full((10, 10, 3), 40, np.uint8)
    lit[:2] = 200
    assert quality.measure(lit)["brightness"] == pytest.approx(72.0, abs=0.01)
    assert quality.measure(lit)["highlights"] == pytest.approx(200.0, abs=0.01)


def _info(**overrides) -> HonestyInfo:
    fields = dict(file="honesty.bin", bytes=0, sha256="", arrays={}, temperature=1.0,
                  ood={"score": "msp", "threshold": 0.5}, quality=LIMITS,
                  melanoma={"threshold": 0.3}, low_confidence_below=0.5)
    return HonestyInfo(**{**fields, **overrides})


@pytest.mark.parametrize(("measured", "codes"), [
    ({"brightness": 30.0, "highlights": 50.0, "clipped": 0.0, "sharpness": 0.2}, ["too_dark"]),
    # darker skin, well lit: a low mean with bright parts is not too dark
    ({"brightness": 30.0, "highlights": 90.0, "clipped": 0.0, "sharpness": 0.2}, []),
    ({"brightness": 220.0, "highlights": 240.0, "clipped": 0.0, "sharpness": 0.2}, ["too_bright"]),
    ({"brightness": 150.0, "highlights": 250.0, "clipped": 0.3, "sharpness": 0.2}, ["too_bright"]),
    ({"brightness": 150.0, "highlights": 200.0, "clipped": 0.0, "sharpness": 0.01}, ["blurry"]),
    ({"brightness": 30.0, "highlights": 40.0, "clipped": 0.0, "sharpness": 0.01}, ["too_dark", "blurry"]),
    ({"brightness": 150.0, "highlights": 200.0, "clipped": 0.0, "sharpness": 0.2}, []),
])
def test_quality_reasons(measured, codes):
    assert [r.code for r in quality_reasons(measured, _info())] == codes


def _decider(info: HonestyInfo) -> Honesty:
    honesty = Honesty.__new__(Honesty)  # the arrays are only needed by the mahalanobis and energy scores
    honesty.info = info
    honesty.arrays = {"whitening": np.eye(2), "whitened_means": np.zeros((7, 2)), "dense_kernel": np.zeros((2, 7)),
                      "dense_bias": np.zeros(7)}
    return honesty


def _probs(top: int, p: float, mel: float = 0.0) -> np.ndarray:
    rest = [(1 - p - mel) / 5] * 7
    rest[top], rest[CODES.index("mel")] = p, mel if top != CODES.index("mel") else p
    return np.array(rest)


def test_decision_order_quality_then_ood_then_reasons():
    decide = _decider(_info())
    sharp = np.tile(((np.indices((16, 16)).sum(axis=0) % 2) * 120 + 60).astype(np.uint8)[..., None], 3)
    dark = (sharp // 4).astype(np.uint8)
    f = np.zeros(2)

    def answer(pixels, probs):
        return decide.decide(pixels, probs, f, top_k(probs, CLASSES), CODES)

    assert answer(dark, _probs(5, 0.95)).status == "retake"  # quality first, even when the model is sure
    unsure = answer(sharp, _probs(5, 0.3, 0.1))  # msp 0.7 > 0.5; the top 0.3 is under 0.5
    assert unsure.status == "unsure" and [r.code for r in unsure.reasons] == ["out_of_distribution", "low_confidence"]
    ok = answer(sharp, _probs(5, 0.55, 0.35))  # melanoma 0.35 >= 0.3, not the top class
    assert ok.status == "ok" and [r.code for r in ok.reasons] == ["melanoma_risk"]
    assert ok.reasons[0].message == MESSAGES["melanoma_risk"]
    assert ok.predictions[0].code == "nv" and ok.checks["ood_score"] == pytest.approx(0.45)
    low = _decider(_info(low_confidence_below=0.6)).decide(sharp, _probs(5, 0.55), f, [], CODES)
    assert [r.code for r in low.reasons] == ["low_confidence"]


SHARP = np.tile(((np.indices((16, 16)).sum(axis=0) % 2) * 120 + 60).astype(np.uint8)[..., None], 3)


@pytest.mark.parametrize("top", CODES)
@pytest.mark.parametrize(("pixels", "status"), [(SHARP, "ok"), (SHARP // 4, "retake")])
def test_a_malignant_class_at_the_top_sends_to_a_doctor_whatever_the_status(top, pixels, status):
    # msp threshold 0.5: the top 0.6 passes (msp 0.4); melanoma at 0.6 or 0.4/6 stays under 0.9.
    probs = _probs(CODES.index(top), 0.6)
    got = _decider(_info(melanoma={"threshold": 0.9})).decide(pixels, probs, np.zeros(2), [], CODES)
    assert got.status == status
    doctor = [r for r in got.reasons if r.code == "malignant_class"]
    assert [r.message for r in doctor] == ([MESSAGES["malignant_class"]] if top in ("mel", "bcc", "akiec") else [])


def test_melanoma_risk_and_low_confidence_whatever_the_status():
    # nv 0.4 at the top, melanoma 0.35 >= 0.3: a referral and low confidence in every status.
    probs = _probs(CODES.index("nv"), 0.4, 0.35)
    for pixels, threshold, status in ((SHARP, 0.7, "ok"), (SHARP, 0.5, "unsure"), (SHARP // 4, 0.7, "retake")):
        got = _decider(_info(ood={"score": "msp", "threshold": threshold})).decide(pixels, probs, np.zeros(2), [], CODES)
        assert got.status == status
        assert [r.code for r in got.reasons][-2:] == ["melanoma_risk", "low_confidence"]


def test_honesty_file_round_trips_through_the_manifest_layout():
    arrays = {"whitening": np.arange(4.0).reshape(2, 2), "whitened_means": np.ones((7, 2)),
              "dense_kernel": np.full((2, 7), 0.5), "dense_bias": np.arange(7.0)}
    content, layout = honesty_bytes(arrays)
    assert len(content) == 4 * (4 + 14 + 14 + 7)
    assert layout["dense_bias"] == {"offset": 4 * (4 + 14 + 14), "shape": [7]}
    unpacked = _info(arrays=layout).unpack(content)
    for name, values in arrays.items():
        assert np.array_equal(unpacked[name], values)


@pytest.mark.parametrize(("which", "kinds"), [("selection", {"texture", "flat", "gradient", "terrain"}),
                                              ("report", {"medical", "text", "noise"})])
def test_nonlesion_sets_mix_photos_and_the_wrong_things(which, kinds):
    made = nonlesion.images(12, which)
    assert [k for k, _ in made].count("photo") == 6 and {k for k, _ in made} == {"photo", *kinds}
    assert all(image.size == (600, 450) and image.mode == "RGB" for _, image in made)
    again = nonlesion.images(12, which)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for (_, a), (_, b) in zip(made, again, strict=True))


def test_the_two_nonlesion_sets_share_no_source():
    assert not set(nonlesion.photo_sources("selection")) & set(nonlesion.photo_sources("report"))
    assert not set(nonlesion.KINDS["selection"]) - {"photo"} & set(nonlesion.KINDS["report"])
    selection, report = (np.stack([np.asarray(i) for _, i in nonlesion.images(40, w)]) for w in nonlesion.SETS)
    assert not any((report == image).all(axis=(1, 2, 3)).any() for image in selection)
