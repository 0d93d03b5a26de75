"""The kiosk page in Debian's Chromium (Playwright) at the official Raspberry Pi displays' sizes,
against the real `python -m pwa --camera VIDEO` with a video file as the server's camera: one
screen with no scrolling, touch targets, the result of the frame, and the idle return."""

from __future__ import annotations

import json

import pytest

from edge import Classifier
from edge.labels import DISCLAIMER
from tests.camera_helpers import rgb_frame, write_video
from tests.pwa_helpers import REPO, find_chromium, http, model_output, running_server, synthetic_photo
from tests.test_pwa_browser import wait_in_page

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO / "runs" / "screenshots"
IDLE_S = 3
TIMEOUT_MS = 15_000
# The Touch Display (800x480, landscape) and the Touch Display 2 (720x1280 portrait, or rotated).
DISPLAYS = [(800, 480), (720, 1280), (1280, 720)]
STATUS_LABELS = {"ok": "Most similar to", "unsure": "LesionLite cannot assess this photo", "retake": "Retake the photo"}


@pytest.fixture(scope="module")
def frame():
    return rgb_frame(synthetic_photo(7))


@pytest.fixture(scope="module")
def server(random_bundle, frame, tmp_path_factory):
    video = write_video(tmp_path_factory.mktemp("camera") / "camera.avi", [frame], fps=30, repeat=30)
    with running_server(random_bundle, tmp_path_factory.mktemp("server"), "--camera", str(video),
                        "--kiosk-idle", str(IDLE_S)) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    if chromium is None:
        pytest.fail("Chromium is missing: apt-get install chromium (scripts/install-system-deps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium),
                                     args=["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost"])
        yield browser
        browser.close()


def kiosk_page(browser, server, size):
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=True, base_url=server.kiosk_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/")
    return context, page


def assert_on_one_screen(page, size, *selectors: str) -> None:
    """Each element is visible and wholly inside the viewport, and the page cannot scroll."""
    width, height = size
    for selector in selectors:
        box = page.locator(selector).bounding_box()
        assert box is not None, f"{selector} is not shown"
        inside = box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width + 0.5 \
            and box["y"] + box["height"] <= height + 0.5
        assert inside, f"{selector} at {box} is outside the {width}x{height} screen"
    scroll = page.evaluate("[document.scrollingElement.scrollWidth, document.scrollingElement.scrollHeight]")
    assert scroll == [width, height], f"the page scrolls: {scroll} for a {width}x{height} screen"


@pytest.mark.parametrize("size", DISPLAYS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_kiosk_fits_the_display_and_shows_the_frames_result(browser, server, random_bundle, frame, size):
    context, page = kiosk_page(browser, server, size)
    wait_in_page(page, "document.querySelector('#kiosk-preview').naturalWidth === 480")
    assert_on_one_screen(page, size, "#kiosk-preview", "#kiosk-capture", "#disclaimer")
    assert page.locator("#kiosk-capture").bounding_box()["height"] >= 48
    assert page.locator("#disclaimer").inner_text() == DISCLAIMER
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"kiosk-{size[0]}x{size[1]}-camera.png"))

    page.locator("#kiosk-capture").tap()
    page.locator("#kiosk-result").wait_for(state="visible")
    wait_in_page(page, "document.querySelector('#kiosk-frame').naturalWidth === 480")
    classifier = Classifier(random_bundle)
    expected = classifier.classify_array(classifier.preprocess(frame))
    top = expected.predictions[0]
    status, _, body = http("POST", f"{server.kiosk_url}/api/camera/capture")  # what the page was told
    answer = json.loads(body)
    assert status == 200 and model_output(answer)[0] == top.to_dict() and answer["status"] == expected.status
    assert page.locator("#kiosk-status").inner_text() == STATUS_LABELS[answer["status"]]
    on_screen = ["#kiosk-frame", "#kiosk-status", "#kiosk-retake", "#disclaimer"]
    if answer["status"] == "ok":  # only an ok answer names a class
        assert page.locator("#kiosk-top").get_attribute("data-code") == top.code
        assert page.locator("#kiosk-top-name").inner_text() == f"{top.name} ({top.code})"
        assert page.locator("#kiosk-top-percent").inner_text() == f"{round(top.probability * 100)}%"
        on_screen.append("#kiosk-top-name")
    else:
        assert page.locator("#kiosk-top").is_hidden()
    assert_on_one_screen(page, size, *on_screen)
    assert page.locator("#kiosk-retake").bounding_box()["height"] >= 48
    assert page.locator("#kiosk-preview").get_attribute("src") is None  # the stream was closed
    page.screenshot(path=str(SCREENSHOTS / f"kiosk-{size[0]}x{size[1]}-result.png"))

    page.locator("#kiosk-retake").tap()
    page.locator("#kiosk-capture").wait_for(state="visible")
    assert page.locator("#kiosk-frame").get_attribute("src") is None
    context.close()


def test_an_untouched_result_goes_back_to_the_camera_and_forgets_the_photo(browser, server):
    context, page = kiosk_page(browser, server, DISPLAYS[0])
    wait_in_page(page, "document.querySelector('#kiosk-preview').naturalWidth > 0")
    page.locator("#kiosk-capture").tap()
    page.locator("#kiosk-result").wait_for(state="visible")
    assert page.locator("#kiosk-idle-note").inner_text() == f"Back to the camera in {IDLE_S} s (touch to stay)"
    page.wait_for_timeout(1500)
    page.touchscreen.tap(700, 60)  # a touch restarts the countdown
    page.wait_for_timeout(2000)
    assert page.locator("#kiosk-result").is_visible(), "the touch did not restart the countdown"
    page.locator("#kiosk-capture").wait_for(state="visible", timeout=(IDLE_S + 2) * 1000)
    assert page.locator("#kiosk-result").is_hidden()
    assert page.locator("#kiosk-frame").get_attribute("src") is None  # the photo left the page
    assert page.locator("#kiosk-top-name").inner_text() == ""
    wait_in_page(page, "document.querySelector('#kiosk-preview').naturalWidth > 0")  # the camera is live again
    context.close()
