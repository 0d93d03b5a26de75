"""The phone's answers against edge.Classifier's with the tiny trained bundle, in Debian's Chromium:
LiteRT.js (wasm) and the page's preprocessing and decisions, for int8 and float32.

- From the same JPEG: the same top class for every image, every probability within 0.02, the
  same status and reasons; and the same pixels (Chromium's WebCodecs decode at the draft scale
  equals Pillow's).
- From the same preprocessed pixels (Python's, sent to the page): the same output bytes for int8;
  for float32 the same within a relative 1e-4 and an absolute 1e-6 (x86 and WebAssembly kernels sum
  in a different order; a bound in units in the last place means nothing for values near zero,
  where a millionth of a percent is millions of ULPs)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from edge import Classifier
from edge.preprocess import preprocess
from tests import test_pwa_browser as base
from tests.pwa_helpers import jpeg_bytes, model_output, post_photo, running_server
from tests.test_pwa_browser import banner_reasons, new_page, wait_in_page

chromium_path, browser_args, camera_video = base.chromium_path, base.browser_args, base.camera_video
playwright_instance, browser = base.playwright_instance, base.browser

pytestmark = pytest.mark.browser
N_IMAGES = 60
PARITY = 0.02
# float32 outputs from the same pixels: a probability or feature that moves by less than this
# changes nothing a person sees (probabilities are shown to 1%, thresholds to 4 digits).
FLOAT32_RTOL, FLOAT32_ATOL = 1e-4, 1e-6
ENGINE = "await (await import('/static/js/onphone.js')).currentEngine()"
TO_B64 = "const b64 = (a) => btoa(String.fromCharCode(...new Uint8Array(a.buffer, a.byteOffset, a.byteLength)));"


@pytest.fixture(scope="module", params=["int8", "float32"])
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def page(browser, playwright_instance, tiny_bundle, variant, tmp_path_factory):
    """A phone whose page runs VARIANT on-device, served by a server running the same variant."""
    phone = dict(playwright_instance.devices["Pixel 7"])
    with running_server(tiny_bundle, tmp_path_factory.mktemp(f"server-{variant}"), "--variant", variant) as server:
        context, page = new_page(browser, phone, server)
        page.goto("/")
        wait_in_page(page, "document.querySelector('#engine-status').textContent.includes('runs on this phone')", 60)
        page.server = server
        yield page
        context.close()


@pytest.fixture(scope="module")
def images(test_split_images) -> list:
    chosen = sorted(path for path, _ in test_split_images)[:N_IMAGES]
    assert len(chosen) >= 50
    return chosen


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def on_device_answers(page, paths) -> list[dict]:
    """Each JPEG classified in the page (preprocess.js + LiteRT.js + honesty.js), with its pixels."""
    return page.evaluate(f"""async (photos) => {{
        {TO_B64}
        const engine = {ENGINE};
        const {{ pixelsFromBlob }} = await import('/static/js/decode.js');
        const answers = [];
        for (const photo of photos) {{
            const blob = new Blob([Uint8Array.from(atob(photo), (c) => c.charCodeAt(0))], {{type: 'image/jpeg'}});
            const pixels = await pixelsFromBlob(blob, engine.size, engine.photoLimits);
            answers.push({{...await engine.classify(blob), pixels: b64(pixels)}});
        }}
        return answers;
    }}""", [b64(p.read_bytes()) for p in paths])


def test_the_phone_answers_as_the_classifier_from_the_same_jpeg(page, variant, tiny_bundle, images):
    classifier = Classifier(tiny_bundle, variant)
    answers = on_device_answers(page, images)
    worst, pixel_gaps = 0.0, []
    for path, shown in zip(images, answers, strict=True):
        expected = classifier.classify(path)
        theirs = {p.code: p.probability for p in expected.predictions}
        assert model_output(shown)[0]["code"] == expected.predictions[0].code, path.name
        worst = max(worst, *(abs(p["probability"] - theirs[p["code"]]) for p in model_output(shown)))
        assert shown["status"] == expected.status, (path.name, shown["checks"], expected.checks)
        assert [(r["code"], r["message"]) for r in shown["reasons"]] == [(r.code, r.message) for r in expected.reasons]
        pixels = np.frombuffer(base64.b64decode(shown["pixels"]), np.uint8).astype(int)
        pixel_gaps.append(np.abs(pixels - preprocess(path, classifier.input_size).reshape(-1)).mean())
    assert worst <= PARITY, f"largest probability difference {worst:.4f}"
    assert max(pixel_gaps) == 0, f"mean absolute pixel differences up to {max(pixel_gaps):.3f} levels"


def litert_outputs(model_path, pixels: np.ndarray) -> tuple[bytes, bytes]:
    """ai-edge-litert's raw output bytes (probabilities, features) for one preprocessed image."""
    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    batch = pixels[np.newaxis].astype(details["dtype"])
    interpreter.set_tensor(details["index"], batch)
    interpreter.invoke()
    outputs = sorted(interpreter.get_output_details(), key=lambda o: o["shape"][-1])  # 7 probabilities first
    return tuple(interpreter.get_tensor(o["index"]).tobytes() for o in outputs)


