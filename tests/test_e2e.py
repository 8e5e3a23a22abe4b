"""End to end: the real server, a real browser, a stroke drawn with the mouse, four maps on screen.

Starts `streamlit run dashboard/app.py` on a free loopback port (see `e2e_server.py`), drives Debian's
Chromium through Playwright (never `playwright install`: these machines reach only package
registries), draws on the canvas, waits for the four heatmaps, switches the layer, waits for the maps
to change and saves `docs/screenshot.png` for the README. Timeouts are generous: TensorFlow's import
and XRAI on a busy two-core machine take minutes in the worst case.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import (
    CANVAS,
    CHROMIUM,
    CHROMIUM_ARGS,
    SLOW_MS,
    StreamlitServer,
    begin_stroke,
    browser_tab,
    choose,
    choose_layer,
    click_canvas,
    draw_stroke,
    running_app,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "screenshot.png"
METHODS = ("gradcam", "gradcam++", "xrai", "vinogradova")
TITLES = ("Grad-CAM ·", "Grad-CAM++ ·", "XRAI ·", "Seg-Grad-CAM ·")
SECOND_LAYER = "aggregation"
VIEWPORT = {"width": 1280, "height": 800}

# Each map is a picture in the container `.st-key-map-<method>` ("+" → "p"); its inline data URI is its
# content, so a new map has a new `src`. The caption under it (a <figcaption>) starts with the method's short label.
MAPS_JS = """
(keys) => keys.map(k => {
  const img = document.querySelector('.st-key-map-' + k + ' img');
  const cap = document.querySelector('.st-key-map-' + k + ' figcaption, .st-key-map-' + k + ' [data-testid=stImageCaption]');
  if (!img || !img.complete || img.naturalWidth === 0) return null;
  return {key: k, title: cap ? cap.innerText.trim() : '', size: img.naturalWidth, fingerprint: img.src};
}).filter(x => x !== null)
"""


def _key(method: str) -> str:
    return method.replace("+", "p")


@pytest.fixture(scope="module")
def server() -> Iterator[StreamlitServer]:
    with running_app() as app:
        yield app


@pytest.fixture
def page(server: StreamlitServer):
    with browser_tab(server.url) as tab:
        yield tab


def _maps(page) -> list[dict]:
    return page.evaluate(MAPS_JS, [_key(m) for m in METHODS])


def _wait_for_maps(page, *, previous: dict[str, str] | None = None, timeout_s: float = SLOW_MS / 1000) -> list[dict]:
    """The four method maps, each with heatmap data; if `previous` is given, until all CAMs changed."""
    deadline = time.monotonic() + timeout_s
    found: list[dict] = []
    while time.monotonic() < deadline:
        found = _maps(page)
        by_title = {t: m for t in TITLES for m in found if m["title"].startswith(t)}
        complete = len(by_title) == len(TITLES) and all(m["size"] > 0 for m in by_title.values())
        changed = previous is None or all(
            by_title[t]["fingerprint"] != previous[t] for t in TITLES if t in by_title and not t.startswith("XRAI")
        )
        if complete and changed:
            return [by_title[t] for t in TITLES]
        time.sleep(1)
    raise AssertionError(f"maps did not appear/update within {timeout_s:.0f} s; on screen: "
                         f"{[m['title'] for m in found]}")


def _wait_until_idle(page) -> None:
    """Streamlit shows its status widget ("Running…") while the script runs."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]') || "
        "!document.querySelector('[data-testid=stStatusWidget]').innerText.match(/Running|Stop/)",
        timeout=SLOW_MS,
    )


def _draw_stroke(page) -> None:
    """Across the middle of the cap of the default sample (fly agaric)."""
    draw_stroke(page, 0.36, 0.42, steps=20, dx=0.012, dy=0.002)


