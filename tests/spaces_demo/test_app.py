"""The Gradio Space: its scoring function in Python, and the running app in headless Chromium."""

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from hf_sqa.testing import synthetic_speech, write_clip

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "spaces_demo" / "app.py"
ARTIFACTS = Path(os.environ.get("HF_SQA_TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("space_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("example", ["clean.wav", "clean_44k_stereo.flac", "noise_snr5.wav"])
def test_scores_the_examples(app, example):
    summary, timeline, waveform = app.score_clip(str(ROOT / "examples" / example), app.DEFAULT_MODEL)
    match = re.search(r"MOS (\d\.\d\d) — (\w+)", summary)
    assert match, summary
    assert 1.0 <= float(match.group(1)) <= 5.0
    assert match.group(2) == app.quality_band(float(match.group(1)))
    assert isinstance(timeline, Figure) and isinstance(waveform, Figure)
    assert timeline.axes[0].lines  # one segment per model window


def test_noisy_clip_scores_below_clean_clip(app):
    clean, _, _ = app.score_clip(str(ROOT / "examples" / "clean.wav"), "distillmos")
    noisy, _, _ = app.score_clip(str(ROOT / "examples" / "noise_snr5.wav"), "distillmos")
    mos = [float(re.search(r"MOS (\d\.\d\d)", text).group(1)) for text in (clean, noisy)]
    assert mos[1] < mos[0]


def test_long_clip_gets_one_score_per_window(app, tmp_path):
    path = write_clip(tmp_path / "long.wav", synthetic_speech(20.0, seed=3))
    summary, timeline, _ = app.score_clip(str(path), app.DEFAULT_MODEL)
    assert "20.0 s, 14 window(s)" in summary  # ceil((20 - 7.68) / 1) + 1


def test_problems_are_messages_not_exceptions(app, tmp_path, monkeypatch):
    assert app.score_clip(None, app.DEFAULT_MODEL) == ("Upload or record a clip first.", None, None)
    long = write_clip(tmp_path / "long.wav", np.zeros(16000 * 61, dtype=np.float32) + 0.01)
    assert "this demo scores at most 60 s" in app.score_clip(str(long), app.DEFAULT_MODEL)[0]
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    summary, timeline, waveform = app.score_clip(str(text), app.DEFAULT_MODEL)
    assert summary.startswith("⚠️ Cannot read this audio") and timeline is None and waveform is None
    assert "unknown model 'nope'" in app.score_clip(str(ROOT / "examples" / "clean.wav"), "nope")[0]
    monkeypatch.setattr(app, "MAX_MEGABYTES", 0.01)
    assert "this demo takes at most 0.01 MB" in app.score_clip(str(ROOT / "examples" / "clean.wav"), "distillmos")[0]


def test_space_front_matter_and_settings(app):
    readme = (ROOT / "spaces_demo" / "README.md").read_text()
    front = readme.split("---")[1]
    import yaml

    meta = yaml.safe_load(front)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    from hf_sqa.scoring import PACKAGED_MODELS

    hub_ids = [source for source in app.MODELS.values()
               if not (APP.parent / source).exists() and source not in PACKAGED_MODELS]
    assert meta["models"] == hub_ids  # the Hub models the Space uses, as models.yaml names them
    assert app.DEFAULT_MODEL in app.MODELS
    assert (ROOT / "spaces_demo" / "requirements.txt").read_text().splitlines()[0].startswith("hf-sqa[demo]")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def running_app(tmp_path):
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(tmp_path / "app.log", "w")
    process = subprocess.Popen([sys.executable, str(APP)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the app did not start:\n" + (tmp_path / "app.log").read_text()[-3000:])
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_space_in_headless_chromium(running_app, tmp_path):
    """Open the running app, upload a clip, press Score, read a plausible MOS and find the rendered plot."""
    chromium, driver_binary = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_binary):
        pytest.skip("Debian's chromium and chromium-driver are not installed (`make browser` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1800"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(driver_binary), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        browser.get(running_app)
        upload = WebDriverWait(browser, 60).until(
            lambda b: b.find_element(By.CSS_SELECTOR, "#audio-in input[type=file]"))
        upload.send_keys(str(ROOT / "examples" / "noise_snr5.wav"))
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#audio-in audio, #audio-in canvas, #audio-in .waveform-container"))
        browser.find_element(By.CSS_SELECTOR, "#score").click()
        WebDriverWait(browser, 180).until(lambda b: "MOS" in b.find_element(By.ID, "summary").text)
        summary = browser.find_element(By.ID, "summary").text
        match = re.search(r"MOS (\d\.\d\d) — (\w+)", summary)
        assert match, summary
        assert 1.0 <= float(match.group(1)) <= 5.0
        # the matplotlib figure arrives as an image (or svg/canvas); icons are a few pixels wide
        widest = "return Math.max(0, ...Array.from(document.querySelectorAll("
        widest += "'#timeline img, #timeline svg, #timeline canvas')).map(e => e.tagName === 'IMG' ? "
        widest += "e.naturalWidth : e.getBoundingClientRect().width));"
        assert WebDriverWait(browser, 60).until(lambda b: b.execute_script(widest) > 300)
    finally:
        browser.save_screenshot(str(ARTIFACTS / "space_e2e.png"))
        browser.quit()
    assert (ARTIFACTS / "space_e2e.png").stat().st_size > 10_000


def test_window_hop_choice(app, tmp_path):
    path = write_clip(tmp_path / "long.wav", synthetic_speech(20.0, seed=3))
    summary, _, _ = app.score_clip(str(path), app.DEFAULT_MODEL, "7.68")
    assert "20.0 s, 3 window(s)" in summary and "10th percentile" in summary
