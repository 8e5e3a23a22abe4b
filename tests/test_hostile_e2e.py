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


HOSTILE_NAMES = ['<iframe srcdoc="<script>parent.window.__pwned=1</script>">',
                 "<style>*{display:none !important}</style>", "<b>BOLDTAG</b>"]


def small_model(path: Path) -> Path:
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="c0")(inputs)
    keras.Model(inputs, layers.Conv2D(3, 1, activation="softmax", name="head")(x)).save(path)
    return path


def _wait_until_idle(page) -> None:
    """Streamlit shows its status widget ("Running…") while the script runs."""
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]') || "
                           "!document.querySelector('[data-testid=stStatusWidget]').innerText.match(/Running|Stop/)",
                           timeout=240_000)


def test_class_names_with_markup_from_a_labels_file_stay_text_in_the_browser(tmp_path) -> None:
    """A labels file downloaded with a model holds a script in an iframe, a style and a tag: in Chromium no
    script runs, no element comes from a name, the page stays visible, and each name is shown as typed."""
    from playwright.sync_api import sync_playwright

    model = small_model(tmp_path / "net.keras")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(HOSTILE_NAMES) + "\n")
    with StreamlitServer() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url)
            page.wait_for_selector("text=Active: shipped", timeout=240_000)
            sidebar = page.locator("section[data-testid='stSidebar']")
            _wait_until_idle(page)
            sidebar.locator("input[type='file']").first.set_input_files(str(model))
            try:
                page.wait_for_selector("text=Active: uploaded net.keras", timeout=240_000)
            except Exception as error:  # say what the page showed instead
                raise AssertionError(f"the upload never became active; the sidebar said: "
                                     f"{sidebar.inner_text()[:1500]!r}") from error
            sidebar.get_by_text("Class names (3 classes)").click()
            uploader = sidebar.locator("[data-testid=stFileUploader]").filter(has_text="Labels file")
            uploader.locator("input[type='file']").set_input_files(str(labels))
            page.wait_for_selector("text=BOLDTAG", timeout=120_000)
            time.sleep(3.0)  # the runs after the names arrived have drawn the page
            assert page.evaluate("() => window.__pwned === undefined"), "a script from a class name ran"
            frames = page.evaluate("() => [...document.querySelectorAll('iframe')].map(f => f.srcdoc || '')")
            assert not any("__pwned" in srcdoc for srcdoc in frames)
            styles = page.evaluate("() => [...document.querySelectorAll('style')].map(s => s.textContent)")
            assert not any("display:none !important" in text for text in styles), "a style came from a name"
            assert page.locator("b", has_text="BOLDTAG").count() == 0, "a <b> tag came from a name"
            assert sidebar.is_visible()
            text = page.locator("body").inner_text()
            assert "<b>BOLDTAG</b>" in text, "the name is shown as the file has it"
            assert "window.__pwned=1" in text
        finally:
            browser.close()
