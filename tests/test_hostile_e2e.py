"""In a real browser: a model upload that takes seconds to load survives clicks on other widgets.

AppTest cannot reproduce how a click interrupts a running script, so this drives headless Chromium
against `streamlit run`. With the old `on_change` upload callback the same steps left the shipped
model active, silently. The same run checks that the sidebar's "Advanced" expander, opened before the
upload, is still open after it: the lines the upload adds above it used to move it, and Streamlit redrew
it closed.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import pytest
from e2e_server import StreamlitServer
from keras import layers

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"


def slow_model(path: Path) -> Path:
    """~8 M parameters (32 MB): a few seconds to check and load on a busy 2-core machine."""
    inputs = keras.Input((64, 64, 3))
    x = inputs
    for index in range(6):
        x = layers.Conv2D(384, 3, padding="same", activation="relu", name=f"c{index}")(x)
    keras.Model(inputs, layers.Conv2D(3, 1, activation="softmax", name="head")(x)).save(path)
    return path


def test_a_slow_model_upload_survives_clicks_during_its_load(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    path = slow_model(tmp_path / "slow.keras")
    with StreamlitServer() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server.url)
            page.wait_for_selector("text=Active: shipped", timeout=240_000)
            sidebar = page.locator("section[data-testid='stSidebar']")
            sidebar.get_by_text("Advanced").click()
            probabilities = sidebar.get_by_text("probabilities", exact=True)
            probabilities.wait_for(state="visible", timeout=10_000)
            sidebar.locator("input[type='file']").first.set_input_files(str(path))
            time.sleep(1.0)
            probabilities.click()  # another widget, while the model loads
            deadline = time.time() + 240
            while time.time() < deadline and "Active: uploaded" not in sidebar.inner_text():
                time.sleep(1)
            time.sleep(1.0)  # the runs after the load have drawn the sidebar
            text = sidebar.inner_text()
            assert "Active: uploaded slow.keras" in text, text
            assert "interrupted" not in text and "was not loaded" not in text
            assert probabilities.is_visible(), "the Advanced expander closed when the upload added lines above it"
            assert sidebar.get_by_role("radio", name="probabilities").is_checked()
        finally:
            browser.close()
