"""The PWA in a real browser: Debian's Chromium driven by Playwright, as a Pixel 7, against the
real `python -m pwa` server with the untrained random bundle (the flows, not the model's answers).
Chromium's fake camera plays a Y4M file made from a synthetic lesion photo. These tests choose
"On the kiosk" (the server's path); on-device classification, the default, is tested in
tests/test_pwa_ondevice_browser.py."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from edge.answer import NOT_AN_ASSESSMENT
from edge.labels import DISCLAIMER
from tests.pwa_helpers import (
    REPO,
    find_chromium,
    http,
    jpeg_bytes,
    model_output,
    post_photo,
    running_server,
    synthetic_photo,
    uploaded_image,
    y4m_from_image,
)

pytestmark = pytest.mark.browser

SCREENSHOT = REPO / "runs" / "screenshots" / "pwa-result.png"
CAMERA_SIDE = 480  # the fake camera's square frames (I420 needs even sides)
TIMEOUT_MS = 15_000


def shows_probability(text: str, probability: float) -> bool:
    """The displayed percent fits the probability (its exact rounding is tested in tests/js/)."""
    if text == "<1%":
        return probability < 0.01
    if text == ">99%":
        return probability > 0.99
    match = re.fullmatch(r"(\d{1,2})%", text)
    return match is not None and abs(int(match.group(1)) - probability * 100) <= 0.5 + 1e-9


# --- Fixtures: one server and one browser for the module, a fresh phone per test ----------------


@pytest.fixture(scope="module")
def chromium_path():
    chromium = find_chromium()
    if chromium is None:
        pytest.fail("Chromium is missing: apt-get install chromium (scripts/install-system-deps.sh)")
    return str(chromium)


@pytest.fixture(scope="module")
def server(random_bundle, tmp_path_factory):
    with running_server(random_bundle, tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = [folder / f"lesion-{seed}.jpg" for seed in range(3)]
    for seed, path in enumerate(paths):
        path.write_bytes(jpeg_bytes(synthetic_photo(seed)))
    return paths


@pytest.fixture(scope="module")
def camera_video(tmp_path_factory):
    return y4m_from_image(synthetic_photo(0), tmp_path_factory.mktemp("camera") / "lesion.y4m", CAMERA_SIDE)


@pytest.fixture(scope="module")
def browser_args(camera_video):
    return [
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_video}",
        # Nothing but the local server (127.0.0.1, and localhost: the kiosk listener's own name): no
        # updates, no fonts, no telemetry from the test browser.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
    ]


@pytest.fixture(scope="module")
def playwright_instance():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright_instance, chromium_path, browser_args):
    browser = playwright_instance.chromium.launch(executable_path=chromium_path, args=browser_args)
    yield browser
    browser.close()


@pytest.fixture
def phone(playwright_instance):
    return dict(playwright_instance.devices["Pixel 7"])


def new_page(browser, phone, server, **options):
    context = browser.new_context(**phone, base_url=server.base_url, **options)
    context.set_default_timeout(TIMEOUT_MS)
    return context, context.new_page()


def on_the_kiosk(page) -> None:
    """Open the app and choose the server's path instead of the on-device default."""
    page.goto("/")
    page.locator("#engine-kiosk").check()


