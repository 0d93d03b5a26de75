"""What the server gives the page for on-device classification, through Flask's test client: the
page's configuration, the bundle's files (/bundle/...), the precompressed runtime (brotli, gzip or
plain by Accept-Encoding) and the service worker's cache versions."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from edge.answer import MESSAGES
from edge.labels import DISCLAIMER
from pwa import create_app, pages, precompressed
from tests.pwa_helpers import REPO

VENDOR = REPO / "pwa" / "static" / "vendor"
WASM = "litert/litert_wasm_internal.wasm"


@pytest.fixture(scope="module")
def client(random_bundle):
    return create_app({"TESTING": True, "BUNDLE": str(random_bundle)}).test_client()


@pytest.fixture(scope="module")
def vendor():
    if not (VENDOR / "build.json").is_file():
        pytest.fail("the on-device runtime is not built: make web")
    return json.loads((VENDOR / "build.json").read_text())


class _Config(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inside, self.text = False, ""

    def handle_starttag(self, tag, attrs):
        self.inside = tag == "script" and dict(attrs).get("id") == "lesionlite-config"

    def handle_data(self, data):
        if self.inside:
            self.text += data

    def handle_endtag(self, tag):
        self.inside = False


def page_config(client) -> dict:
    parser = _Config()
    parser.feed(client.get("/").get_data(as_text=True))
    return json.loads(parser.text)


def test_the_page_names_the_servers_model_and_carries_the_servers_messages(client, random_bundle, vendor):
    config = page_config(client)
    manifest = json.loads((random_bundle / "manifest.json").read_text())
    assert config["variant"] == "int8" == manifest["default_variant"]
    assert config["sha256"] == manifest["variants"]["int8"]["sha256"]
    assert config["manifest"] == "/bundle/manifest.json"
    assert config["runtime"] == {"module": "/static/vendor/litert.js", "wasm": "/static/vendor/litert/", "available": True}
    assert config["messages"] == MESSAGES  # the very texts edge/answer.py answers with
    assert config["malignant"] == ["akiec", "bcc", "mel"]  # melanoma, basal cell and intraepithelial carcinoma
    assert config["disclaimer"] == DISCLAIMER
    assert config["imageUnreadable"] == "The photo is not an image format LesionLite reads: send a JPEG or PNG."


def test_the_bundle_files_named_by_the_manifest_are_served_and_nothing_else(client, random_bundle):
    manifest = json.loads((random_bundle / "manifest.json").read_text())
    response = client.get("/bundle/manifest.json")
    assert response.status_code == 200 and response.get_json() == manifest
    overrides = [v["honesty"] for v in manifest["variants"].values() if v.get("honesty")]
    assert overrides, "the export fits its quantized variants' own statistics (manifest schema 4)"
    for entry in [*manifest["variants"].values(), manifest["honesty"], *overrides]:
        response = client.get(f"/bundle/{entry['file']}")
        assert response.status_code == 200, entry["file"]
        assert hashlib.sha256(response.get_data()).hexdigest() == entry["sha256"]
        assert response.headers["Cache-Control"] == "no-cache"
        assert "Accept-Encoding" in response.headers["Vary"]
    for name in ("nothing.tflite", "..%2fmanifest.json", ".lock"):
        assert client.get(f"/bundle/{name}").status_code == 404, name


def test_bundle_files_are_gzipped_when_accepted_and_revalidate_with_a_304(client, random_bundle):
    plain = (random_bundle / "honesty.bin").read_bytes()
    response = client.get("/bundle/honesty.bin", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.get_data()) == plain
    assert len(response.get_data()) < len(plain)
    again = client.get("/bundle/honesty.bin", headers={"Accept-Encoding": "gzip", "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    identity = client.get("/bundle/honesty.bin", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in identity.headers and identity.get_data() == plain
    assert identity.headers["ETag"] != response.headers["ETag"]


@pytest.mark.parametrize(("header", "coding"), [
    ("gzip, deflate, br, zstd", "br"),
    ("gzip, deflate", "gzip"),
    ("br;q=0, gzip;q=0.5", "gzip"),
    ("identity", None),
    (None, None),
])
def test_the_runtime_is_sent_precompressed_by_accept_encoding(client, vendor, header, coding):
    headers = {"Accept-Encoding": header} if header else {}
    with client.get(f"/static/vendor/{WASM}", headers=headers) as response:
        body = response.get_data()
    assert response.status_code == 200
    assert response.mimetype == "application/wasm"  # WebAssembly.instantiateStreaming needs it
    assert response.headers.get("Content-Encoding") == coding
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"]
    decoded = {"br": lambda b: None, "gzip": gzip.decompress, None: lambda b: b}[coding](body)
    if coding == "br":
        assert len(body) == vendor["files"][WASM]["compressed"]["br"] < 0.25 * vendor["files"][WASM]["bytes"]
    else:
        assert hashlib.sha256(decoded).hexdigest() == vendor["files"][WASM]["sha256"]


def test_small_app_files_are_sent_as_they_are_and_the_variants_only_by_their_original_name(client, vendor):
    with client.get("/static/js/app.js", headers={"Accept-Encoding": "gzip, br"}) as response:
        assert "Content-Encoding" not in response.headers and "Vary" not in response.headers
    with client.get(f"/static/vendor/{WASM}.br") as response:
        assert response.status_code == 404


def test_accepted_codings_reads_q_values(tmp_path: Path):
    assert precompressed.accepted_codings("gzip;q=0.8, br;q=0, *;q=0.1") == {"gzip", "*"}
    assert precompressed.accepted_codings("gzip;q=x") == set()
    (tmp_path / "a.wasm").write_bytes(b"x")
    (tmp_path / "a.wasm.gz").write_bytes(zlib.compress(b"x"))
    assert precompressed.choose(tmp_path, "a.wasm", "br, gzip") == ("gzip", "a.wasm.gz", True)
    assert precompressed.choose(tmp_path, "a.wasm", "br") == (None, None, True)
    assert precompressed.choose(tmp_path, "b.wasm", "gzip") == (None, None, False)


def test_service_worker_caches_are_versioned_by_shell_runtime_and_manifest(client, random_bundle, vendor):
    source = client.get("/sw.js").get_data(as_text=True)
    caches = dict(re.findall(r'(shell|runtime|model): "lesionlite-\1-([0-9a-f]{12})"', source))
    assert caches["runtime"] == vendor["version"]
    assert caches["model"] == hashlib.sha256((random_bundle / "manifest.json").read_bytes()).hexdigest()[:12]
    assert len(set(caches.values())) == 3


def test_without_the_vendor_build_the_page_is_told_the_runtime_is_missing(tmp_path: Path):
    assert pages.runtime_version(tmp_path / "bare") is None  # the page then says so and uses the kiosk
    (tmp_path / "built" / "vendor").mkdir(parents=True)
    (tmp_path / "built" / "vendor" / "build.json").write_text('{"version": "0123456789ab"}')
    assert pages.runtime_version(tmp_path / "built") == "0123456789ab"
