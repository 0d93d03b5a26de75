"""A melanoma at the top, as a person sees it: on the phone (Pixel 7, 412x915, the on-device model)
and on the kiosk (800x480, the server's camera), with the melanoma bundle's float32 (melanoma at
0.45 for every photo: tests/conftest.py melanoma_photos). The doctor's reasons are shown with the
class, never "OK"; a photo LesionLite cannot assess shows its output only under that statement and
with the same warnings. The phone's answers fit the OpenAPI schema generated from edge/answer.py.
Screenshots: runs/screenshots/answer-*.png."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from edge.answer import MESSAGES, NOT_AN_ASSESSMENT
from tests import test_pwa_browser as base
from tests.camera_helpers import rgb_frame, write_video
from tests.pwa_helpers import assert_fits, http, running_server, schema_validator
from tests.test_pwa_browser import listed, new_page, wait_in_page

chromium_path, browser_args, camera_video = base.chromium_path, base.browser_args, base.camera_video
playwright_instance, browser, phone = base.playwright_instance, base.browser, base.phone

pytestmark = pytest.mark.browser
SCREENSHOTS = base.SCREENSHOT.parent
KIOSK_SIZE = (800, 480)
ENGINE = "await (await import('/static/js/onphone.js')).currentEngine()"
# The reasons every answer of this bundle carries after its photo's own, and their texts.
WARNINGS = ["malignant_class", "melanoma_risk", "low_confidence"]


@pytest.fixture(scope="module")
def server(melanoma_bundle, tmp_path_factory):
    with running_server(melanoma_bundle, tmp_path_factory.mktemp("server"), "--variant", "float32") as running:
        yield running


@pytest.fixture(scope="module")
def document(server):
    return json.loads(http("GET", f"{server.base_url}/api/openapi.json")[2])


def on_the_phone(browser, phone, server, photo):
    """A fresh phone that analyses the photo with its own copy of the model (the default)."""
    context, page = new_page(browser, phone, server)
    page.goto("/")
    wait_in_page(page, "document.querySelector('#engine-status').textContent.includes('runs on this phone')", 60)
    page.locator("#gallery-file").set_input_files(str(photo))
    page.locator("#result-view").wait_for(state="visible")
    assert page.locator("#result-where").get_attribute("data-where") == "phone"
    return context, page


def phone_answer(page, photo) -> dict:
    """The on-device engine's answer object for the photo, as the page built it."""
    return page.evaluate(f"""async (bytes) => {{
        const engine = {ENGINE};
        return engine.classify(new Blob([new Uint8Array(bytes)], {{type: 'image/jpeg'}}));
    }}""", list(photo.read_bytes()))


def never_ok(text: str) -> None:
    assert not re.search(r"\bok\b", text, re.IGNORECASE), text


def test_the_phone_names_a_melanoma_with_the_doctors_reasons(browser, phone, server, document, melanoma_photos):
    context, page = on_the_phone(browser, phone, server, melanoma_photos["ok"])
    assert page.locator("#result-heading").inner_text() == "Most similar to Melanoma"
    assert listed(page, "#status-reasons") == [(code, MESSAGES[code]) for code in ("malignant_class", "melanoma_risk")]
    assert page.locator("#low-confidence").is_visible()
    assert page.locator("#top3 > li").first.get_attribute("data-code") == "mel"
    assert page.locator("#top3 > li .bar-value").first.inner_text() == "45%"
    never_ok(page.locator("#status-banner").inner_text())
    page.screenshot(path=str(SCREENSHOTS / "answer-phone-melanoma.png"), full_page=True)
    answer = phone_answer(page, melanoma_photos["ok"])
    assert answer["status"] == "ok" and [r["code"] for r in answer["reasons"]] == WARNINGS
    assert_fits(schema_validator(document, "PredictResult"), answer)
    context.close()


@pytest.mark.parametrize("status", ["unsure", "retake"])
def test_show_anyway_puts_the_same_warnings_under_the_statement(browser, phone, server, document, melanoma_photos,
                                                                status):
    context, page = on_the_phone(browser, phone, server, melanoma_photos[status])
    heading = {"unsure": "LesionLite cannot assess this photo", "retake": "Retake the photo"}[status]
    assert page.locator("#result-heading").inner_text() == heading
    banner = listed(page, "#status-reasons")
    assert banner[-1] == ("melanoma_risk", MESSAGES["melanoma_risk"])  # the referral, even with the output hidden
    assert "malignant_class" not in [code for code, _ in banner]  # no class is shown yet
    assert page.locator("#model-output").is_hidden()
    page.locator("#show-anyway").tap()
    assert page.locator("#unassessed-note").is_visible()
    assert page.locator("#unassessed-note strong").inner_text() == NOT_AN_ASSESSMENT
    assert listed(page, "#output-warnings") == [(code, MESSAGES[code]) for code in ("malignant_class", "melanoma_risk")]
    assert page.locator("#low-confidence").is_visible()
    assert page.locator("#top3 > li").first.get_attribute("data-code") == "mel"
    page.screenshot(path=str(SCREENSHOTS / f"answer-phone-{status}-shown-anyway.png"), full_page=True)
    answer = phone_answer(page, melanoma_photos[status])
    assert answer["status"] == status and "predictions" not in answer
    assert answer["unassessed_model_output"][0]["code"] == "mel"
    assert [r["code"] for r in answer["reasons"]][-3:] == WARNINGS
    assert_fits(schema_validator(document, "PredictResult"), answer)
    context.close()


@pytest.fixture(scope="module")
def kiosk_server(melanoma_bundle, melanoma_photos, tmp_path_factory):
    folder = tmp_path_factory.mktemp("kiosk")
    video = write_video(folder / "camera.avi", [rgb_frame(Image.open(melanoma_photos["ok"]))], fps=30, repeat=30)
    with running_server(melanoma_bundle, folder, "--variant", "float32", "--camera", str(video),
                        "--kiosk-idle", "0") as running:
        yield running


def test_the_kiosk_names_a_melanoma_with_the_doctors_reasons_on_one_screen(browser, kiosk_server):
    width, height = KIOSK_SIZE
    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=True,
                                  base_url=kiosk_server.kiosk_url)
    context.set_default_timeout(base.TIMEOUT_MS)
    page = context.new_page()
    page.goto("/")
    wait_in_page(page, "document.querySelector('#kiosk-preview').naturalWidth > 0")
    page.locator("#kiosk-capture").tap()
    page.locator("#kiosk-result").wait_for(state="visible")
    wait_in_page(page, "document.querySelector('#kiosk-frame').naturalWidth > 0")
    assert page.locator("#kiosk-status").inner_text() == "Most similar to"
    assert page.locator("#kiosk-top-name").inner_text() == "Melanoma (mel)"
    assert listed(page, "#kiosk-reasons") == [(code, MESSAGES[code]) for code in WARNINGS]
    never_ok(page.locator("#kiosk-result").inner_text())
    # Each reason wholly on the screen and inside the panel, whose overflow is clipped.
    panel = page.locator(".kiosk-content").bounding_box()
    for i in range(len(WARNINGS)):
        box = page.locator("#kiosk-reasons li").nth(i).bounding_box()
        assert box["y"] >= panel["y"] and box["y"] + box["height"] <= min(panel["y"] + panel["height"], height) + 0.5, i
    page.screenshot(path=str(SCREENSHOTS / "answer-kiosk-800x480-melanoma.png"))
    context.close()
