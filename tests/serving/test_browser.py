"""The page in a real browser (Debian's headless Chromium driven by Playwright) against the running Serve app:
upload a dev photo, wait for the result, move the vibrancy slider and see the picture change (re-rendered from the
server's cache, same result id), upload a text file and see the error. Screenshots go to test-artifacts/serving/."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CHROMIUM = os.environ.get("COLORIZATION_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("COLORIZATION_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra (.ci/run installs it)")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def test_page_uploads_rerenders_on_the_slider_and_shows_errors(served, browser_page, dev_image_paths):
    page = browser_page
    out = ARTIFACTS / "serving"
    out.mkdir(parents=True, exist_ok=True)
    page.goto(served.url)
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#model option").count() == 3

    page.set_input_files("#file", str(dev_image_paths[2]))
    page.wait_for_function("document.body.dataset.state === 'done' && !!document.getElementById('result').dataset.resultId")
    assert page.locator("#error").is_hidden()
    assert page.get_attribute("#result", "data-temperature") == "0.38"
    result_id = page.get_attribute("#result", "data-result-id")
    page.screenshot(path=str(out / "1-colorized.png"), full_page=True)
    before = pixels(page.locator("#result").screenshot())
    assert page.locator("#download").is_visible()

    page.fill("#vibrancy", "0.95")  # T = 0.05: close to the mode, more vivid
    page.wait_for_function("document.getElementById('result').dataset.temperature === '0.05' "
                           "&& document.body.dataset.state === 'done'")
    assert page.get_attribute("#result", "data-result-id") == result_id  # re-rendered from the cache
    page.screenshot(path=str(out / "2-vivid.png"), full_page=True)
    after = pixels(page.locator("#result").screenshot())
    assert before.shape == after.shape and np.abs(after - before).mean() > 1.0

    page.set_input_files("#file", files=[{"name": "notes.jpg", "mimeType": "image/jpeg",
                                          "buffer": b"this is a text file, not a photo\n" * 10}])
    page.wait_for_selector("#error:not([hidden])")
    assert "no image format" in page.inner_text("#error")
    page.screenshot(path=str(out / "3-error.png"), full_page=True)
