"""The PWA's pages and static files through Flask's test client: security headers, no inline code,
the service worker and its precache list, the web manifest, CORS."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser

import pytest
from PIL import Image

from edge.labels import DISCLAIMER
from pwa import create_app
from tests.pwa_helpers import REPO

# The policy, written out here rather than read from the code under test.
EXPECTED_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@pytest.fixture(scope="module")
def client(random_bundle):
    return create_app({"TESTING": True, "BUNDLE": str(random_bundle)}).test_client()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/offline.html"),
        ("GET", "/sw.js"),
        ("GET", "/manifest.webmanifest"),
        ("GET", "/static/js/app.js"),
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
    for name, value in EXPECTED_HEADERS.items():
        assert headers[name] == value


class _InlineCode(HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[dict] = []
        self.data_blocks: list[dict] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and names.get("type") == "application/json":
            self.data_blocks.append(names)  # data, never run: the CSP would refuse it as code
        elif tag == "script":
            self.scripts.append(names)
            if "src" not in names:
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


def test_the_app_page_loads_one_module_entry_that_exists(client):
    parser = _InlineCode()
    parser.feed(client.get("/").get_data(as_text=True))
    assert parser.scripts == [{"type": "module", "src": "/static/js/app.js"}]
    assert parser.data_blocks == [{"id": "lesionlite-config", "type": "application/json"}]
    with client.get("/static/js/app.js") as response:
        assert response.status_code == 200


def test_service_worker_is_served_from_root_uncached_and_versioned(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    source = response.get_data(as_text=True)
    assert "__" not in source  # every version token replaced
    caches = dict(re.findall(r'(shell|runtime|model): "lesionlite-\1-([0-9a-f]{12})"', source))
    assert set(caches) == {"shell", "runtime", "model"}, source[:600]


def test_service_worker_precaches_every_shell_file(client):
    source = client.get("/sw.js").get_data(as_text=True)
    shell = re.search(r"const SHELL = \[(.*?)\];", source, re.S).group(1)
    listed = set(re.findall(r'"(/[^"]*)"', shell)) | ({"/offline.html"} if "OFFLINE_PAGE" in shell else set())
    for path in listed:
        with client.get(path) as response:
            assert response.status_code == 200, path
    static = REPO / "pwa" / "static"
    # The kiosk page (kiosk*.js) runs on the server's own machine, never offline from it: not precached.
    scripts = {f"/static/{p.relative_to(static).as_posix()}" for p in static.rglob("*.js")
               if not p.name.endswith(".test.mjs") and p.name != "sw.js" and "vendor" not in p.parts
               and not p.name.startswith("kiosk")}
    assert scripts == {f"/static/js/{name}.js" for name in
                       ("app", "logic", "answer", "onphone", "ondevice", "preprocess", "decode", "photo-limits", "honesty",
                        "integrity", "request")}
    assert not [path for path in listed if "/vendor/" in path or path.startswith("/bundle/")]  # cached on use
    assert scripts | {"/", "/offline.html", "/static/styles.css", "/manifest.webmanifest"} <= listed


def test_manifest_makes_the_app_installable(client):
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


def test_cors_is_off_by_default_and_on_only_for_named_origins(random_bundle, client):
    origin = {"Origin": "https://teaching.example"}
    assert "Access-Control-Allow-Origin" not in client.get("/api/model", headers=origin).headers
    named = create_app(
        {"TESTING": True, "BUNDLE": str(random_bundle), "CORS_ORIGINS": ["https://teaching.example"]}
    ).test_client()
    assert named.get("/api/model", headers=origin).headers["Access-Control-Allow-Origin"] == (
        "https://teaching.example"
    )
    other = named.get("/api/model", headers={"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