def wait_in_page(page, condition: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JS condition from an evaluate call: wait_for_function polls with eval, which the CSP forbids."""
    met = page.evaluate(
        f"""async () => {{
            const end = Date.now() + {timeout_s * 1000};
            while (Date.now() < end) {{
                if ({condition}) return true;
                await new Promise((resolve) => setTimeout(resolve, 50));
            }}
            return false;
        }}"""
    )
    assert met, f"timed out waiting for {condition}"


def shown_top(page) -> list[tuple[str, float, str]]:
    """(code, probability, displayed percent) of each row in the result's top list."""
    rows = page.locator("#top3 > li")
    return [
        (
            rows.nth(i).get_attribute("data-code"),
            float(rows.nth(i).get_attribute("data-probability")),
            rows.nth(i).locator(".bar-value").inner_text(),
        )
        for i in range(rows.count())
    ]


# The doctor's reasons, and the reasons shown only beside the model's output (ARCHITECTURE.md,
# "Honest answers"), written out here rather than read from the code under test.
DOCTOR = ("malignant_class", "melanoma_risk")
WITH_OUTPUT_ONLY = ("malignant_class", "low_confidence")


def banner_reasons(answer: dict) -> list[dict]:
    """The reasons the status banner lists: for ok all but low confidence (it has its own notice);
    otherwise those a person must see while the model's output is hidden."""
    hidden = ("low_confidence",) if answer["status"] == "ok" else WITH_OUTPUT_ONLY
    return [r for r in answer["reasons"] if r["code"] not in hidden]


def listed(page, selector: str) -> list[tuple[str, str]]:
    """(data-code, text) of each item of a list of reasons."""
    items = page.locator(f"{selector} li")
    return [(items.nth(i).get_attribute("data-code"), items.nth(i).inner_text()) for i in range(items.count())]


def assert_page_shows(page, answer: dict) -> None:
    """The result view shows exactly this API answer: the status and its reasons first, then (for
    ok at once, otherwise after "show anyway", under the statement that it is not an assessment
    and with the doctor's reasons) the top three, all seven, notices, disclaimer."""
    banner = page.locator("#status-banner")
    assert banner.get_attribute("data-status") == answer["status"]
    assert listed(page, "#status-reasons") == [(r["code"], r["message"]) for r in banner_reasons(answer)]
    if answer["status"] != "ok":
        assert page.locator("#model-output").is_hidden() and page.locator("#retake").is_visible()
        page.locator("#show-anyway").tap()
        assert page.locator("#unassessed-note").is_visible()
        assert page.locator("#unassessed-note strong").inner_text() == NOT_AN_ASSESSMENT
        assert listed(page, "#output-warnings") == [(r["code"], r["message"]) for r in answer["reasons"]
                                                    if r["code"] in DOCTOR]
    else:
        assert page.locator("#unassessed-note").is_hidden()
    assert page.locator("#model-output").is_visible()
    predictions = model_output(answer)
    top = shown_top(page)
    assert [(code, probability) for code, probability, _ in top] == [
        (p["code"], p["probability"]) for p in predictions[:3]
    ]
    assert all(shows_probability(text, probability) for _, probability, text in top), top
    all_rows = page.locator("#all-classes tr")
    assert all_rows.count() == 7
    assert [all_rows.nth(i).get_attribute("data-code") for i in range(7)] == [p["code"] for p in predictions]
    low = any(r["code"] == "low_confidence" for r in answer["reasons"])
    assert page.locator("#low-confidence").is_visible() == low
    assert page.locator("#disclaimer").inner_text() == DISCLAIMER
    assert "Not a diagnosis." in page.locator("#announcer").inner_text()


# --- Tests ------------------------------------------------------------------------------------


def test_camera_capture_shows_the_servers_answer_for_the_captured_photo(browser, phone, server):
    # No service worker: once one controls the page, its fetches bypass the page's routes.
    context, page = new_page(browser, phone, server, permissions=["camera"], service_workers="block")
    on_the_kiosk(page)
    page.locator("#capture").wait_for(state="visible")
    wait_in_page(page, "document.querySelector('#camera-video').videoWidth > 0")
    sent = []

    def record(route):
        sent.append(uploaded_image(route.request))
        route.continue_()

    page.route("**/api/predict", record)
    page.locator("#capture").tap()
    page.locator("#result-view").wait_for(state="visible")
    [photo] = sent
    width, height = Image.open(io.BytesIO(photo)).size
    assert Image.open(io.BytesIO(photo)).format == "JPEG"
    assert width == height == round(CAMERA_SIDE * 0.8)  # the guide square, at most 512 px

    status, answer = post_photo(server.base_url, photo)
    assert status == 200
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert_page_shows(page, answer)
    assert page.locator("#result-where").inner_text().startswith("Analysed on the kiosk by model int8 (")

    page.locator("details.all-classes > summary").tap()
    assert page.locator("#all-classes").is_visible()
    page.locator("#retake").tap()
    page.locator("#capture").wait_for(state="visible")
    assert page.locator("#result-view").is_hidden()
    context.close()


def test_file_input_fallback_when_the_camera_is_refused(browser, phone, server, photo_files):
    context, page = new_page(browser, phone, server)  # no camera permission: refused
    on_the_kiosk(page)
    page.locator("#camera-status").filter(has_text="Camera permission was refused").wait_for()
    assert page.locator("#capture").is_hidden()
    assert page.locator("#camera-file").get_attribute("capture") == "environment"
    photo = photo_files[1].read_bytes()
    page.locator("#camera-file").set_input_files(str(photo_files[1]))
    page.locator("#result-view").wait_for(state="visible")
    status, answer = post_photo(server.base_url, photo)
    assert status == 200
    assert_page_shows(page, answer)
    context.close()


def test_the_apis_refusal_is_shown_to_the_user(browser, phone, server, tmp_path):
    not_a_photo = tmp_path / "lesion.jpg"
    not_a_photo.write_text("this is a text file with a .jpg name\n")
    context, page = new_page(browser, phone, server)
    on_the_kiosk(page)
    page.locator("#gallery-file").set_input_files(str(not_a_photo))
    page.locator("#error").wait_for(state="visible")
    assert page.locator("#error-text").inner_text() == (
        "The photo is not an image format LesionLite reads: send a JPEG or PNG."
    )
    assert page.locator("#error-retry").is_hidden()  # retrying the same file cannot help
    assert page.locator("#capture-view").is_visible()  # straight back to taking a photo
    assert page.locator("#result-view").is_hidden()
    context.close()


def test_unreachable_server_is_explained(browser, phone, server):
    context, page = new_page(browser, phone, server, service_workers="block")  # routes see every request
    on_the_kiosk(page)
    page.route("**/api/predict", lambda route: route.abort("connectionrefused"))
    page.locator("#gallery-file").set_input_files(
        files=[{"name": "a.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff"}]
    )
    page.locator("#error").wait_for(state="visible")
    assert "Cannot reach the LesionLite server" in page.locator("#error-text").inner_text()
    assert page.locator("#offline-notice").is_visible()
    context.close()


def test_installable_with_no_errors(playwright_instance, chromium_path, browser_args, server, tmp_path):
    context = playwright_instance.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=chromium_path, args=browser_args, base_url=server.base_url
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto("/")
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        cdp = context.new_cdp_session(page)
        assert cdp.send("Page.getInstallabilityErrors") == {"installabilityErrors": []}
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["errors"] == []
        assert json.loads(manifest["data"])["short_name"] == "LesionLite"
    finally:
        context.close()


def _controlled_page(browser, phone, server, **options):
    context, page = new_page(browser, phone, server, **options)
    page.goto("/")
    return context, page


def test_offline_reload_is_served_by_the_service_worker(browser, phone, server):
    context, page = _controlled_page(browser, phone, server)
    wait_in_page(page, "navigator.serviceWorker.controller !== null")
    wait_in_page(page, "document.querySelector('#engine-status').textContent.includes('runs on this phone')", 60)
    context.set_offline(True)
    response = page.reload()
    assert response is not None and response.from_service_worker
    assert page.locator("h1").inner_text() == "LesionLite"
    page.locator("#offline-notice").wait_for(state="visible")
    wait_in_page(page, "document.querySelector('#offline-text').textContent.includes('analysed on this phone')", 60)
    # A page that was never cached gets the offline page, which says what works without a connection.
    page.goto("/never-visited")
    assert "without a connection once it has been opened online" in " ".join(page.locator("#offline-page").inner_text().split())
    # The API is never answered from a cache.
    assert page.evaluate("fetch('/healthz').then(() => 'answered', () => 'failed')") == "failed"
    context.close()


def test_without_the_service_worker_an_offline_reload_fails(browser, phone, server):
    from playwright.sync_api import Error

    context, page = _controlled_page(browser, phone, server, service_workers="block")
    context.set_offline(True)
    with pytest.raises(Error, match="ERR_INTERNET_DISCONNECTED"):
        page.reload()
    context.close()


def test_service_worker_never_caches_the_api(browser, phone, server, photo_files):
    context, page = _controlled_page(browser, phone, server, permissions=["camera"])
    wait_in_page(page, "navigator.serviceWorker.controller !== null")
    page.locator("#gallery-file").set_input_files(str(photo_files[2]))
    page.locator("#result-view").wait_for(state="visible")
    page.evaluate("fetch('/api/model').then(r => r.json())")
    cached = page.evaluate(
        """async () => {
            const urls = [];
            for (const name of await caches.keys()) {
                for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
            }
            return urls.map((url) => new URL(url).pathname);
        }"""
    )
    assert {"/", "/static/js/app.js", "/static/js/logic.js", "/offline.html"} <= set(cached)
    # The runtime, the model the page used and int8's own statistics file (manifest schema 4), kept
    # for offline use: one wasm build, not both.
    manifest = json.loads(http("GET", f"{server.base_url}/bundle/manifest.json")[2])
    own = manifest["variants"]["int8"]["honesty"]["file"]
    assert {"/static/vendor/litert.js", "/bundle/manifest.json", "/bundle/int8.tflite", f"/bundle/{own}"} <= set(cached)
    assert len([path for path in cached if path.endswith(".wasm")]) == 1
    assert not [path for path in cached if path.startswith("/api") or path == "/healthz"]
    status, _, _ = http("GET", f"{server.base_url}/sw.js")
    assert status == 200
    context.close()


def _show_status(browser, phone, server, photo: Path, status: str, screenshot: str) -> dict:
    context, page = new_page(browser, phone, server)
    on_the_kiosk(page)
    page.locator("#gallery-file").set_input_files(str(photo))
    page.locator("#result-view").wait_for(state="visible")
    code, answer = post_photo(server.base_url, photo.read_bytes())
    assert code == 200 and answer["status"] == status, answer["status"]
    assert page.locator("#result-heading").inner_text() == {
        "unsure": "LesionLite cannot assess this photo", "retake": "Retake the photo"}[status]
    path = SCREENSHOT.with_name(screenshot)
    page.screenshot(path=str(path), full_page=True)
    assert_page_shows(page, answer)
    context.close()
    return answer


def test_a_dark_photo_is_answered_retake_with_its_advice(browser, phone, server, photo_files, tmp_path):
    dark = tmp_path / "dark.jpg"
    dark.write_bytes(jpeg_bytes(Image.eval(Image.open(photo_files[0]), lambda v: v // 6)))
    answer = _show_status(browser, phone, server, dark, "retake", "pwa-retake.png")
    assert "too_dark" in [r["code"] for r in answer["reasons"]]


@pytest.fixture(scope="module")
def trained_server(tiny_bundle, tmp_path_factory):
    with running_server(tiny_bundle, tmp_path_factory.mktemp("trained-server")) as running:
        yield running


def test_a_photo_of_no_lesion_is_answered_unsure(browser, phone, trained_server, tmp_path):
    """A natural photo (scikit-learn's sample of a Chinese temple) with the trained bundle."""
    from training.nonlesion import photo_sources

    photo = tmp_path / "temple.jpg"
    photo.write_bytes(jpeg_bytes(Image.open(photo_sources("selection")[0]).convert("RGB")))
    answer = _show_status(browser, phone, trained_server, photo, "unsure", "pwa-unsure.png")
    assert answer["reasons"][0]["code"] == "out_of_distribution" and "predictions" not in answer