def _in_viewport(page) -> dict[str, bool]:
    """Whether the canvas and each map lie wholly inside the window, with no scrolling."""
    size = page.viewport_size
    targets = {"canvas": page.locator(CANVAS).first}
    targets.update({m: page.locator(f".st-key-map-{_key(m)} img").first for m in METHODS})
    inside = {}
    for name, locator in targets.items():
        box = locator.bounding_box() if locator.count() else None
        inside[name] = bool(box and box["width"] > 100 and box["x"] >= 0 and box["y"] >= 0
                            and box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"])
    return inside


def _screenshot(page, path: Path) -> None:
    """The loop view at 1600×1000, as the README shows it."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")  # no focus ring
    page.mouse.move(1595, 5)  # and no hover effects in the picture
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.evaluate("() => { for (const el of [document.querySelector('[data-testid=stMain]'), document.scrollingElement])"
                  " if (el) el.scrollTo(0, 0); }")  # the loop view, from the top
    page.wait_for_timeout(2500)  # let the page re-layout at the new size
    widths = [page.locator(f".st-key-map-{_key(m)} img").first.bounding_box()["width"] for m in METHODS]
    assert min(widths) >= 300, widths  # readable maps at 1600 px
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))


def _tags(page):
    return page.locator(".st-key-methods-picker [data-tag]")


def _tag(page, text: str):
    return _tags(page).filter(has_text=text)


def test_draw_region_compare_four_maps_switch_layer(page) -> None:
    started = time.monotonic()
    page.wait_for_selector(CANVAS, timeout=SLOW_MS)
    page.get_by_text("Draw on the image to mark the region to explain").wait_for(timeout=SLOW_MS)
    _wait_until_idle(page)

    _draw_stroke(page)
    first = _wait_for_maps(page)
    assert [m["title"].split(" ·")[0] for m in first] == [t.split(" ·")[0] for t in TITLES]
    _wait_until_idle(page)
    inside = _in_viewport(page)
    assert all(inside.values()), f"not inside the 1280×800 window with the canvas: {inside}"
    assert page.get_by_text("at layer head_concat").count() >= 1  # the default layer (explainers.region_rule)

    choose_layer(page, SECOND_LAYER)
    second = _wait_for_maps(page, previous={t: m["fingerprint"] for t, m in zip(TITLES, first, strict=True)})
    assert len(second) == 4
    assert second[2]["fingerprint"] == first[2]["fingerprint"]  # XRAI is layer-free: the same picture, kept
    page.get_by_text(f"at layer {SECOND_LAYER}").first.wait_for(timeout=SLOW_MS)
    _wait_until_idle(page)
    assert page.locator("[data-testid=stException]").count() == 0

    # a long method tag: added through the picker (five tags now), all in sight, removed again with its ×
    picker = page.locator(".st-key-methods-picker [data-testid=stMultiSelect] input").first
    picker.click()
    picker.fill("Integrated Gradients")
    page.get_by_role("option", name=re.compile(r"^Integrated Gradients")).first.click()
    page.keyboard.press("Escape")
    _tag(page, "Integrated Gradients").first.wait_for(timeout=SLOW_MS)
    _wait_until_idle(page)
    container = page.locator(".st-key-methods-picker [data-testid=stMultiSelectTagsContainer]").first
    frame = container.bounding_box()
    for k in range(_tags(page).count()):  # no tag scrolled sideways out of the box
        box = _tags(page).nth(k).bounding_box()
        assert box["x"] >= frame["x"] - 1 and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1, (k, box, frame)
    assert container.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
    close = _tag(page, "Integrated Gradients").first.locator("button").first
    assert close.is_visible()
    close.click()
    page.wait_for_function("() => !Array.from(document.querySelectorAll('.st-key-methods-picker [data-tag]'))"
                           ".some(t => t.innerText.includes('Integrated Gradients'))", timeout=SLOW_MS)
    _wait_until_idle(page)

    # the ground-truth images stay inside their panel at 1280 px
    page.get_by_role("tab", name="Ground truth and errors").click()
    panel = page.locator("[data-testid=stImage]").filter(has=page.locator("img")).filter(has_text="Ground truth")
    panel.first.scroll_into_view_if_needed()
    boxes = []
    for caption in ("Ground truth", "Prediction", "Errors"):
        image = page.locator("[data-testid=stImage]").filter(has_text=caption).first
        boxes.append(image.bounding_box())
    assert all(b is not None for b in boxes)
    for left, right in zip(boxes, boxes[1:], strict=False):
        assert left["x"] + left["width"] <= right["x"] + 1, boxes  # no overlap
    main = page.locator("[data-testid=stMainBlockContainer]").first.bounding_box()
    assert boxes[-1]["x"] + boxes[-1]["width"] <= main["x"] + main["width"] + 1, (boxes, main)

    _screenshot(page, SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 50_000
    print(f"e2e: draw → 4 maps → layer switch → tags → screenshot in {time.monotonic() - started:.1f} s")


# ------------------------------------------------------------------------------------------------
# Partial reruns (issue 13, item 2), read off the websocket: Streamlit's own protocol messages


def _record_protocol(page) -> dict[str, list]:
    """Every ForwardMsg the page receives and every BackMsg it sends, parsed, in order (attach before goto)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    log: dict[str, list] = {"received": [], "sent": []}

    def parse(kind, cls, payload) -> None:
        if isinstance(payload, bytes | bytearray):
            message = cls()
            message.ParseFromString(bytes(payload))
            log[kind].append(message)

    def attach(socket) -> None:
        socket.on("framereceived", lambda payload: parse("received", ForwardMsg, payload))
        socket.on("framesent", lambda payload: parse("sent", BackMsg, payload))

    page.on("websocket", attach)
    return log


def _whole_runs_finished(log: dict[str, list]) -> int:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    return sum(1 for m in log["received"]
               if m.WhichOneof("type") == "script_finished" and m.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY)


def _assert_fragment_only(log: dict[str, list], sent: int, received: int, tab) -> None:
    """Since message `sent`/`received`: reruns asked for name a fragment, every run that ended was a
    fragment run, and no delta went to the sidebar (root container 1). First waits (up to a minute) for
    the runs to settle: the last one to end must end complete, not cut short by a rerun asked for
    meanwhile (the tabs' fragment is asked for once the loop's pictures are painted)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    deadline = time.monotonic() + 60
    while True:
        ended = [m.script_finished for m in log["received"][received:] if m.WhichOneof("type") == "script_finished"]
        if ended and ended[-1] == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            break
        assert time.monotonic() < deadline, f"the fragment runs did not settle: {ended}"
        tab.wait_for_timeout(100)  # (Playwright hands over websocket events only while the test calls into it)
    reruns = [m.rerun_script for m in log["sent"][sent:] if m.WhichOneof("type") == "rerun_script"]
    assert reruns and all(r.fragment_id for r in reruns), reruns
    answer = log["received"][received:]
    finished = [m.script_finished for m in answer if m.WhichOneof("type") == "script_finished"]
    # (a fragment run whose widget callback asked for another fragment's rerun ends early for it)
    assert finished and all(f in (ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY, ForwardMsg.FINISHED_EARLY_FOR_RERUN)
                            for f in finished), str(finished)
    assert finished[-1] == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
    deltas = [m for m in answer if m.WhichOneof("type") == "delta"]
    assert deltas, "the rerun sent no deltas"
    assert not [list(m.metadata.delta_path) for m in deltas if m.metadata.delta_path[0] == 1]


def test_a_stroke_and_a_layer_change_rerun_only_the_loop_fragment(server) -> None:
    """Issue 13, item 2, read off the websocket: after a stroke and after a layer pick, the browser asks
    for a fragment rerun, the server runs fragments only and sends nothing to the sidebar.

    (Playwright hands over websocket events only while the test calls into it: waits use the page.)"""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            tab = browser.new_context(viewport=VIEWPORT).new_page()
            tab.set_default_timeout(SLOW_MS)
            log = _record_protocol(tab)
            tab.goto(server.url, wait_until="domcontentloaded")
            deadline = time.monotonic() + SLOW_MS / 1000
            while _whole_runs_finished(log) < 1 and time.monotonic() < deadline:
                tab.wait_for_timeout(200)
            assert any(m.WhichOneof("type") == "delta" and m.metadata.delta_path[0] == 1 for m in log["received"])

            # a stroke (drawn by no other test: its XRAI is computed here): the CAM maps come from a fragment run
            sent, received = len(log["sent"]), len(log["received"])
            whole = _whole_runs_finished(log)
            draw_stroke(tab, 0.30, 0.50, steps=12, dx=0.01, dy=0.006)
            cams = [t for t in TITLES if not t.startswith("XRAI")]
            while not all(any(m["title"].startswith(t) for m in _maps(tab)) for t in cams):
                assert time.monotonic() < deadline, "no CAM maps after the stroke"
                tab.wait_for_timeout(50)
            tab.wait_for_timeout(300)
            _assert_fragment_only(log, sent, received, tab)
            loop_id = next(m.rerun_script.fragment_id for m in log["sent"][sent:]
                           if m.WhichOneof("type") == "rerun_script")

            # XRAI fills in from its cell's own fragment; once its map is in, the loop's fragment reruns, then
            # the fragment of the tabs under it (the agreement, faithfulness and export take the map), and the
            # whole page does not
            while not all(any(m["title"].startswith(t) and m["size"] > 0 for m in _maps(tab)) for t in TITLES):
                assert time.monotonic() < deadline, "no XRAI map after the stroke"
                tab.wait_for_timeout(200)
            tab.wait_for_timeout(1500)
            _wait_until_idle(tab)
            _assert_fragment_only(log, sent, received, tab)
            assert _whole_runs_finished(log) == whole
            owners = [m.delta.fragment_id for m in log["received"][received:] if m.WhichOneof("type") == "delta"]
            last_loop = max(i for i, owner in enumerate(owners) if owner == loop_id)
            after = [owner for owner in owners[last_loop + 1:] if owner]
            assert after and loop_id not in after, "the tabs under the loop did not rerun after the loop"
            # the layer sweep's tab is a fragment inside the sections' fragment: its deltas (its switch) carry its
            # own id, in the sections' runs; the other ids are the slow maps' cells
            sweep = {m.delta.fragment_id for m in log["received"][received:] if m.WhichOneof("type") == "delta"
                     and m.delta.WhichOneof("type") == "new_element"
                     and m.delta.new_element.WhichOneof("type") == "checkbox"
                     and m.delta.new_element.checkbox.label.startswith("Compute Grad-CAM and Grad-CAM++ at every")}
            cells = [i for i, owner in enumerate(owners) if owner and owner not in (loop_id, after[0], *sweep)]
            assert cells, "XRAI's map did not come from its cell's fragment"
            assert loop_id in owners[cells[-1] + 1:], "the loop did not rerun after XRAI's map was in"
            before = {t: m["fingerprint"] for t in TITLES for m in _maps(tab) if m["title"].startswith(t)}
            sent, received = len(log["sent"]), len(log["received"])
            choose_layer(tab, SECOND_LAYER)
            _wait_for_maps(tab, previous=before)
            tab.wait_for_timeout(500)
            _assert_fragment_only(log, sent, received, tab)
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------------
# The canvas (streamlit-drawable-canvas): its polygon tool, its toolbar, its drawing kept across modes


def _drawn_pixels(page, not_equal: int | None = None) -> int:
    """The region size the page states ("… for the drawing (443 px) …"), once it differs from `not_equal`."""
    pattern = re.compile(r"for the drawing \((\d+) px\)")
    deadline = time.monotonic() + SLOW_MS / 1000
    while time.monotonic() < deadline:
        found = pattern.search(page.locator("[data-testid=stMainBlockContainer]").first.inner_text())
        if found and int(found.group(1)) != not_equal:
            return int(found.group(1))
        time.sleep(0.2)
    raise AssertionError(f"the page never stated a drawn region other than {not_equal} px")


def _toolbar(page, name: str):
    """A button of the canvas's toolbar (shown while the pointer is over the canvas)."""
    page.locator(CANVAS).first.hover()
    return page.get_by_role("button", name=name, exact=True).first


def test_polygons_count_once_closed_and_undo_takes_one_back(page) -> None:
    """The library's polygon tool: an open polygon is not a region; clicking its first corner closes it;
    the toolbar's undo takes the last polygon back (sent once another tool is chosen: see below)."""
    page.get_by_text("Draw on the image to mark the region to explain").wait_for(timeout=SLOW_MS)
    choose(page, "Tool", "Polygon")
    page.get_by_text("click the first corner again to close it").first.wait_for()

    click_canvas(page, [(0.30, 0.35), (0.55, 0.35), (0.55, 0.50), (0.30, 0.50)])
    page.wait_for_timeout(1000)
    assert not re.search(r"for the drawing \(", page.locator("[data-testid=stMainBlockContainer]").first.inner_text())
    click_canvas(page, [(0.30, 0.35)])  # the first corner again: closed
    first = _drawn_pixels(page)
    # 0.25 × 0.15 of the 144-px image is 36 × 21.6 px; the outline and pooling add a pixel or two round the edge
    assert 700 <= first <= 40 * 26, first

    click_canvas(page, [(0.62, 0.62), (0.78, 0.62), (0.70, 0.78), (0.62, 0.62)])
    both = _drawn_pixels(page, not_equal=first)
    assert both > first + 150, (first, both)

    # the library sends nothing in polygon mode but a closed polygon (undo there takes effect with the
    # next send): with another tool, undo sends at once
    choose(page, "Tool", "Rectangle")
    _wait_until_idle(page)
    pattern = re.compile(r"for the drawing \((\d+) px\)")
    seen = []
    for _ in range(5):  # undo steps back through the polygon's corners (its open outline) to before it
        _toolbar(page, "Undo").click()
        page.wait_for_timeout(1500)
        _wait_until_idle(page)
        shown = pattern.search(page.locator("[data-testid=stMainBlockContainer]").first.inner_text())
        seen.append(int(shown.group(1)) if shown else None)
        if seen[-1] == first:
            break
    assert seen[-1] == first, (first, both, seen)


def test_the_canvas_shows_its_drawing_again_after_another_region_mode(page) -> None:
    """Leaving the draw mode and coming back mounts the canvas anew: it must show the drawing the maps
    still explain (its `initial_drawing`), not an empty canvas over an invisible region, and a new stroke
    adds to it. (The toolbar's reset goes back to that starting drawing: the library's history starts
    there.)"""
    page.get_by_text("Draw on the image to mark the region to explain").wait_for(timeout=SLOW_MS)
    _draw_stroke(page)
    drawn = _drawn_pixels(page)
    choose(page, "Region", "Whole class")
    page.get_by_text(re.compile(r"for the whole class")).first.wait_for()
    choose(page, "Region", "Draw")
    page.locator(CANVAS).first.wait_for()
    assert _drawn_pixels(page) == drawn
    painted = page.locator("canvas.lower-canvas").first.evaluate(
        "el => { const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }")
    assert painted > 200, painted  # the stroke is on the canvas again, not only in the region
    draw_stroke(page, 0.30, 0.70, steps=15, dx=0.012)
    assert _drawn_pixels(page, not_equal=drawn) > drawn  # added to the restored stroke (alone it is smaller)


def test_an_opened_expander_stays_open_when_the_region_mode_changes(page) -> None:
    """The method settings, opened, stay open when another region mode changes the lines above them
    (Streamlit redraws an element that moved to another place, and an expander comes back closed)."""
    page.get_by_text("Draw on the image to mark the region to explain").wait_for(timeout=SLOW_MS)
    page.get_by_text("Method settings", exact=True).first.click()
    setting = page.get_by_text("XRAI integration steps", exact=True)  # XRAI is one of the default methods
    setting.wait_for(state="visible")
    choose(page, "Region", "Whole class")
    page.get_by_text(re.compile(r"for the whole class")).first.wait_for()
    _wait_until_idle(page)
    assert setting.is_visible(), "the method settings closed when the region mode changed"


# ------------------------------------------------------------------------------------------------
# Issue 32: the loop view at 1280×800 with every method chosen, and the view kept in the URL

# Every select's shown value measured in its own font against the room its box gives it.
SELECT_TEXT_JS = """
() => Array.from(document.querySelectorAll('[data-testid=stMain] [data-testid=stSelectbox] input')).map(i => {
  const s = getComputedStyle(i), ctx = document.createElement('canvas').getContext('2d');
  ctx.font = s.font;
  const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
  return {value: i.value, text: ctx.measureText(i.value).width, room};
}).filter(x => x.room > 0)
"""
# Texts a box cuts (ellipsis or clipping) in the loop view's left column, and the options of an open list.
CUT_JS = """
(selector) => Array.from(document.querySelectorAll(selector)).filter(e => {
  if (e.children.length > 0 || !e.innerText || !e.innerText.trim()) return false;
  const r = e.getBoundingClientRect();
  return r.width > 0 && e.scrollWidth > e.clientWidth + 1;
}).map(e => e.innerText.slice(0, 60))
"""


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] - 1 and b["x"] < a["x"] + a["width"] - 1
            and a["y"] < b["y"] + b["height"] - 1 and b["y"] < a["y"] + a["height"] - 1)


