"""On-device classification in Debian's Chromium (Pixel 7 emulation): the same model run by LiteRT.js
in the page, offline after one visit, with the server as the fallback. Fixtures and helpers
come from tests/test_pwa_browser.py; the parity tests with the trained bundle are in
tests/test_pwa_ondevice_parity.py."""

from __future__ import annotations

import pytest
from PIL import Image

from tests import test_pwa_browser as base
from tests.pwa_helpers import jpeg_bytes, model_output, post_photo, running_server, synthetic_photo
from tests.test_pwa_browser import assert_page_shows, banner_reasons, new_page, wait_in_page

# The browser tests' fixtures (one server and one Chromium per module, a fresh phone per test).
chromium_path, browser_args, camera_video = base.chromium_path, base.browser_args, base.camera_video
playwright_instance, browser, phone = base.playwright_instance, base.browser, base.phone
server, photo_files = base.server, base.photo_files

pytestmark = pytest.mark.browser
PHONE = "on this phone"
KIOSK = "on the kiosk"


def engine_ready(page, timeout_s: float = 60) -> None:
    """Wait until the page says its model runs on this phone (downloaded, verified, compiled)."""
    wait_in_page(page, "document.querySelector('#engine-status').textContent.includes('runs on this phone')", timeout_s)


def record_requests(page) -> list[tuple[str, str]]:
    requests: list[tuple[str, str]] = []
    page.on("request", lambda request: requests.append((request.method, request.url)))
    return requests


def assert_same_answer(shown: dict, expected: dict) -> None:
    """The phone's answer against the server's for the same photo (int8): the same pixels and the
    same integer kernels, so the very same status, reasons and probabilities."""
    assert (shown["status"], shown["reasons"]) == (expected["status"], expected["reasons"])
    assert model_output(shown) == model_output(expected)
    assert ("predictions" in shown) == ("predictions" in expected)  # the same field for the same status


def shown_answer(page) -> dict:
    """The answer the page last displayed, read back from the DOM (status, reasons, all seven)."""
    if page.locator("#show-anyway").is_visible():
        page.locator("#show-anyway").tap()
    rows = page.locator("#top3 > li")
    reasons = page.locator("#status-reasons li")
    return {
        "status": page.locator("#status-banner").get_attribute("data-status"),
        "reasons_shown": [reasons.nth(i).get_attribute("data-code") for i in range(reasons.count())],
        "top": [(rows.nth(i).get_attribute("data-code"), float(rows.nth(i).get_attribute("data-probability")))
                for i in range(rows.count())],
        "where": page.locator("#result-where").inner_text(),
    }


def test_on_device_is_the_default_and_no_request_carries_the_photo(browser, phone, server, photo_files):
    context, page = new_page(browser, phone, server)
    page.goto("/")
    engine_ready(page)
    assert page.locator("#engine-phone").is_checked() and not page.locator("#engine-phone").is_disabled()
    requests = record_requests(page)
    page.locator("#gallery-file").set_input_files(str(photo_files[0]))
    page.locator("#result-view").wait_for(state="visible")
    assert not [r for r in requests if r[0] != "GET" or "/api/" in r[1]], requests
    assert page.locator("#result-where").get_attribute("data-where") == "phone"
    assert page.locator("#result-where").inner_text().startswith(f"Analysed {PHONE} by model int8 (")
    status, expected = post_photo(server.base_url, photo_files[0].read_bytes())
    assert status == 200
    answer = page.evaluate("""async (bytes) => {
        const engine = await (await import('/static/js/onphone.js')).currentEngine();
        return engine.classify(new Blob([new Uint8Array(bytes)], {type: 'image/jpeg'}));
    }""", list(photo_files[0].read_bytes()))
    assert_same_answer(answer, expected)
    shown = shown_answer(page)
    assert shown["status"] == answer["status"]
    assert shown["top"] == [(p["code"], p["probability"]) for p in model_output(answer)[:3]]
    context.close()


def test_an_unreadable_photo_is_refused_on_the_phone_with_the_servers_words(browser, phone, server, tmp_path):
    not_a_photo = tmp_path / "lesion.jpg"
    not_a_photo.write_text("this is a text file with a .jpg name\n")
    context, page = new_page(browser, phone, server)
    page.goto("/")
    engine_ready(page)
    requests = record_requests(page)
    page.locator("#gallery-file").set_input_files(str(not_a_photo))
    page.locator("#error").wait_for(state="visible")
    assert page.locator("#error-text").inner_text() == (
        "The photo is not an image format LesionLite reads: send a JPEG or PNG.")
    assert page.locator("#error-retry").is_hidden()
    assert not [r for r in requests if r[0] != "GET"], requests
    context.close()


