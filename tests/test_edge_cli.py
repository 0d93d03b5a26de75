"""`python -m edge classify` and `camera`: outputs, skipped and unreadable files, exit codes, messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edge import Classifier
from edge import camera as camera_module
from edge.answer import MESSAGES, NOT_AN_ASSESSMENT
from edge.bundle import SHIPPED_MODEL
from edge.cli import main
from edge.errors import BundleError, run_cli
from edge.labels import CODES, DISCLAIMER
from edge.manifest import SCHEMA_VERSION
from tests.camera_helpers import rgb_frame
from tests.pwa_helpers import model_output
from tests.test_edge_classifier import copy_bundle, damage, edit_manifest

# What the melanoma bundle's float32 says for every photo (tests/random_bundle.py --prefer mel),
# and the three warnings that go with it there (tests/conftest.py melanoma_photos).
MELANOMA_HEADLINE = "Most similar to Melanoma (mel), 45%."
WARNINGS = [MESSAGES[code] for code in ("malignant_class", "melanoma_risk", "low_confidence")]


@pytest.fixture(scope="module")
def photos(small_data) -> list:
    """Two 600x450 JPEGs: the bundle is untrained, so any photos do."""
    return sorted(small_data.rglob("*.jpg"))[:2]


def run_edge(repo_root, *args) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "edge", *map(str, args)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr
    return result


def test_help_starts_with_example_usage(repo_root):
    result = run_edge(repo_root, "--help")
    assert result.returncode == 0
    assert "Example usage:" in result.stdout
    assert "{classify,camera}" in result.stdout


def test_classify_json_lists_every_image_with_seven_sorted_predictions(repo_root, random_bundle, photos):
    result = run_edge(
        repo_root, "classify", random_bundle, *photos[:2], "--json", "--variant", "float32"
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert [entry["image"] for entry in output] == [str(p) for p in photos[:2]]
    expected = Classifier(random_bundle, "float32").classify(photos[0])
    for entry in output:
        probabilities = [p["probability"] for p in model_output(entry)]
        assert sorted(p["code"] for p in model_output(entry)) == sorted(CODES)
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    # The API's answer (status, reasons, the output under its status's name, checks) and its headline.
    assert {key: output[0][key] for key in expected.to_dict()} == expected.to_dict()
    assert output[0]["headline"] == expected.headline()
    assert DISCLAIMER in result.stderr


def test_a_melanoma_at_the_top_says_what_happened_and_sends_to_a_doctor(repo_root, melanoma_bundle, melanoma_photos):
    photo = melanoma_photos["ok"]
    result = run_edge(repo_root, "classify", melanoma_bundle, photo, "--top-k", "3", "--variant", "float32")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(photo)
    assert lines[1] == "  " + " ".join([MELANOMA_HEADLINE, *WARNINGS])  # the status line first, never "OK"
    assert [line.split()[0] for line in lines[2:5]] == ["mel", "akiec", "bcc"]  # 0.45, then equal shares in label order
    assert lines[2].endswith("45.0%")
    assert lines[5] == ""
    assert lines[6] == DISCLAIMER


@pytest.mark.parametrize(("status", "words"), [("unsure", "LesionLite cannot assess this photo."),
                                               ("retake", "Retake the photo. The photo is too dark")])
def test_an_unassessed_photo_prints_its_output_only_when_asked(repo_root, melanoma_bundle, melanoma_photos, status, words):
    photo = melanoma_photos[status]
    plain = run_edge(repo_root, "classify", melanoma_bundle, photo, "--variant", "float32")
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    # The status, its reasons and the referral; no class and no probability.
    assert lines[1].startswith("  " + words) and lines[1].endswith(MESSAGES["melanoma_risk"])
    assert MESSAGES["malignant_class"] not in plain.stdout and "%" not in plain.stdout
    assert "--show-unassessed prints it" in lines[2]
    shown = run_edge(repo_root, "classify", melanoma_bundle, photo, "--variant", "float32", "--show-unassessed")
    lines = shown.stdout.splitlines()
    assert lines[2] == "  " + " ".join([NOT_AN_ASSESSMENT, *WARNINGS])  # the same warnings as an ok answer
    assert lines[3].split()[0] == "mel" and lines[3].endswith("45.0%") and len(lines) == 3 + 7 + 2
    entry = json.loads(run_edge(repo_root, "classify", melanoma_bundle, photo, "--variant", "float32", "--json").stdout)[0]
    assert entry["status"] == status and "predictions" not in entry
    assert entry["unassessed_model_output"][0] == {"code": "mel", "name": "Melanoma", "probability": pytest.approx(0.45)}


def test_folder_skips_non_images_and_reports_unreadable_ones(repo_root, random_bundle, photos, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos[:2]:
        shutil.copy(path, folder)
    (folder / "notes.txt").write_text("not a photo")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated nonsense")
    result = run_edge(repo_root, "classify", random_bundle, folder, "--json")
    assert result.returncode == 0, result.stderr
    classified = [entry["image"] for entry in json.loads(result.stdout)]
    assert classified == sorted(str(folder / p.name) for p in photos[:2])
    assert f"note: skipping {folder / 'notes.txt'}: not an image file" in result.stderr
    assert f"error: {folder / 'broken.jpg'} is not an image format LesionLite reads" in result.stderr


def test_nothing_classified_exits_non_zero(repo_root, random_bundle, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    result = run_edge(repo_root, "classify", random_bundle, broken, tmp_path / "missing.jpg")
    assert result.returncode == 2
    assert f"error: cannot open {tmp_path / 'missing.jpg'}: No such file or directory" in result.stderr
    assert result.stderr.rstrip().endswith("error: no image could be classified")
    assert result.stdout == ""


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing folder", "error: bundle folder {bundle}/nowhere does not exist"),
        ("hash mismatch", "error: int8.tflite: sha256 mismatch, expected "),
        ("unknown schema", "error: {bundle}/manifest.json has schema_version 1, this runtime reads " + str(SCHEMA_VERSION)),
    ],
)
def test_bad_bundle_exits_with_message(case, message, repo_root, random_bundle, photos, tmp_path):
    bundle_dir, _ = damage(case, copy_bundle(random_bundle, tmp_path / "bundle"))
    result = run_edge(repo_root, "classify", bundle_dir, photos[0])
    assert result.returncode == 2
    assert message.format(bundle=tmp_path / "bundle") in result.stderr
    assert result.stdout == ""


def test_unknown_variant_lists_the_available_ones(repo_root, random_bundle, photos):
    result = run_edge(repo_root, "classify", random_bundle, photos[0], "--variant", "int4")
    assert result.returncode == 2
    assert (
        "error: unknown variant 'int4': this bundle has float32, float16, dynamic_int8, int8" in result.stderr
    )


def test_camera_that_cannot_open_exits_with_message(repo_root, random_bundle):
    result = run_edge(repo_root, "camera", random_bundle, "--device", "97", "--frames", "1")
    assert result.returncode == 2
    assert "error: cannot open camera 97" in result.stderr


class FakeCapture:
    """Stands in for cv2.VideoCapture: yields one BGR frame, as OpenCV does."""

    def __init__(self, frame):
        self.frame, self.released = frame, False

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return True

    def set(self, prop, value):
        return True

    def read(self):
        return True, self.frame.copy()

    def release(self):
        self.released = True


def test_camera_converts_bgr_frames_to_rgb_and_saves_the_last(
    random_bundle, photos, tmp_path, capsys, monkeypatch
):
    import cv2  # the camera command's backend, patched below
    classifier = Classifier(random_bundle, "int8")
    rgb = classifier.preprocess(photos[0])
    capture = FakeCapture(np.ascontiguousarray(rgb[:, :, ::-1]))
    monkeypatch.setattr(cv2, "VideoCapture", lambda device: capture)
    saved = tmp_path / "last.jpg"
    code = main(["camera", str(random_bundle), "--frames", "2", "--interval", "0", "--save-last", str(saved)])
    assert code == 0
    expected = camera_module.format_frame(0, classifier.classify(rgb))
    assert capsys.readouterr().out.splitlines() == [expected, expected.replace("frame 0", "frame 1")]
    assert saved.read_bytes()[:2] == b"\xff\xd8"
    assert capture.released


def test_the_camera_prints_the_doctors_reasons_and_an_unassessed_frames_output_only_when_asked(
    melanoma_bundle, melanoma_photos, capsys, monkeypatch
):
    import cv2  # the camera command's backend, patched below
    frames = {status: rgb_frame(Image.open(melanoma_photos[status])) for status in ("ok", "retake")}
    classifier = Classifier(melanoma_bundle, "float32")
    assert {status: classifier.classify(frame).status for status, frame in frames.items()} == {"ok": "ok", "retake": "retake"}
    lines = []
    for status, flags in (("ok", []), ("retake", []), ("retake", ["--show-unassessed"])):
        capture = FakeCapture(np.ascontiguousarray(frames[status][:, :, ::-1]))
        monkeypatch.setattr(cv2, "VideoCapture", lambda device, capture=capture: capture)
        assert main(["camera", str(melanoma_bundle), "--variant", "float32", "--frames", "1", *flags]) == 0
        lines.append(capsys.readouterr().out.strip())
    ok, retake, shown = lines
    top = "mel 45.0%  akiec 9.2%  bcc 9.2%"  # 0.45, then 0.55 / 6 each, ties in label order
    assert ok == f"frame 0: {' '.join([MELANOMA_HEADLINE, *WARNINGS])} | {top}"
    assert retake.startswith("frame 0: Retake the photo. The photo is too dark")
    assert retake.endswith(MESSAGES["melanoma_risk"]) and "%" not in retake
    assert shown == f"{retake} | {' '.join([NOT_AN_ASSESSMENT, *WARNINGS])} {top}"


def test_a_float32_only_bundle_is_classified_without_a_variant_flag(repo_root, random_bundle, photos, tmp_path):
    only_float = copy_bundle(random_bundle, tmp_path / "float32-only", variants=("float32",))
    edit_manifest(only_float, lambda m: m.update(default_variant="float32", variants={"float32": m["variants"]["float32"]}))
    result = run_edge(repo_root, "classify", only_float, photos[0], "--json")
    assert result.returncode == 0, result.stderr
    assert len(model_output(json.loads(result.stdout)[0])) == 7


def test_a_mistyped_manifest_field_is_named(repo_root, random_bundle, photos, tmp_path):
    broken = copy_bundle(random_bundle, tmp_path / "bundle")
    edit_manifest(broken, lambda m: m["variants"]["int8"].update(sha256=7))
    result = run_edge(repo_root, "classify", broken, photos[0])
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {broken / 'manifest.json'}: 'variants.int8.sha256' must be a JSON string, got int"


def test_run_cli_exit_codes(capsys):
    def user_error(argv):
        raise BundleError("the bundle is wrong")

    def bug(argv):
        raise KeyError("oops")

    assert run_cli(user_error, [], prog="x") == 2
    assert capsys.readouterr().err == "error: the bundle is wrong\n"
    assert run_cli(bug, [], prog="x") == 1
    err = capsys.readouterr().err
    assert err.startswith("x: internal error: KeyError: 'oops'") and err.count("\n") == 1
    assert run_cli(lambda argv: None, []) == 0


def test_without_a_bundle_the_shipped_model_is_used(tmp_path):
    from edge.cli import bundle_and_images

    photo, other = tmp_path / "mole.jpg", tmp_path / "more"
    photo.touch()
    other.mkdir()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    assert bundle_and_images([photo]) == (SHIPPED_MODEL, [photo])
    assert bundle_and_images([other, photo]) == (SHIPPED_MODEL, [other, photo])  # a folder of photos
    assert bundle_and_images([bundle, photo]) == (bundle, [photo])
    # A missing folder first, photos after: reported as the bundle it was meant to be.
    assert bundle_and_images([tmp_path / "nowhere", photo]) == (tmp_path / "nowhere", [photo])