def _open_options(page, select) -> None:
    """Open a select's list. A loop rerun that lands meanwhile (the settle run after the last slow map, late on
    a loaded machine) draws the select anew and closes the list: click again until it stays open."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + SLOW_MS / 1000
    while True:
        select.click()
        try:
            page.get_by_role("option").first.wait_for(timeout=5_000)
            return
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                raise


def test_every_method_chosen_nothing_overlaps_and_no_choice_is_cut_at_1280(page) -> None:
    """Issue 32: "Select all" spilled the method tags over Map opacity, Scale and the method settings; the
    selects cut their values ("Free ha", "backgrounc", "final_conv (72×72×32 · c") and the layer list its
    names; the brush and the toggle beside it shared a row too narrow for the toggle's label."""
    page.get_by_text("Draw on the image to mark the region to explain").wait_for(timeout=SLOW_MS)
    _draw_stroke(page)
    _wait_for_maps(page)
    _wait_until_idle(page)
    for tool in ("Free hand", "Rectangle", "Polygon", "Points"):
        choose(page, "Tool", tool)
        _wait_until_idle(page)
        cut = [x for x in page.evaluate(SELECT_TEXT_JS) if x["text"] > x["room"] + 0.5]
        assert not cut, f"selects cut with tool {tool}: {cut}"
    choose(page, "Tool", "Free hand")
    choose(page, "Class", "background")  # the longest class name of the shipped model
    _wait_until_idle(page)
    cut = [x for x in page.evaluate(SELECT_TEXT_JS) if x["text"] > x["room"] + 0.5]
    assert not cut, cut
    assert not page.evaluate(CUT_JS, "[data-testid=stColumn] [data-testid=stWidgetLabel] *"), "a label is cut"

    layer = page.locator("[data-testid=stSelectbox]").filter(
        has=page.locator("[data-testid=stWidgetLabel]", has_text=re.compile("^Layer$"))).first
    _open_options(page, layer)
    assert not page.evaluate(CUT_JS, "[role=option] *"), "layer names cut in the list"
    page.keyboard.press("Escape")

    picker = page.locator(".st-key-methods-picker [data-testid=stMultiSelect]").first
    picker.scroll_into_view_if_needed()
    _open_options(page, picker)
    page.get_by_role("option", name="Select all").click()
    page.keyboard.press("Escape")
    page.mouse.move(5, 5)
    _wait_until_idle(page)
    page.wait_for_function("() => document.querySelectorAll('.st-key-methods-picker [data-tag]').length >= 15")
    tags = [_tags(page).nth(k).bounding_box() for k in range(_tags(page).count())]
    box = picker.bounding_box()
    below = {"Map opacity": page.locator("[data-testid=stSlider]").filter(has_text="Map opacity").first,
             "Scale": page.locator("[data-testid=stSelectbox]").filter(has_text="Scale").first,
             "Method settings": page.locator("[data-testid=stExpander]").filter(has_text="Method settings").first}
    for name, locator in below.items():
        other = locator.bounding_box()
        assert other is not None, name
        assert other["y"] >= box["y"] + box["height"] - 1, (name, other, box)  # under the picker, not over it
        hit = [t for t in tags if _overlap(t, other)]
        assert not hit, f"method tags over {name}: {hit[:3]}"
    assert all(t["y"] + t["height"] <= box["y"] + box["height"] + 1 for t in tags), "tags outside the picker"


