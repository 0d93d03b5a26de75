"""The PWA's API: answers, every refusal with its exact status and message, headers, concurrency,
a schemathesis fuzz, and the real `python -m pwa` waitress server (HTTP and HTTPS)."""

from __future__ import annotations

import io
import json
import logging
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from edge import Classifier
from edge.labels import CODES, DISCLAIMER
from pwa import SECURITY_HEADERS, api, create_app
from tests.pwa_helpers import REPO, http, jpeg_bytes, png_bytes, post_photo, running_server

MB = 1024 * 1024


@pytest.fixture
def app(tiny_bundle):
    return create_app({"TESTING": True, "BUNDLE": str(tiny_bundle)})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def reference(tiny_bundle):
    """The edge runtime called directly: what the API must answer."""
    return Classifier(tiny_bundle, variant="int8")


@pytest.fixture(scope="module")
def photo(sample_images):
    return sample_images[0].read_bytes()


def predict(client, data: bytes, content_type: str = "image/jpeg"):
    return client.post("/api/predict", data=data, content_type=content_type)


def predict_multipart(client, data: bytes, filename: str = "photo.jpg"):
    return client.post("/api/predict", **_file(data, filename))


# --- Answers ----------------------------------------------------------------------------------


def test_predict_returns_all_classes_sorted_with_model_timing_and_disclaimer(client, reference, photo):
    response = predict_multipart(client, photo)
    assert response.status_code == 200
    body = response.get_json()
    assert body["predictions"] == [p.to_dict() for p in reference.classify(photo)]
    assert sorted(p["code"] for p in body["predictions"]) == sorted(CODES)
    probabilities = [p["probability"] for p in body["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    assert body["model"] == {"variant": "int8", "sha256": reference.sha256}
    assert set(body["timing_ms"]) == {"decode", "inference", "total"}
    assert 0 <= body["timing_ms"]["inference"] <= body["timing_ms"]["total"]
    assert body["disclaimer"] == DISCLAIMER
    assert response.headers["Cache-Control"] == "no-store"


def test_raw_image_body_gets_the_same_answer_as_multipart(client, photo):
    multipart = predict_multipart(client, photo).get_json()["predictions"]
    raw = predict(client, photo, "image/jpeg").get_json()["predictions"]
    assert raw == multipart


def test_png_upload_is_classified(client, reference, sample_images):
    data = png_bytes(Image.open(sample_images[1]))
    response = predict(client, data, "image/png")
    assert response.status_code == 200
    assert response.get_json()["predictions"] == [p.to_dict() for p in reference.classify(data)]


def test_float32_variant_is_served_when_asked(tiny_bundle, photo):
    client = create_app({"TESTING": True, "BUNDLE": str(tiny_bundle), "VARIANT": "float32"}).test_client()
    body = predict(client, photo).get_json()
    assert body["model"]["variant"] == "float32"
    assert body["model"]["sha256"] == Classifier(tiny_bundle, variant="float32").sha256


def test_model_describes_labels_variant_input_and_metrics(client, reference):
    body = client.get("/api/model").get_json()
    manifest = reference.manifest
    assert body["labels"] == [{"code": c, "name": n} for c, n in reference.labels]
    assert body["variant"] == "int8"
    assert body["sha256"] == reference.sha256
    assert body["input_size"] == manifest["input"]["size"]
    variant = manifest["variants"]["int8"]
    for name in ("accuracy", "balanced_accuracy", "per_class_recall", "top1_agreement"):
        assert body["metrics"][name] == variant[name]
    assert body["source_run"]["metrics"] == manifest["source_run"]["metrics"]
    assert body["disclaimer"] == DISCLAIMER


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "variant": "int8", "disclaimer": DISCLAIMER}


def test_bundle_is_loaded_once_at_start_up(tiny_bundle, monkeypatch, photo):
    loads = []
    real = api.Classifier
    monkeypatch.setattr(api, "Classifier", lambda *a, **k: loads.append(a) or real(*a, **k))
    client = create_app({"TESTING": True, "BUNDLE": str(tiny_bundle)}).test_client()
    assert len(loads) == 1
    for _ in range(3):
        assert predict(client, photo).status_code == 200
    assert len(loads) == 1


# --- EXIF orientation -------------------------------------------------------------------------


def test_exif_orientation_is_applied(client, tiny_bundle, sample_images):
    # 592x448: both sides multiples of 16, so the rotated JPEG has the same block grid and
    # quality 100 keeps re-encoding differences far below what could change an answer.
    upright = Image.open(sample_images[2]).convert("RGB").crop((4, 1, 596, 449))
    rotated = upright.transpose(Image.Transpose.ROTATE_90)  # stored turned a quarter left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: "rotate 90 degrees clockwise to display"
    tagged = jpeg_bytes(rotated, quality=100, exif=exif.tobytes())
    expected = predict(client, jpeg_bytes(upright, quality=100)).get_json()["predictions"]
    got = predict(client, tagged).get_json()["predictions"]
    # The photo is lopsided: ignoring the tag would change the model input ten times as much.
    reference = Classifier(tiny_bundle)
    upright_pixels = reference.preprocess(upright).astype(float)
    tagged_error = abs(reference.preprocess(tagged).astype(float) - upright_pixels).mean()
    untagged_error = abs(reference.preprocess(rotated).astype(float) - upright_pixels).mean()
    assert tagged_error < 1 and untagged_error > 10 * tagged_error
    assert got[0]["code"] == expected[0]["code"]
    by_code = {p["code"]: p["probability"] for p in expected}
    assert max(abs(p["probability"] - by_code[p["code"]]) for p in got) <= 0.02


# --- Refusals: exact status and message, and the server keeps serving -------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height but holds almost no data: a decompression bomb's header."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _heic_header() -> bytes:
    return struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0" + b"mif1heic" + b"\0" * 200


def _corrupt_png(photo: bytes) -> bytes:
    data = bytearray(png_bytes(Image.open(io.BytesIO(photo))))
    start = data.index(b"IDAT") + 40
    data[start : start + 400] = b"\xff" * 400  # damage the compressed pixels
    return bytes(data)


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 60, 40)).save(buffer, "GIF")
    return buffer.getvalue()


