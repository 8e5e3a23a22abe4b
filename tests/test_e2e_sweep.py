"""End to end: the layer sweep's picks in Chromium (issue 31 item 2). A click on a map's button, or on a
point of the depth curve, makes that layer the loop's layer: the page's layer selector shows it, and it
stays picked when the user then turns to another page of the sweep's grid.

Before, the pick was a keyed rerun of the loop's and the sections' fragments: the maps followed, but the
layer selector kept showing the old layer, and the next interaction sent that stale value back (the pick
was undone). AppTest does not show this; only a browser does. The shipped network (33 layers) gives
two pages of maps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import SLOW_MS, StreamlitServer, browser_tab, draw_stroke, running_app

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
TOGGLE = "Compute Grad-CAM and Grad-CAM++ at every explainable layer"
LAYER_JS = "() => { const e = document.querySelector('.st-key-layer input'); return e ? e.value.split(' ')[0] : null; }"
RANGE_JS = """() => { const g = document.querySelector('.st-key-sweep-grid');
  return g ? (g.innerText.match(/Maps \\d+\\u2013\\d+ of \\d+/) || [null])[0] : null; }"""


@pytest.fixture(scope="module")
def server() -> Iterator[StreamlitServer]:
    with running_app() as app:
        yield app


@pytest.fixture
def page(server: StreamlitServer):
    with browser_tab(server.url) as tab:
        yield tab


def _layer(page) -> str | None:
    return page.evaluate(LAYER_JS)


def _wait_layer(page, layer: str, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and _layer(page) != layer:
        time.sleep(0.2)
    assert _layer(page) == layer, f"the layer selector shows {_layer(page)!r}, not the picked {layer!r}"


def _url_layer(page) -> str | None:
    return page.evaluate("() => new URLSearchParams(location.search).get('layer')")


def test_a_pick_in_the_sweep_shows_in_the_layer_selector_and_survives_a_page_change(page) -> None:
    page.wait_for_selector("text=Active: shipped", timeout=SLOW_MS)
    draw_stroke(page, 0.35, 0.4, 8, 0.03, 0.01)
    page.wait_for_selector(".st-key-map-gradcam img", timeout=SLOW_MS)
    page.get_by_role("tab", name="Layer sweep").click()
    page.get_by_text(TOGGLE).click()
    page.wait_for_selector(".st-key-sweep-grid img", timeout=SLOW_MS)
    start = _layer(page)
    assert start

    # a map's button (one that is not the current layer) on the page on screen
    names = [b.inner_text().strip() for b in page.locator(".st-key-sweep-grid button:visible").all()]
    chosen = next(name for name in names if name and name != start)
    page.locator(".st-key-sweep-grid button:visible", has_text=chosen).first.click()
    _wait_layer(page, chosen)
    end = time.monotonic() + 60
    while time.monotonic() < end and _url_layer(page) != chosen:
        time.sleep(0.2)
    assert _url_layer(page) == chosen  # the loop ran with it (it writes the URL)
    time.sleep(2)

    # another page of the grid: the pick stays
    shown = page.evaluate(RANGE_JS)
    assert shown, "no 'Maps a–b of n' line over the grid"
    page.locator(".st-key-sweep_page button[role=radio][aria-checked=false]").first.click()
    end = time.monotonic() + 60
    while time.monotonic() < end and page.evaluate(RANGE_JS) == shown:
        time.sleep(0.2)
    assert page.evaluate(RANGE_JS) != shown, "the page selector did not change the grid"
    time.sleep(3)
    assert _layer(page) == chosen and _url_layer(page) == chosen

    # a point of the depth curve: its layer is picked the same way
    points = page.locator(".st-key-sweep-depth .scatterlayer .trace").first.locator("path.point")
    points.first.scroll_into_view_if_needed()
    box = points.nth(1).bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    end = time.monotonic() + 120
    while time.monotonic() < end and _layer(page) == chosen:
        time.sleep(0.2)
    picked = _layer(page)
    assert picked not in (None, chosen), "a click on the curve picked no layer"
    end = time.monotonic() + 60
    while time.monotonic() < end and _url_layer(page) != picked:
        time.sleep(0.2)
    assert _url_layer(page) == picked
