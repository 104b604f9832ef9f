"""The kiosk page in a real browser: Debian's chromium, headless, driven by Playwright.

Looks at what a person sees: the live view streams, a result with "Not a diagnosis" appears, capture
and upload work, a bad upload explains itself, and nothing is fetched from outside the kiosk.
Screenshots land in test-artifacts/ (gitignored).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.helpers.kiosk import ROOT, free_port, jpeg_bytes, kiosk_process

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make browser)"),
]


def wait_js(page, expression: str, timeout: float = 10.0) -> None:
    """Poll a JavaScript expression until it is truthy. Not page.wait_for_function: that evaluates
    strings with eval(), which the kiosk's Content-Security-Policy (rightly) refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def kiosk_url(tiny_tflite, tmp_path_factory):
    from tests.helpers.kiosk import write_video

    video = write_video(tmp_path_factory.mktemp("browser") / "long.avi", frames=900)  # 90 s at 10 fps
    port = free_port()
    with kiosk_process(tiny_tflite, video, port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def page(tmp_path, kiosk_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user data dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.requests = []  # type: ignore[attr-defined]
            page.console_errors = []  # type: ignore[attr-defined]
            page.on("request", lambda r: page.requests.append(r.url))
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
            yield page
        finally:
            context.close()


def test_kiosk_page_in_chromium(page, kiosk_url, tmp_path):
    page.goto(kiosk_url + "/")
    wait_js(page, "document.getElementById('stream').naturalWidth > 0", timeout=15)
    live = page.locator("#live-result .result")
    live.wait_for(timeout=15_000)
    assert "Not a diagnosis" in live.inner_text()
    assert re.search(r"Most likely: \w+ \(\d+% confidence\)", live.inner_text())
    assert page.locator("#live-result .top3 li").count() == 3
    assert page.locator("#status").inner_text().startswith("Live")

    page.click("#capture")
    frozen = page.locator("#frozen .result")
    frozen.wait_for(timeout=10_000)
    assert "Not a diagnosis" in frozen.inner_text()
    assert "Captured at" in page.locator("#frozen .when").inner_text()

    photo = tmp_path / "lesion.jpg"
    photo.write_bytes(jpeg_bytes())
    page.set_input_files("#photo", str(photo))
    page.click("#upload button[type=submit]")
    wait_js(page, "document.querySelector('#frozen .when')?.textContent.startsWith('Photo checked')")
    assert "Not a diagnosis" in page.locator("#frozen .result").inner_text()
    assert page.locator("#upload-message").inner_text().startswith("Photo checked:")
    wait_js(page, "document.querySelectorAll('#recent li').length === 2", timeout=5)
    wait_js(page, "[...document.images].every(img => img.complete && img.naturalWidth > 0)", timeout=5)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "kiosk.png"), full_page=True)

    bogus = tmp_path / "notes.jpg"
    bogus.write_text("these are my notes, not a photo")
    page.set_input_files("#photo", str(bogus))
    page.click("#upload button[type=submit]")
    message = page.locator("#upload-message.error")
    message.wait_for(timeout=10_000)
    assert "not a photo the kiosk can read" in message.inner_text()
    page.screenshot(path=str(ARTIFACTS / "kiosk-bad-upload.png"))

    outside = [url for url in page.requests if not url.startswith((kiosk_url, f"blob:{kiosk_url}/"))]  # blob: frames
    assert not outside, f"the page fetched from outside the kiosk: {outside}"
    expected = "the server responded with a status of 400"  # the bad upload, on purpose
    errors = [e for e in page.console_errors if expected not in e]
    assert not errors, errors  # CSP violations and script errors land here


def test_page_is_labelled_for_assistive_technology(page, kiosk_url):
    page.goto(kiosk_url + "/")
    assert page.locator("html").get_attribute("lang") == "en"
    missing_alt = page.eval_on_selector_all("img", "imgs => imgs.filter(i => !i.alt).length")
    assert missing_alt == 0
    unlabelled = page.eval_on_selector_all("input", "els => els.filter(e => !(e.labels && e.labels.length)).length")
    assert unlabelled == 0
    assert page.get_by_role("button", name="Capture this frame").is_visible()
    assert page.get_by_role("note").inner_text().startswith("Not a diagnosis.")


