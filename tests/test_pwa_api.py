"""The PWA's API through Flask's test client: answers, and every refusal with its exact status and
message. Headers and pages: test_pwa_pages.py; the real server: test_pwa_server.py; the OpenAPI
contract and the fuzzing: test_pwa_openapi.py."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from bench.bombs import png_bomb
from edge import Classifier
from edge import preprocess as edge_preprocess
from edge.labels import DISCLAIMER
from edge.preprocess import PixelLimits
from pwa import api, create_app, decoding
from tests.pwa_helpers import (
    MB,
    assert_fits,
    corrupt_png,
    gif_bytes,
    heic_header,
    jpeg_bytes,
    model_output,
    png_bytes,
    png_header_only,
    schema_validator,
    synthetic_photo,
)

SEVEN_CODES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
RANDOM_BUNDLE_SIZE = 96  # tests/random_bundle.py builds a 96 px model


@pytest.fixture(scope="module")
def app(random_bundle):
    return create_app({"TESTING": True, "BUNDLE": str(random_bundle)})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def reference(random_bundle):
    """The edge runtime called directly: what the API must answer."""
    return Classifier(random_bundle, variant="int8")


@pytest.fixture(scope="module")
def photo():
    return jpeg_bytes(synthetic_photo(0))


def file_sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def predict(client, data: bytes, content_type: str = "image/jpeg"):
    return client.post("/api/predict", data=data, content_type=content_type)


def multipart(data: bytes, filename: str = "photo.jpg", field: str = "image") -> dict:
    """A multipart upload, encoded here: Werkzeug's test client spools big ones to a temp file."""
    boundary = "lesionlite-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


# --- Answers ----------------------------------------------------------------------------------


def test_predict_returns_all_classes_sorted_with_model_timing_and_disclaimer(client, reference, random_bundle, photo):
    response = client.post("/api/predict", **multipart(photo))
    assert response.status_code == 200
    body = response.get_json()
    expected = reference.classify(photo).to_dict()  # status, reasons, the output under its name, checks
    assert {key: body[key] for key in expected} == expected
    assert sorted(p["code"] for p in model_output(body)) == SEVEN_CODES
    probabilities = [p["probability"] for p in model_output(body)]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    # The bundle's default variant (int8), named by the hash of its file on disk.
    assert body["model"] == {"variant": "int8", "sha256": file_sha256(random_bundle / "int8.tflite")}
    assert set(body["timing_ms"]) == {"decode", "inference", "total"}
    assert 0 <= body["timing_ms"]["inference"] <= body["timing_ms"]["total"]
    assert body["disclaimer"] == DISCLAIMER
    assert response.headers["Cache-Control"] == "no-store"
    assert_fits(schema_validator(client.get("/api/openapi.json").get_json(), "PredictResult"), body)


@pytest.fixture(scope="module")
def melanoma_client(melanoma_bundle):
    """The melanoma bundle's float32: melanoma at 0.45 for every photo (tests/conftest.py melanoma_photos)."""
    return create_app({"TESTING": True, "BUNDLE": str(melanoma_bundle), "VARIANT": "float32"}).test_client()


@pytest.mark.parametrize("status", ["ok", "unsure", "retake"])
def test_a_melanoma_at_the_top_carries_the_doctors_reasons_whatever_the_status(melanoma_client, melanoma_photos, status):
    body = predict(melanoma_client, melanoma_photos[status].read_bytes()).get_json()
    assert body["status"] == status
    assert [r["code"] for r in body["reasons"]][-3:] == ["malignant_class", "melanoma_risk", "low_confidence"]
    # The output of a photo LesionLite cannot assess is only under the field that says so.
    output, absent = ("predictions", "unassessed_model_output") if status == "ok" else ("unassessed_model_output", "predictions")
    assert absent not in body
    assert body[output][0] == {"code": "mel", "name": "Melanoma", "probability": pytest.approx(0.45)}
    assert_fits(schema_validator(melanoma_client.get("/api/openapi.json").get_json(), "PredictResult"), body)


