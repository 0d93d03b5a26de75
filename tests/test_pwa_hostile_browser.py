"""Decompression bombs on the phone's own path: Debian's Chromium (Pixel 7 emulation) analysing on
the phone is given every kind of bomb; each is refused before the browser decodes it, with the
words the server answers for the same file, no request carries it, and the page goes on working.
Fixtures and helpers come from tests/test_pwa_browser.py and tests/test_pwa_ondevice_browser.py."""

from __future__ import annotations

import json

import pytest

from bench.bombs import png_bomb, progressive_jpeg, sequential_jpeg, webp_bomb
from tests import test_pwa_browser as base
from tests.pwa_helpers import post_photo
from tests.test_pwa_browser import new_page, wait_in_page
from tests.test_pwa_ondevice_browser import engine_ready, record_requests

# The browser tests' fixtures (one server and one Chromium per module, a fresh phone per test).
chromium_path, browser_args, camera_video = base.chromium_path, base.browser_args, base.camera_video
playwright_instance, browser, phone = base.playwright_instance, base.browser, base.phone
server, photo_files = base.server, base.photo_files

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def bombs() -> dict[str, tuple[str, bytes]]:
    """name -> (MIME type the phone gives the file, bytes): one bomb per kind the server refuses."""
    return {
        "lesion.png": ("image/png", png_bomb(8000, 8000)),  # 79 KB, 64 MP: 256 MB of canvas pixels
        "lesion.webp": ("image/webp", webp_bomb(4000, 4000)),
        "progressive.jpg": ("image/jpeg", progressive_jpeg(4000, 3000)),
        "scans.jpg": ("image/jpeg", sequential_jpeg(8000, 8000, components=3, separate_scans=True)),
        "panorama.jpg": ("image/jpeg", sequential_jpeg(65000, 300)),
        "huge.jpg": ("image/jpeg", sequential_jpeg(12000, 11000)),
    }


def test_bombs_are_refused_on_the_phone_in_the_servers_words_and_the_page_carries_on(
        browser, phone, server, photo_files, bombs):
    context, page = new_page(browser, phone, server)
    page.goto("/")
    engine_ready(page)
    requests = record_requests(page)
    for name, (mime, data) in bombs.items():
        status, answer = post_photo(server.base_url, data)  # what the server says of the same file
        assert status == 413, (name, answer)
        page.locator("#gallery-file").set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])
        # Each bomb's message names its own size, so the last one's cannot pass for it.
        wait_in_page(page, f"document.querySelector('#error-text').textContent === {json.dumps(answer['error'])}")
        assert page.locator("#error").is_visible()
        assert page.locator("#error-retry").is_hidden()  # retrying the same photo cannot help
    assert not [r for r in requests if r[0] != "GET"], requests  # no bomb went anywhere
    assert page.evaluate("new Uint8Array(8).length") == 8  # the page's script still runs
    page.locator("#gallery-file").set_input_files(str(photo_files[0]))
    page.locator("#result-view").wait_for(state="visible")  # and a good photo is still analysed
    assert page.locator("#result-where").get_attribute("data-where") == "phone"
    context.close()