def test_without_webassembly_the_server_answers(browser, phone, server, photo_files):
    context, page = new_page(browser, phone, server)
    page.add_init_script("delete window.WebAssembly;")
    page.goto("/")
    wait_in_page(page, "document.querySelector('#engine-status').textContent.includes('not available')")
    assert page.locator("#engine-status").inner_text() == (
        "Analysing on this phone is not available (this browser has no WebAssembly): photos go to the kiosk.")
    assert page.locator("#engine-phone").is_disabled() and page.locator("#engine-kiosk").is_checked()
    with page.expect_request("**/api/predict"):
        page.locator("#gallery-file").set_input_files(str(photo_files[1]))
    page.locator("#result-view").wait_for(state="visible")
    status, answer = post_photo(server.base_url, photo_files[1].read_bytes())
    assert status == 200
    assert_page_shows(page, answer)
    assert page.locator("#result-where").get_attribute("data-where") == "kiosk"
    context.close()


def test_a_tampered_model_is_refused_and_the_server_answers(browser, phone, server, photo_files):
    """The sha256 check: a model that is not the manifest's never runs (no service worker here, so
    the page's own routes see the download, as on a phone over plain HTTP)."""
    context, page = new_page(browser, phone, server, service_workers="block")
    page.route("**/bundle/int8.tflite", lambda route: route.fulfill(body=b"\0" * 1000))
    page.goto("/")
    wait_in_page(page, "document.querySelector('#engine-status').textContent.includes('not available')")
    assert "int8.tflite: sha256 " in page.locator("#engine-status").inner_text()
    with page.expect_request("**/api/predict"):
        page.locator("#gallery-file").set_input_files(str(photo_files[2]))
    page.locator("#result-view").wait_for(state="visible")
    context.close()


@pytest.fixture
def own_server(random_bundle, tmp_path):
    """A server this test may stop."""
    with running_server(random_bundle, tmp_path) as running:
        yield running


def test_offline_after_one_visit_the_camera_photo_is_analysed_on_the_phone(browser, phone, own_server):
    context, page = new_page(browser, phone, own_server, permissions=["camera"])
    page.goto("/")
    engine_ready(page)  # the service worker controls the page and has cached the runtime and model
    page.locator("#engine-kiosk").check()
    page.locator("#capture").wait_for(state="visible")
    wait_in_page(page, "document.querySelector('#camera-video').videoWidth > 0")
    with page.expect_response("**/api/predict") as predicted:
        page.locator("#capture").tap()
    server_answer = predicted.value.json()
    page.locator("#result-view").wait_for(state="visible")
    assert page.locator("#result-where").get_attribute("data-where") == "kiosk"

    context.set_offline(True)
    own_server.process.terminate()
    own_server.process.wait(timeout=10)
    requests = record_requests(page)
    assert page.reload().from_service_worker
    engine_ready(page)
    assert page.locator("#offline-notice").is_visible()
    assert page.locator("#offline-text").inner_text() == (
        "No connection to the LesionLite server: photos are analysed on this phone, which needs none.")
    page.locator("#capture").wait_for(state="visible")
    wait_in_page(page, "document.querySelector('#camera-video').videoWidth > 0")
    page.locator("#capture").tap()
    page.locator("#result-view").wait_for(state="visible")
    assert page.locator("#result-where").inner_text().startswith(f"Analysed {PHONE}")
    assert not [r for r in requests if "/api/predict" in r[1]]
    shown = shown_answer(page)
    assert shown["status"] == server_answer["status"]
    assert shown["reasons_shown"] == [r["code"] for r in banner_reasons(server_answer)]
    assert shown["top"] == [(p["code"], p["probability"]) for p in model_output(server_answer)[:3]]
    context.close()


def test_a_dark_photo_is_answered_retake_on_the_phone_as_on_the_server(browser, phone, server, photo_files, tmp_path):
    dark = tmp_path / "dark.jpg"
    dark.write_bytes(jpeg_bytes(Image.eval(Image.open(photo_files[0]), lambda v: v // 6)))
    context, page = new_page(browser, phone, server)
    page.goto("/")
    engine_ready(page)
    page.locator("#gallery-file").set_input_files(str(dark))
    page.locator("#result-view").wait_for(state="visible")
    status, answer = post_photo(server.base_url, dark.read_bytes())
    assert status == 200 and answer["status"] == "retake"
    assert page.locator("#result-heading").inner_text() == "Retake the photo"
    reasons = page.locator("#status-reasons li")
    assert [reasons.nth(i).inner_text() for i in range(reasons.count())] == [r["message"] for r in banner_reasons(answer)]
    assert page.locator("#model-output").is_hidden()
    context.close()


def test_the_kiosk_can_be_chosen_while_the_phone_could_do_it(browser, phone, server):
    context, page = new_page(browser, phone, server)
    page.goto("/")
    engine_ready(page)
    page.locator("#engine-kiosk").check()
    photo = jpeg_bytes(synthetic_photo(5))
    with page.expect_request("**/api/predict"):
        page.locator("#gallery-file").set_input_files(files=[{"name": "a.jpg", "mimeType": "image/jpeg", "buffer": photo}])
    page.locator("#result-view").wait_for(state="visible")
    assert page.locator("#result-where").inner_text().startswith(f"Analysed {KIOSK}")
    context.close()