def test_raw_jpeg_png_and_webp_bodies_get_the_multipart_answer(client, photo):
    image = Image.open(io.BytesIO(photo))
    expected = client.post("/api/predict", **multipart(photo)).get_json()
    assert model_output(predict(client, photo, "image/jpeg").get_json()) == model_output(expected)
    lossless = model_output(client.post("/api/predict", **multipart(png_bytes(image))).get_json())
    assert model_output(predict(client, png_bytes(image), "image/png").get_json()) == lossless
    webp = io.BytesIO()
    image.save(webp, "WEBP", lossless=True)
    assert model_output(predict(client, webp.getvalue(), "image/webp").get_json()) == lossless


def test_float32_variant_is_served_when_asked(random_bundle, photo):
    client = create_app({"TESTING": True, "BUNDLE": str(random_bundle), "VARIANT": "float32"}).test_client()
    body = predict(client, photo).get_json()
    assert body["model"] == {"variant": "float32", "sha256": file_sha256(random_bundle / "float32.tflite")}


def test_model_describes_labels_variant_input_and_metrics(client, random_bundle):
    body = client.get("/api/model").get_json()
    assert [label["code"] for label in body["labels"]] == SEVEN_CODES
    assert body["labels"][4] == {"code": "mel", "name": "Melanoma"}
    assert body["variant"] == "int8"
    assert body["sha256"] == file_sha256(random_bundle / "int8.tflite")
    assert body["input_size"] == RANDOM_BUNDLE_SIZE
    # The metrics are the manifest's, measured at export, passed through unchanged.
    manifest = json.loads((random_bundle / "manifest.json").read_text())
    measured = manifest["variants"]["int8"]["metrics"]
    assert body["metrics"] == {k: measured[k] for k in ("accuracy", "balanced_accuracy", "per_class_recall",
                                                         "top1_agreement")}
    # The served variant's settings: the bundle's, with int8's own fitted thresholds in place.
    honesty = {**manifest["honesty"], **manifest["variants"]["int8"]["honesty"]}
    assert body["honesty"] == {"temperature": honesty["temperature"], "ood_score": honesty["ood"]["score"],
                               "ood_threshold": honesty["ood"]["threshold"],
                               "melanoma_threshold": honesty["melanoma"]["threshold"],
                               "low_confidence_below": honesty["low_confidence_below"],
                               "quality": {k: honesty["quality"][k] for k in
                                           ("highlights_min", "brightness_max", "clipped_max", "sharpness_min")}}
    assert body["source_run"]["name"] == "run"
    assert body["disclaimer"] == DISCLAIMER


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "variant": "int8", "disclaimer": DISCLAIMER}


def test_bundle_is_loaded_once_at_start_up(random_bundle, monkeypatch, photo):
    loads = []
    real = api.Classifier
    monkeypatch.setattr(api, "Classifier", lambda *a, **k: loads.append(a) or real(*a, **k))
    client = create_app({"TESTING": True, "BUNDLE": str(random_bundle)}).test_client()
    assert len(loads) == 1
    for _ in range(3):
        assert predict(client, photo).status_code == 200
    assert len(loads) == 1