def _file(data: bytes, filename: str = "photo.jpg", field: str = "image") -> dict:
    """A multipart upload, encoded here: Werkzeug's test client spools big ones to a temp file."""
    boundary = "lesionlite-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def _body(data: bytes, content_type: str) -> dict:
    return {"data": data, "content_type": content_type}


OVER_20_MB = "The upload is over the limit of 20 MB: send a smaller photo."

# (how to send it, given a good JPEG photo; status; message), one per refusal the API makes.
BAD_UPLOADS = [
    pytest.param(lambda photo: _file(photo, field="other"), 400, api.NO_PHOTO, id="no-image-field"),
    pytest.param(lambda photo: {}, 400, api.NO_PHOTO, id="no-body"),
    pytest.param(lambda photo: _file(b""), 400, api.EMPTY_PHOTO, id="empty-file"),
    pytest.param(lambda photo: _body(b"", "image/jpeg"), 400, api.EMPTY_PHOTO, id="empty-raw-body"),
    pytest.param(lambda photo: _file(b"not a photo\n" * 50), 415, api.NOT_AN_IMAGE, id="text-file-as-jpg"),
    pytest.param(
        lambda photo: _body(b"hello", "text/plain"), 415, "Content type text/plain is not a photo: send a JPEG or PNG.",
        id="text-body",
    ),
    pytest.param(lambda photo: _file(_heic_header(), "IMG_0001.HEIC"), 415, api.HEIF_PHOTO, id="heic"),
    pytest.param(lambda photo: _body(_gif(), "image/gif"), 415, api.NOT_AN_IMAGE, id="gif"),
    pytest.param(
        lambda photo: _body(photo[: len(photo) // 2], "image/jpeg"), 400, api.CORRUPT_PHOTO, id="truncated-jpeg"
    ),
    pytest.param(lambda photo: _body(_corrupt_png(photo), "image/png"), 400, api.CORRUPT_PHOTO, id="corrupt-png"),
    pytest.param(lambda photo: _body(photo + b"\0" * (20 * MB), "image/jpeg"), 413, OVER_20_MB, id="over-20-mb"),
    pytest.param(lambda photo: _file(b"\0" * (21 * MB)), 413, OVER_20_MB, id="over-20-mb-multipart"),
    pytest.param(
        lambda photo: _body(_png_header_only(9000, 8000), "image/png"),
        413,
        "The image is 9000x8000 pixels, over the limit of 64,000,000: send a smaller photo.",
        id="over-pixel-limit",
    ),
    pytest.param(
        lambda photo: _body(_png_header_only(20000, 20000), "image/png"),
        413,
        "The image has too many pixels (limit 64,000,000): send a smaller photo.",
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


def test_pixel_limit_is_configurable(tiny_bundle, photo):
    client = create_app({"TESTING": True, "BUNDLE": str(tiny_bundle), "MAX_PIXELS": 100_000}).test_client()
    response = predict(client, photo)
    assert response.status_code == 413
    assert response.get_json() == {
        "error": "The image is 600x450 pixels, over the limit of 100,000: send a smaller photo."
    }


def test_internal_errors_are_json_without_details(tiny_bundle, photo, monkeypatch):
    # Only a bug reaches the 500 handler; make one, outside TESTING so the handler runs.
    client = create_app({"BUNDLE": str(tiny_bundle)}).test_client()
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
        assert predict_multipart(client, big, filename="secret-name.png").status_code == 200
    assert "secret-name" not in caplog.text


# --- Headers and pages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/offline.html"),
        ("GET", "/sw.js"),
        ("GET", "/manifest.webmanifest"),
        ("GET", "/static/app.js"),
        ("GET", "/static/icons/icon-192.png"),
        ("GET", "/api/model"),
        ("GET", "/healthz"),
        ("GET", "/api/openapi.json"),
        ("POST", "/api/predict"),
        ("GET", "/api/nothing"),
        ("GET", "/nothing"),
    ],
)
def test_security_headers_on_every_response(client, method, path):
    with client.open(path, method=method) as response:
        headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "camera=(self)" in headers["Permissions-Policy"]


class _InlineCode(HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style" or "style" in names:
            self.problems.append(f"inline style on <{tag}>")
        self.problems += [f"{k} handler on <{tag}>" for k in names if k.startswith("on")]


@pytest.mark.parametrize("path", ["/", "/offline.html"])
def test_pages_have_no_inline_code_and_show_the_disclaimer(client, path):
    html = client.get(path).get_data(as_text=True)
    parser = _InlineCode()
    parser.feed(html)
    assert parser.problems == []
    assert DISCLAIMER in html


def test_service_worker_is_served_from_root_uncached_and_versioned(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    source = response.get_data(as_text=True)
    assert "__SHELL_VERSION__" not in source
    assert 'const VERSION = "' in source


def test_manifest_makes_the_app_installable(client, app):
    with client.get("/manifest.webmanifest") as response:
        assert response.mimetype == "application/manifest+json"
        manifest = json.loads(response.get_data())
    for key in ("id", "name", "short_name", "start_url", "scope", "theme_color", "background_color"):
        assert manifest[key], key
    assert manifest["display"] == "standalone"
    icons = {(icon["sizes"], icon.get("purpose", "any")) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= icons
    for icon in manifest["icons"]:
        with client.get(icon["src"]) as image_response:
            assert image_response.status_code == 200
            width, height = Image.open(io.BytesIO(image_response.get_data())).size
        assert f"{width}x{height}" == icon["sizes"]


def test_static_files_come_only_from_the_app_folder(client):
    assert client.get("/static/../__init__.py").status_code == 404
    assert client.get("/static/%2e%2e/__init__.py").status_code == 404
    assert client.get("/static/..%2fapi.py").status_code == 404


def test_cors_is_off_by_default_and_on_only_for_named_origins(tiny_bundle):
    default = create_app({"TESTING": True, "BUNDLE": str(tiny_bundle)}).test_client()
    origin = {"Origin": "https://teaching.example"}
    assert "Access-Control-Allow-Origin" not in default.get("/api/model", headers=origin).headers
    named = create_app(
        {"TESTING": True, "BUNDLE": str(tiny_bundle), "CORS_ORIGINS": ["https://teaching.example"]}
    ).test_client()
    assert named.get("/api/model", headers=origin).headers["Access-Control-Allow-Origin"] == (
        "https://teaching.example"
    )
    other = named.get("/api/model", headers={"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


# --- Concurrency ------------------------------------------------------------------------------


def test_sixteen_threads_get_exactly_the_sequential_answers(app, sample_images):
    photos = [path.read_bytes() for path in sample_images[:6]]
    sequential = [predict(app.test_client(), data).get_json()["predictions"] for data in photos]
    jobs = [i % len(photos) for i in range(96)]

    def ask(i):
        return i, predict(app.test_client(), photos[i]).get_json()["predictions"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, jobs))
    assert len(answers) == len(jobs)
    for i, predictions in answers:
        assert predictions == sequential[i]
    assert len({json.dumps(p) for p in sequential}) > 1  # the photos really differ


# --- Fuzzing the OpenAPI document -------------------------------------------------------------


def test_fuzzed_requests_never_get_a_server_error(tiny_bundle):
    # TESTING propagates exceptions: any input that would have been a 500 fails the test.
    app = create_app({"TESTING": True, "BUNDLE": str(tiny_bundle)})
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    # Schemathesis' own pytest loader for fixtures (from_fixture) breaks on pytest 9, so its
    # strategies drive a plain Hypothesis test: valid requests and deliberately invalid ones.
    cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE))
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    @given(case=cases)
    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(checks=checks)

    fuzz()


# --- The real server: python -m pwa with waitress ---------------------------------------------


def test_python_m_pwa_serves_predictions_over_real_http(tiny_bundle, tmp_path, client, photo):
    expected = predict(client, photo).get_json()["predictions"]
    with running_server(tiny_bundle, tmp_path) as server:
        status, body = post_photo(server.base_url, photo)
        assert status == 200
        assert body["predictions"] == expected
        assert body["disclaimer"] == DISCLAIMER
        status, headers, page = http("GET", f"{server.base_url}/")
        assert status == 200 and DISCLAIMER.encode() in page
        assert headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
        assert headers["Server"] == "lesionlite"
        assert post_photo(server.base_url, b"hello", "image/jpeg") == (415, {"error": api.NOT_AN_IMAGE})
        assert post_photo(server.base_url, photo)[0] == 200  # still serving
    assert "Traceback" not in server.stderr()


def test_python_m_pwa_refuses_oversized_bodies(tiny_bundle, tmp_path, photo):
    with running_server(tiny_bundle, tmp_path, "--max-upload-mb", "1") as server:
        slightly_over = photo + b"\0" * MB
        assert post_photo(server.base_url, slightly_over) == (
            413,
            {"error": "The upload is over the limit of 1 MB: send a smaller photo."},
        )
        # Far over: waitress refuses it from the Content-Length alone (its own plain-text 413).
        host, port = server.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(
                b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                + f"Content-Length: {4 * MB}\r\n\r\n".encode()
            )
            assert connection.recv(100).startswith(b"HTTP/1.1 413 ")
        assert post_photo(server.base_url, photo)[0] == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bundle", "/nonexistent/bundle"], "bundle folder /nonexistent/bundle does not exist"),
        (["--variant", "float99"], "unknown variant 'float99'"),
    ],
)
def test_python_m_pwa_with_a_bad_bundle_exits_with_the_message(tiny_bundle, args, message):
    command = [sys.executable, "-m", "pwa", "--bundle", str(tiny_bundle), "--port", "0", *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.startswith("python -m pwa: error: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def test_python_m_pwa_serves_https_with_cert_and_key(tiny_bundle, tmp_path, certificate, client, photo):
    cert, key = certificate
    trust = ssl.create_default_context(cafile=str(cert))
    expected = predict(client, photo).get_json()["predictions"]
    with running_server(tiny_bundle, tmp_path, "--cert", str(cert), "--key", str(key)) as server:
        assert server.base_url.startswith("https://127.0.0.1:")
        status, body = post_photo(server.base_url, photo, context=trust)
        assert (status, body["predictions"]) == (200, expected)
        big = png_bytes(Image.open(io.BytesIO(photo)).resize((1800, 1350)))  # many TLS records
        assert post_photo(server.base_url, big, "image/png", context=trust)[0] == 200
        status, headers, _ = http("GET", f"{server.base_url}/api/model", context=trust)
        assert status == 200 and headers["Cache-Control"] == "no-store"


def test_python_m_pwa_with_a_missing_key_exits_with_the_message(tiny_bundle, certificate):
    cert, _ = certificate
    command = [sys.executable, "-m", "pwa", "--bundle", str(tiny_bundle), "--port", "0",
               "--cert", str(cert), "--key", "/nonexistent/key.pem"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "python -m pwa: error: cannot read /nonexistent/key.pem: no such file" in result.stderr
    assert "Traceback" not in result.stderr