def test_the_same_pixels_give_the_same_output_bytes(page, variant, tiny_bundle, images):
    classifier = Classifier(tiny_bundle, variant)
    arrays = [preprocess(path, classifier.input_size) for path in images]
    raw = page.evaluate(f"""async (arrays) => {{
        {TO_B64}
        const engine = {ENGINE};
        const results = [];
        for (const array of arrays) {{
            const pixels = Uint8Array.from(atob(array), (c) => c.charCodeAt(0));
            const out = await engine.run(pixels);
            const answer = await engine.classifyPixels(pixels);
            results.push({{probabilities: b64(out.probabilities), features: b64(out.features), answer}});
        }}
        return results;
    }}""", [b64(a.tobytes()) for a in arrays])
    model = tiny_bundle / classifier.variant_info.file
    for pixels, result in zip(arrays, raw, strict=True):
        for name, expected in zip(("probabilities", "features"), litert_outputs(model, pixels), strict=True):
            shown = base64.b64decode(result[name])
            if variant == "int8":
                assert shown == expected, name  # integer kernels: the very same bytes
            else:
                # x86 (AVX2/FMA) and WebAssembly SIMD kernels round float sums differently.
                np.testing.assert_allclose(np.frombuffer(shown, np.float32), np.frombuffer(expected, np.float32),
                                           rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL, err_msg=name)
        expected = classifier.classify_array(pixels)
        assert [p["probability"] for p in model_output(result["answer"])] == pytest.approx(
            [p.probability for p in expected.predictions], abs=1e-12 if variant == "int8" else 1e-6)
        assert (result["answer"]["status"], [r["code"] for r in result["answer"]["reasons"]]) == (
            expected.status, [r.code for r in expected.reasons])


def test_unsure_is_shown_on_the_phone_as_on_the_server(page, variant, tmp_path):
    """A natural photo (scikit-learn's sample of a Chinese temple), with no lesion in it."""
    from training.nonlesion import photo_sources

    photo = tmp_path / "temple.jpg"
    photo.write_bytes(jpeg_bytes(Image.open(photo_sources("selection")[0]).convert("RGB")))
    page.locator("#engine-phone").check()
    page.locator("#gallery-file").set_input_files(str(photo))
    page.locator("#result-view").wait_for(state="visible")
    status, answer = post_photo(page.server.base_url, photo.read_bytes())
    assert status == 200 and answer["status"] == "unsure"
    assert page.locator("#status-banner").get_attribute("data-status") == "unsure"
    assert page.locator("#result-heading").inner_text() == "LesionLite cannot assess this photo"
    reasons = page.locator("#status-reasons li")
    assert [reasons.nth(i).inner_text() for i in range(reasons.count())] == [r["message"] for r in banner_reasons(answer)]
    assert page.locator("#result-where").get_attribute("data-where") == "phone"
    page.locator("#retake").tap()