@pytest.mark.trained
def test_exif_orientation_is_applied(tiny_bundle, sample_images):
    client = create_app({"TESTING": True, "BUNDLE": str(tiny_bundle)}).test_client()
    upright = Image.open(sample_images[2]).convert("RGB").crop((4, 1, 596, 449))
    rotated = upright.transpose(Image.Transpose.ROTATE_90)  # stored turned a quarter left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: "rotate 90 degrees clockwise to display"
    reference = Classifier(tiny_bundle)
    upright_pixels = reference.preprocess(upright).astype(float)
    # Lossless (PNG's eXIf chunk): turned back, the model input is the upright one to the byte, and
    # so is the answer. (The answer alone could not show it: trained with rotations, the model
    # gives nearly the same answer for a turned lesion; the input shows it.)
    png_tagged = png_bytes(rotated, exif=exif.tobytes())
    assert np.array_equal(reference.preprocess(png_tagged), upright_pixels)
    assert not np.array_equal(reference.preprocess(png_bytes(rotated)), upright_pixels)
    expected = predict(client, png_bytes(upright), "image/png").get_json()
    got = predict(client, png_tagged, "image/png").get_json()
    assert model_output(got) == model_output(expected) and got["status"] == expected["status"]
    # A phone's JPEG: 592x448 (multiples of 16, so the rotated file has the same block grid) at
    # quality 100. Re-encoding still moves pixels a little (up to 2 grey levels), and the tiny model's
    # top class with them when its two best are close, so the JPEG's model input is compared with the
    # upright one, and the server's answer with the Classifier's on those very bytes.
    tagged = jpeg_bytes(rotated, quality=100, exif=exif.tobytes())
    tagged_error = abs(reference.preprocess(tagged).astype(float) - upright_pixels).mean()
    untagged_error = abs(reference.preprocess(rotated).astype(float) - upright_pixels).mean()
    assert tagged_error < 1 and untagged_error > 10 * tagged_error
    from_jpeg, direct = predict(client, tagged).get_json(), reference.classify(tagged)
    assert [(p["code"], p["probability"]) for p in model_output(from_jpeg)] == [
        (p.code, pytest.approx(p.probability, abs=1e-9)) for p in direct.predictions]
    assert from_jpeg["status"] == direct.status


# --- Refusals: exact status and message, and the server keeps serving -------------------------


def _body(data: bytes, content_type: str) -> dict:
    return {"data": data, "content_type": content_type}


NO_PHOTO = ("No photo: send it as the multipart form field 'image' or as a raw body of type "
            "image/jpeg, image/png, image/webp.")
EMPTY = "The photo is empty (0 bytes): take or choose it again."
NOT_AN_IMAGE = "The photo is not an image format LesionLite reads: send a JPEG or PNG."
HEIF = ("The photo is HEIC/HEIF, which LesionLite cannot read: send a JPEG or PNG "
        "(on an iPhone: Settings > Camera > Formats > Most Compatible).")
CORRUPT = "The photo is corrupt or truncated: take or send the photo again."
OVER_20_MB = "The upload is over the limit of 20 MB: send a smaller photo."