def test_the_view_is_kept_in_the_url_for_a_reload_and_for_a_shared_link(page, server) -> None:
    """Issue 32: image, class, layer, methods and the drawing in the address; a reload and the same link in
    another browser show the same comparison (the same region, drawn on the canvas again)."""
    page.get_by_text("Draw on the image to mark the region to explain").wait_for(timeout=SLOW_MS)
    _draw_stroke(page)
    drawn = _drawn_pixels(page)
    choose(page, "Class", "gills")
    choose_layer(page, SECOND_LAYER)
    caption = re.compile(rf"Explaining gills \(logits\) for the drawing \({drawn} px\) at layer {SECOND_LAYER}")
    page.get_by_text(caption).first.wait_for(timeout=SLOW_MS)
    page.wait_for_function(f"() => location.search.includes('layer={SECOND_LAYER}') && "
                           "location.search.includes('class=2') && location.search.includes('region=')")
    link = page.url
    assert "image=sample%3Afly+agaric" in link or "image=sample:fly" in link.replace("%3A", ":"), link

    def same_view(tab) -> None:
        tab.get_by_text(caption).first.wait_for(timeout=SLOW_MS)
        painted = tab.locator("canvas.lower-canvas").first.evaluate(
            "el => { const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }")
        assert painted > 200, painted  # the stroke is on the canvas, not only in the region
        methods = tab.locator(".st-key-methods-picker [data-tag]").all_inner_texts()
        assert [m.split(" ·")[0] for m in methods][:2] == ["Grad-CAM", "Grad-CAM++"], methods

    page.reload()
    same_view(page)
    other = page.context.browser.new_context(viewport=VIEWPORT).new_page()  # someone the link was sent to
    try:
        other.set_default_timeout(SLOW_MS)
        other.goto(link, wait_until="domcontentloaded")
        same_view(other)
    finally:
        other.context.close()


