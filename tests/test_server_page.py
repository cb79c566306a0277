"""The web page in a real headless browser: Debian's chromium, driven by Selenium through the system
chromedriver (Selenium Manager is never asked to download anything)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from .server_util import live_server, server_config, tiny_synth

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=900,900", "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager then has nothing to find or download.
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(condition, timeout: float = 120.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_the_page_speaks_streams_highlights_and_offers_the_download(browser, tmp_path):
    from selenium.webdriver.common.by import By

    app_config = server_config(tmp_path, max_seconds=1.0)
    with live_server(__import__("sonorant.server", fromlist=["create_app"]).create_app(app_config, tiny_synth())) \
            as (host, port):
        browser.get(f"http://{host}:{port}/")
        voice = browser.find_element(By.ID, "voice")
        _wait(lambda: voice.find_elements(By.TAG_NAME, "option"), what="the voice list")
        assert "default" in [o.get_attribute("value") for o in voice.find_elements(By.TAG_NAME, "option")]
        text = browser.find_element(By.ID, "text")
        text.clear()
        text.send_keys("Hello there, my friend.")
        browser.execute_script("const s = document.getElementById('speed'); s.value = '1.5';"
                               "s.dispatchEvent(new Event('input'));")
        assert browser.find_element(By.ID, "speed-value").text == "1.50"
        browser.find_element(By.ID, "speak").click()
        size = _wait(lambda: browser.find_element(By.ID, "result").get_attribute("data-bytes"), what="the audio")
        state = browser.execute_script("const s = window.sonorant; return {received: s.received, "
                                       "words: s.words.map(w => w.word), segments: s.segments.length, "
                                       "ctx: s.ctx && s.ctx.state}")
        assert state["received"] > 0 and int(size) == state["received"] + 44  # the WAV holds every byte received
        assert state["segments"] >= 1  # Web Audio scheduled the chunks as they came
        assert state["words"] and state["words"][0] == "Hello"
        spans = browser.find_elements(By.CSS_SELECTOR, "#words span")
        assert [s.text for s in spans] == state["words"]
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#words span.active, #words span.spoken"),
              timeout=30, what="a highlighted word")
        duration = _wait(lambda: browser.execute_script("const a = document.getElementById('result');"
                                                        "return a.readyState >= 1 && a.duration"),
                         timeout=30, what="the audio element to read the WAV")
        assert duration == pytest.approx(state["received"] / 2 / 16000, abs=0.01)  # a valid WAV of every sample
        download = browser.find_element(By.ID, "download")
        assert download.is_displayed() and download.get_attribute("href").startswith("blob:")
        assert "Done" in browser.find_element(By.ID, "status").text
        shot = Path(os.environ.get("SONORANT_SCREENSHOT") or tmp_path / "sonorant-page.png")
        browser.save_screenshot(str(shot))
        print(f"screenshot of the page: {shot}")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