# (how to send it, given a good JPEG photo; status; message), one per refusal the API makes.
BAD_UPLOADS = [
    pytest.param(lambda photo: multipart(photo, field="other"), 400, NO_PHOTO, id="no-image-field"),
    pytest.param(lambda photo: {}, 400, NO_PHOTO, id="no-body"),
    pytest.param(lambda photo: multipart(b""), 400, EMPTY, id="empty-file"),
    pytest.param(lambda photo: _body(b"", "image/jpeg"), 400, EMPTY, id="empty-raw-body"),
    pytest.param(lambda photo: multipart(b"not a photo\n" * 50), 415, NOT_AN_IMAGE, id="text-file-as-jpg"),
    pytest.param(lambda photo: _body(b"hello", "image/png"), 415, NOT_AN_IMAGE, id="text-as-png"),
    pytest.param(lambda photo: _body(b"hello", "text/plain"), 415,
                 "Content type text/plain is not a photo: send a JPEG or PNG.", id="text-body"),
    pytest.param(lambda photo: multipart(heic_header(), "IMG_0001.HEIC"), 415, HEIF, id="heic"),
    pytest.param(lambda photo: _body(heic_header(), "image/heic"), 415, HEIF, id="heic-raw"),
    pytest.param(lambda photo: multipart(gif_bytes(), "a.gif"), 415, NOT_AN_IMAGE, id="gif"),
    pytest.param(lambda photo: _body(gif_bytes(), "image/gif"), 415,
                 "Content type image/gif is not a photo: send a JPEG or PNG.", id="gif-raw"),
    pytest.param(lambda photo: _body(photo[: len(photo) // 2], "image/jpeg"), 400, CORRUPT, id="truncated-jpeg"),
    pytest.param(lambda photo: _body(corrupt_png(photo), "image/png"), 400, CORRUPT, id="corrupt-png"),
    pytest.param(lambda photo: _body(photo + b"\0" * (20 * MB), "image/jpeg"), 413, OVER_20_MB, id="over-20-mb"),
    pytest.param(lambda photo: multipart(b"\0" * (21 * MB)), 413, OVER_20_MB, id="over-20-mb-multipart"),
    pytest.param(
        lambda photo: _body(png_header_only(3000, 2000), "image/png"),
        413,
        "The photo is 3000x2000 pixels, over the limit of 5,000,000 for a PNG: send a smaller photo.",
        id="over-pixel-limit",
    ),
    pytest.param(
        lambda photo: _body(png_header_only(20000, 20000), "image/png"),
        413,
        "The photo has far too many pixels (limit 64,000,000): send a smaller photo.",
        id="decompression-bomb",
    ),
]


@pytest.mark.parametrize(("build", "status", "message"), BAD_UPLOADS)
def test_bad_upload_gets_exact_status_and_message_and_server_keeps_serving(client, photo, build, status, message):
    response = client.post("/api/predict", **build(photo))
    assert (response.status_code, response.get_json()) == (status, {"error": message})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert predict(client, photo).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/api/predict", 405, "Method GET is not allowed on /api/predict: use POST."),
        ("PUT", "/api/predict", 405, "Method PUT is not allowed on /api/predict: use POST."),
        ("POST", "/api/model", 405, "Method POST is not allowed on /api/model: use GET."),
        ("DELETE", "/healthz", 405, "Method DELETE is not allowed on /healthz: use GET."),
        ("GET", "/api/classify", 404, "No API endpoint /api/classify: see /api/openapi.json."),
        ("POST", "/api/", 404, "No API endpoint /api/: see /api/openapi.json."),
    ],
)
def test_wrong_method_or_unknown_endpoint_is_json(client, method, path, status, message):
    response = client.open(path, method=method)
    assert (response.status_code, response.get_json()) == (status, {"error": message})


@pytest.mark.parametrize("path", ["/api/model", "/api/nothing", "/"])
def test_too_large_body_is_a_json_413_on_any_path(client, path):
    response = client.post(path, data=b"\0" * (20 * MB + 1), content_type="image/jpeg")
    assert (response.status_code, response.get_json()) == (413, {"error": OVER_20_MB})


def test_pixel_limit_is_configurable(random_bundle, photo):
    limits = PixelLimits(jpeg=100_000)
    client = create_app({"TESTING": True, "BUNDLE": str(random_bundle), "PIXEL_LIMITS": limits}).test_client()
    response = predict(client, photo)
    assert response.status_code == 413
    assert response.get_json() == {
        "error": "The photo is 600x450 pixels, over the limit of 100,000 for a JPEG: send a smaller photo."
    }


def test_a_photo_that_finds_every_decode_slot_busy_gets_a_503_with_retry_after(random_bundle, photo):
    app = create_app({"TESTING": True, "BUNDLE": str(random_bundle), "DECODE_SLOTS": 1, "DECODE_WAIT_S": 0})
    with decoding.slots_of(app).slot():  # another photo is being decoded
        response = predict(app.test_client(), photo)
    assert (response.status_code, response.get_json()) == (
        503, {"error": "The server is busy with other photos (1 at a time): try again in 5 s."})
    assert response.headers["Retry-After"] == "5"
    assert predict(app.test_client(), photo).status_code == 200  # the slot was given back


def test_no_more_photos_are_decoded_at_once_than_there_are_slots(random_bundle, photo, monkeypatch):
    # Six photos arrive; every decode that starts waits until all six have arrived. Without the
    # slots all six would then be decoding at once; with two slots, never more than two.
    app = create_app({"TESTING": True, "BUNDLE": str(random_bundle), "DECODE_SLOTS": 2, "DECODE_WAIT_S": 60})
    arrived, inside, most = threading.Semaphore(0), [0], [0]
    all_arrived, lock = threading.Event(), threading.Lock()
    real_bytes, real_decode = api.uploaded_bytes, edge_preprocess.decode_for_model

    def arriving():
        data = real_bytes()
        arrived.release()
        return data

    def decoding_slowly(*args, **kwargs):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        all_arrived.wait(60)
        with lock:
            inside[0] -= 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(api, "uploaded_bytes", arriving)
    monkeypatch.setattr(edge_preprocess, "decode_for_model", decoding_slowly)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = [pool.submit(lambda: predict(app.test_client(), photo).status_code) for _ in range(6)]
        for _ in range(6):
            assert arrived.acquire(timeout=60)
        all_arrived.set()
        assert [answer.result() for answer in answers] == [200] * 6
    assert most[0] == 2


def test_a_heavy_photo_never_makes_a_light_one_wait(random_bundle, photo):
    app = create_app({"TESTING": True, "BUNDLE": str(random_bundle), "DECODE_SLOTS": 1, "DECODE_WAIT_S": 0})
    heavy = png_bomb(2236, 2236, "LA")  # allowed, and ~65 MB to decode
    with decoding.slots_of(app).slot(64 * MB):  # another heavy photo is being decoded
        assert predict(app.test_client(), photo).status_code == 200
        busy = predict(app.test_client(), heavy, "image/png")
        assert (busy.status_code, busy.headers["Retry-After"]) == (503, "5")
    assert predict(app.test_client(), heavy, "image/png").status_code == 200


def test_internal_errors_are_json_without_details(random_bundle, photo, monkeypatch):
    # Only a bug reaches the 500 handler; make one, outside TESTING so the handler runs.
    client = create_app({"BUNDLE": str(random_bundle)}).test_client()
    monkeypatch.setattr(Classifier, "classify_array", lambda self, pixels: 1 / 0)
    response = predict(client, photo)
    assert (response.status_code, response.get_json()) == (
        500,
        {"error": "Internal server error: the photo was not classified. Try again."},
    )


def test_uploads_are_never_spooled_to_disk(client, monkeypatch, caplog):
    import werkzeug.formparser

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_disk)
    monkeypatch.setattr(werkzeug.formparser, "TemporaryFile", no_disk, raising=False)
    noise = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    big = png_bytes(Image.fromarray(noise))  # incompressible: over werkzeug's 500 KB spool size
    assert len(big) > 1024 * 1024
    with caplog.at_level(logging.DEBUG):
        assert client.post("/api/predict", **multipart(big, filename="secret-name.png")).status_code == 200
    assert "secret-name" not in caplog.text


@pytest.mark.trained
def test_sixteen_threads_get_exactly_the_sequential_answers(tiny_bundle, sample_images):
    # Trained: the untrained bundle answers 1/7 for every class of every photo, so a mix-up
    # between threads would go unseen.
    app = create_app({"TESTING": True, "BUNDLE": str(tiny_bundle)})
    photos = [path.read_bytes() for path in sample_images[:6]]
    sequential = [model_output(predict(app.test_client(), data).get_json()) for data in photos]
    jobs = [i % len(photos) for i in range(96)]

    def ask(i):
        return i, model_output(predict(app.test_client(), photos[i]).get_json())

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, jobs))
    assert len(answers) == len(jobs)
    for i, predictions in answers:
        assert predictions == sequential[i]
    assert len({json.dumps(p) for p in sequential}) > 1  # the photos really differ