# ------------------------------------------------------------------------------------------------
# Two browser sessions computing at the same time on the one cached model (issue 8)


def _draw_stroke_at(page, x_frac: float, y_frac: float) -> None:
    """A short horizontal stroke starting at (x_frac, y_frac) of the canvas (fractions of its size)."""
    draw_stroke(page, x_frac, y_frac, steps=15, dx=0.012)


def _download_export(page, folder: Path, name: str) -> Path:
    """Click the page's "Maps + settings (.zip)" download and save the file."""
    page.get_by_role("tab", name="Export").first.click()
    page.get_by_role("button", name=re.compile("Prepare the downloads")).first.click()
    button = page.locator("[data-testid=stDownloadButton]").filter(has_text=".zip").first
    button.wait_for(timeout=SLOW_MS)
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=SLOW_MS) as download:
        button.locator("button").first.click()
    path = folder / name
    download.value.save_as(str(path))
    return path


def _read_export(path: Path) -> tuple[dict, dict]:
    import io
    import json
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        settings = json.loads(archive.read(next(n for n in names if n.endswith(".json"))))
        with np.load(io.BytesIO(archive.read(next(n for n in names if n.endswith(".npz"))))) as npz:
            arrays = {key: npz[key] for key in npz.files}
    return settings, arrays


