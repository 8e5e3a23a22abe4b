"""End to end: the Trust tab in a real browser. A stroke on the cap, the tab opened, the randomisation
check switched on; its two curve charts and the verdict table appear. Saves `docs/trust.png`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import StreamlitServer, browser_tab, draw_stroke, running_app

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "trust.png"


@pytest.fixture(scope="module")
def server() -> Iterator[StreamlitServer]:
    with running_app() as app:
        yield app


def test_trust_tab_shows_randomisation_curves_and_verdicts(server) -> None:
    with browser_tab(server.url) as page:
        draw_stroke(page, 0.36, 0.42, steps=20, dx=0.012, dy=0.002)  # across the default sample's cap
        page.locator(".st-key-map-gradcam img").first.wait_for()
        tab = page.get_by_role("tab", name="Trust")
        tab.scroll_into_view_if_needed()
        tab.click()
        page.get_by_text("Run the randomisation check for this region").click()
        charts = page.locator(".js-plotly-plot", has_text="Rank correlation with the trained network")
        charts.first.wait_for()
        verdicts = page.get_by_text("Verdict:", exact=False).first
        verdicts.wait_for()
        assert page.locator(".js-plotly-plot", has_text="Structural similarity").count() == 1
        page.wait_for_timeout(1500)  # let the charts settle
        page.get_by_role("tab", name="Trust").evaluate("el => el.scrollIntoView({block: 'start'})")
        page.mouse.move(1275, 5)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