def test_pi_touch_screen_shows_the_result_and_capture_above_the_fold(page, kiosk_url):
    page.set_viewport_size({"width": 800, "height": 480})  # the Raspberry Pi 7" display
    page.goto(kiosk_url + "/")
    page.locator("#live-result .result").wait_for(timeout=15_000)
    wait_js(page, "document.getElementById('stream').naturalWidth > 0", timeout=15)
    for selector in ("#stream", "#capture", "#live-result .verdict", "#live-result .risk", "#live-result .nad"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 480, (selector, box)
    names = page.eval_on_selector_all(
        "#live-result .top3 .name", "els => els.map(e => e.scrollWidth <= e.clientWidth + 1)"
    )
    assert names and all(names), "a class name is cut off"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "kiosk-800x480.png"))

    page.click("#capture")  # a patient's capture, then the Clear button for the next person
    page.locator("#frozen .result").wait_for(timeout=10_000)
    asked, live = (page.locator(f"{slot} .verdict").bounding_box() for slot in ("#frozen", "#live-result"))
    assert asked["y"] < live["y"], "the live result leads, not the one just asked for"
    assert asked["y"] >= 0 and asked["y"] + asked["height"] <= 480, asked  # on screen, not below the fold
    page.screenshot(path=str(ARTIFACTS / "kiosk-800x480-captured.png"))
    wait_js(page, "document.querySelectorAll('#recent li').length >= 1", timeout=5)
    page.click("#clear")
    wait_js(page, "document.querySelectorAll('#recent li').length === 0", timeout=5)
    assert page.locator("#frozen .result").count() == 0


@pytest.fixture(scope="module")
def shipped_kiosk_url(tmp_path_factory):
    from tests.helpers.kiosk import write_video

    video = write_video(tmp_path_factory.mktemp("browser-shipped") / "long.avi", frames=900)
    port = free_port()
    with kiosk_process(ROOT / "models" / "isic8_int8.tflite", video, port):
        yield f"http://127.0.0.1:{port}"


def test_a_photo_that_is_not_a_lesion_and_a_greyscale_one_are_refused_on_the_page(page, shipped_kiosk_url, tmp_path):
    import cv2
    import numpy as np

    skimage_data = pytest.importorskip("skimage.data")
    page.goto(shipped_kiosk_url + "/")
    face = tmp_path / "face.jpg"  # the astronaut's portrait: not a skin lesion
    face.write_bytes(cv2.imencode(".jpg", cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes())
    page.set_input_files("#photo", str(face))
    page.click("#upload button[type=submit]")
    wait_js(page, "document.querySelector('#frozen .when')?.textContent.startsWith('Photo checked')")
    frozen = page.locator("#frozen .result")
    assert frozen.locator(".verdict").inner_text() == "Not a skin lesion"
    assert "Not a diagnosis" in frozen.inner_text() and not frozen.locator(".confidence").is_visible()
    assert not frozen.locator(".top3").is_visible() and not frozen.locator(".risk").is_visible()
    assert "If it is a lesion, show it to a clinician." in frozen.locator(".advice").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "kiosk-not-a-lesion.png"))

    lesion = cv2.imdecode(np.frombuffer(jpeg_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)  # a monochrome camera
    grey = tmp_path / "grey.png"
    grey.write_bytes(cv2.imencode(".png", lesion)[1].tobytes())
    page.set_input_files("#photo", str(grey))
    page.click("#upload button[type=submit]")
    wait_js(page, "document.querySelector('#frozen .verdict')?.textContent === 'Retake'")
    assert "a colour photo is needed" in page.locator("#frozen .advice").inner_text()


def test_capture_is_disabled_once_the_camera_has_ended(tiny_tflite, tmp_path):
    from tests.helpers.kiosk import write_video

    sync_api = pytest.importorskip("playwright.sync_api")
    video = write_video(tmp_path / "short.avi", frames=20)  # two seconds, then the source ends
    port = free_port()
    with kiosk_process(tiny_tflite, video, port), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            wait_js(page, "document.getElementById('status').textContent === 'Camera stopped'", timeout=15)
            wait_js(page, "document.getElementById('capture').disabled === true", timeout=3)
        finally:
            browser.close()