def test_two_sessions_computing_at_once_get_the_maps_of_a_single_caller(server, tmp_path) -> None:
    """Two tabs (two Streamlit sessions) draw different regions and compute at the same moment.

    Both run the four methods on the one `st.cache_resource` model at once. Each tab's exported maps
    (the .npz of its "Maps + settings" download) must equal what a single caller gets from
    `explainers.explain` for the region, class, layer and XRAI settings that tab recorded, computed here
    afterwards with no other work running.
    """
    import numpy as np
    from playwright.sync_api import sync_playwright

    import explainers
    from models import load_default

    strokes = [(0.30, 0.38), (0.38, 0.47)]  # two different strokes across the cap of the default sample
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            tabs = []
            for _ in strokes:
                context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
                tab = context.new_page()
                tab.set_default_timeout(SLOW_MS)
                tab.goto(server.url, wait_until="domcontentloaded")
                tabs.append(tab)
            for tab in tabs:
                tab.get_by_text("Draw on the image to mark the region to explain").wait_for(timeout=SLOW_MS)
                _wait_until_idle(tab)
            for tab, (x, y) in zip(tabs, strokes, strict=True):
                begin_stroke(tab, x, y, steps=15, dx=0.012)
            for tab in tabs:  # both strokes end within milliseconds, so both requests are in flight together
                tab.mouse.up()
            # the first tab cannot have finished XRAI (100 steps) a few milliseconds after its stroke: they overlap
            assert len(_maps(tabs[0])) < len(TITLES) or not all(m["size"] for m in _maps(tabs[0]))
            shown = [_wait_for_maps(tab) for tab in tabs]
            for tab in tabs:
                _wait_until_idle(tab)
                assert tab.locator("[data-testid=stException]").count() == 0
            exports = [_download_export(tab, tmp_path, f"tab{k}.zip") for k, tab in enumerate(tabs)]
        finally:
            browser.close()

    assert all(len(maps) == len(TITLES) for maps in shown)
    model = load_default()
    regions_seen = []
    for path in exports:
        settings, arrays = _read_export(path)
        region = arrays["region"]
        regions_seen.append(region)
        xrai = settings["methods"]["xrai"]
        alone = explainers.explain(
            model, arrays["image"], region, settings["class"]["index"], settings["layer"],
            methods=explainers.DEFAULT_METHODS, target=settings["target"],
            options={"xrai": {"steps": xrai["options"]["steps"], "algorithm": xrai["options"]["algorithm"]}},
        )
        for method, explanation in alone.items():
            exported = arrays[f"heatmap_{method.replace('+', 'p')}"]
            np.testing.assert_allclose(exported, explanation.heatmap, atol=1e-5, err_msg=f"{path.name}: {method}")
    assert not np.array_equal(regions_seen[0], regions_seen[1])
