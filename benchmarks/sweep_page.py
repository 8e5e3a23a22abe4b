"""The layer sweep on the page against the library's own sweep, on a MobileNetV2 segmentation head or a
keras-hub DeepLabV3 worked at 512×512.

Model: `keras.applications.MobileNetV2(weights=None, 224², include_top=False)` + a 1×1 Conv2D(21)
classifier + bilinear UpSampling2D(32): 155 explainable layers. With `--model deeplabv3`: a keras-hub
DeepLabV3 on a small ResNet encoder built from its constructor (`models.keras_hub_nets`, random weights,
free input size, 21 classes), on a 512×512 generated scene at the working size 512 (pad): the library's
model and the page's get `set_working_size(model, 512, "pad")`, and in Chromium the scene is uploaded before
the model and the sidebar's working size is checked (set to 512 if the page did not pick it). The page's sweep work is the
"Layer sweep" tab (`dashboard.sweep_view.show`) run by Streamlit's AppTest without a browser: the cached
library call, the shrunk maps, the depth curve (every layer), the JPEG pictures and the elements of the
grid's page on screen (at most `dashboard.sweep_view.PAGE_SIZE` maps), as the script run sends them.
The library's time is `explainers.layer_sweep` for the same image, region and class. Both are timed cold (first trace of the compiled pass) and warm (a new region: the pass
is traced, nothing is cached). A click on a map reruns with the sweep cached (the third page time).
The browser's own painting is not in these figures; the bytes the page sends are.

With `--browser` it also drives Chromium through the real page (`streamlit run`, the model uploaded,
strokes on the canvas) and times mouse-up → every picture of the grid's page repainted, the switch on for
a new region → the page painted, and a click on another page → its pictures painted.

Run: `python -m benchmarks.sweep_page [--model mobilenetv2|deeplabv3] [--browser] [--write]`; `--write` puts
the figures between the `sweep_page` markers of benchmarks/RESULTS.md (the DeepLabV3's have markers of their own). Target (issue 31 item 2): the page's warm sweep ≤ 2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.common import RESULTS_PATH, Section, machine_description, replace_block

START, END = "<!-- sweep_page:start -->", "<!-- sweep_page:end -->"
SIZE = 224  # the MobileNetV2 head's input
WORKING = 512  # the DeepLabV3's working size (issue 31)
TARGET_SECONDS = 2.0

PICTURE_BYTES: list[int] = []  # sizes of the sweep's pictures encoded in the page's first run

# Read by the AppTest script below (it runs in this process): the model and the request to show.
MODEL = None
REQUEST = None


def build_head(size: int = SIZE, num_classes: int = 21):
    """MobileNetV2 (weights=None) + 1×1 classifier + bilinear ×32 upsampling: the issue's real backbone."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), include_top=False)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Conv2D(num_classes, 1, name="classifier")(backbone(inputs))
    x = layers.UpSampling2D(32, interpolation="bilinear", name="upsample")(x)
    return keras.Model(inputs, x, name="mobilenetv2_head")


def build_deeplab(num_classes: int = 21):
    """keras-hub DeepLabV3 (small ResNet encoder, random weights), free input size, worked at WORKING."""
    import explainers
    from models.keras_hub_nets import deeplabv3

    model = deeplabv3(num_classes)
    explainers.set_working_size(model, WORKING, "pad")
    return model


@dataclass(frozen=True)
class Subject:
    """The network under test: how to build it, the image side it is shown at, its name in the tables."""

    build: object
    size: int
    title: str
    before: str
    markers: tuple[str, str]
    free: bool = False

    def image(self) -> np.ndarray:
        if not self.free:
            return (np.random.default_rng(0).random((self.size, self.size, 3)) * 255).astype(np.uint8)
        from models.scenes import load_sample, sample_names

        return load_sample(sample_names()[0], self.size)[0]


SUBJECTS = {
    "mobilenetv2": Subject(build_head, SIZE, "MobileNetV2 head, 224²",
                           "one Plotly subplot per layer and method: 2 × 155 heatmaps at 224², 2 × 50 MB of JSON, "
                           "2 × 3.2 s to build and serialise on the server; 90 s to the screen (issue 31)", (START, END)),
    "deeplabv3": Subject(build_deeplab, WORKING, "keras-hub DeepLabV3, small ResNet encoder, free size worked at 512×512",
                         "a keras-hub DeepLabV3's sweep took 40 s to the screen (issue 31's report)",
                         ("<!-- sweep_page:deeplabv3:start -->", "<!-- sweep_page:deeplabv3:end -->"), free=True),
}


def _region(top: int, size: int = SIZE) -> np.ndarray:
    """A 90-pixel square region at 224² (scaled to `size`), `top` rows down."""
    scale = size / SIZE
    region = np.zeros((size, size), dtype=bool)
    region[round(top * scale):round((top + 90) * scale), round(70 * scale):round(160 * scale)] = True
    return region


def _page_script() -> None:
    """The sweep tab alone, on `REQUEST` (an AppTest script: imports inside)."""
    import time

    import streamlit as st

    from benchmarks import sweep_page
    from dashboard import runtime, sweep_view

    runtime.keep_keras_session()  # as dashboard/app.py does: no kernel-cache reset after each run
    start = time.perf_counter()
    sweep_view.show(sweep_page.REQUEST)
    st.session_state["sweep_seconds"] = time.perf_counter() - start


def _request(model, image: np.ndarray, region: np.ndarray, key: str):
    import explainers
    from dashboard import comparison, compute

    return comparison.Request(model=model, model_key=key, image=image, image_key=compute.digest(image),
                              region=region, class_index=3, layer=explainers.default_layer(model),
                              methods=("gradcam", "gradcam++"),
                              target="logits", options={"xrai": {"steps": 4, "algorithm": "fast"}})


def _page_run(at) -> tuple[float, float]:
    """(seconds inside the script, wall seconds of the AppTest run)."""
    start = time.perf_counter()
    at.run()
    wall = time.perf_counter() - start
    assert not at.exception, [e.value for e in at.exception]
    return float(at.session_state["sweep_seconds"]), wall


def _sent_bytes(at) -> int:
    """Bytes of the figure specs and HTML rows (the pictures inline as data URIs) the run put on the page."""
    total = sum(len(chart.proto.spec) for chart in at.get("plotly_chart"))
    return total + sum(len(element.value) for element in at.html)


def run(repeats: int = 3, subject: Subject = SUBJECTS["mobilenetv2"]) -> Section:
    from streamlit.testing.v1 import AppTest

    import explainers
    from benchmarks import sweep_page as shared  # the module the script reads (not `__main__` under -m)

    image, size = subject.image(), subject.size

    # the library: first call (traces the pass), then warm, each with a new region
    model = subject.build()
    layers = len(explainers.explainable_layers(model))
    section = Section(f"Layer sweep on the page vs the library ({subject.title}, {layers} layers)")
    start = time.perf_counter()
    explainers.layer_sweep(model, image, _region(20, size), 3)
    library_cold = time.perf_counter() - start
    library_warm = []
    for k in range(repeats):
        start = time.perf_counter()
        explainers.layer_sweep(model, image, _region(30 + 7 * k, size), 3)
        library_warm.append(time.perf_counter() - start)

    # the page, on a model it has not seen (a fresh copy: its compiled pass is traced again)
    from dashboard import figures

    encode = figures.sweep_picture

    def counted(*args, **kwargs) -> bytes:
        data = encode(*args, **kwargs)
        PICTURE_BYTES.append(len(data))
        return data

    figures.sweep_picture = counted
    shared.MODEL = model = subject.build()
    at = AppTest.from_function(_page_script, default_timeout=600)
    shared.REQUEST = _request(model, image, _region(20, size), "bench-sweep")
    page_cold, wall_cold = _page_run(at)
    figures.sweep_picture = encode
    sent = _sent_bytes(at)
    pictures = sum(element.value.count("data:image/jpeg") for element in at.html)
    page_warm, wall_warm = [], []
    for k in range(repeats):
        shared.REQUEST = _request(model, image, _region(30 + 7 * k, size), "bench-sweep")
        inside, wall = _page_run(at)
        page_warm.append(inside)
        wall_warm.append(wall)
    clicked, clicked_wall = _page_run(at)  # same region again: what a click on a map costs the tab

    warm_lib, warm_page, warm_wall = (statistics.median(v) for v in (library_warm, page_warm, wall_warm))
    section.row("machine", machine_description())
    section.row("explainable layers / pictures on the grid's first page (the others on other pages or flat: blank)",
                f"{layers} / {pictures}")
    section.row("library `layer_sweep`, first call (with tracing)", f"{library_cold:.2f} s")
    section.row("library `layer_sweep`, warm (median)", f"{warm_lib:.2f} s")
    section.row("page sweep tab, first run (with tracing)", f"{page_cold:.2f} s (AppTest run {wall_cold:.2f} s)")
    section.row("page sweep tab, new region (median)", f"{warm_page:.2f} s (AppTest run {warm_wall:.2f} s)")
    section.row("page sweep tab, rerun with the sweep cached (a click)", f"{clicked:.2f} s "
                f"(AppTest run {clicked_wall:.2f} s)")
    section.row("page / library, warm", f"{warm_page / warm_lib:.1f}×")
    section.row("sent: figure specs and rows of inline pictures / the JPEGs themselves",
                f"{sent / 1e6:.2f} MB / {sum(PICTURE_BYTES) / 1e6:.2f} MB ({len(PICTURE_BYTES)} pictures)")
    section.row("before (main, 2026-12-05)", subject.before)
    section.target(f"page sweep for a new region ≤ {TARGET_SECONDS:g} s after the first trace (AppTest run)",
                   warm_wall <= TARGET_SECONDS)
    return section


GRID_JS = """() => { const grid = document.querySelector('.st-key-sweep-grid'); if (!grid) return null;
  const hash = (text) => { let h = 0; for (let i = 0; i < text.length; i += 7) h = (h * 31 + text.charCodeAt(i)) | 0; return h; };
  const rows = [...grid.querySelectorAll('[data-testid=stHtml], .stHtml')].map(row => {
    const srcs = [...row.querySelectorAll('img')].map(i => i.src); return srcs.length ? hash(srcs.join('|')) : null; });
  const imgs = [...grid.querySelectorAll('img')];
  const blank = [...grid.querySelectorAll('[data-testid=stHtml] div, .stHtml div')]
    .filter(d => d.children.length === 0 && d.textContent.trim() === 'no location').length;
  const range = (grid.innerText.match(/Maps (\\d+)\\u2013(\\d+) of (\\d+)/) || []).slice(1).map(Number);
  return {buttons: grid.querySelectorAll('button').length, n: imgs.length, cells: imgs.length + blank,
          expected: range.length ? range[1] - range[0] + 1 : null, total: range.length ? range[2] : null,
          done: imgs.every(i => i.complete && i.naturalWidth > 0),
          pending: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length, rows: rows,
          width: imgs.length ? imgs[0].getBoundingClientRect().width : 0}; }"""


def _painted(page, before: dict | None, timeout: float = 300.0, settle: float = 0.5) -> tuple[float, dict]:
    """Seconds until the sweep's grid shows its whole page: as many cells (pictures and "no location" blanks)
    and buttons as its "Maps a–b of n" line says, every picture loaded, and its rows of pictures (their
    number and content) no longer changing: the time of the last change, once nothing has changed for
    `settle` seconds. The buttons and the rows arrive as separate elements, and some rows never change for
    a new region (a layer whose map is the same for any region, or blank), so neither "a button per map"
    nor "every row new" marks the end. With `before` (the grid for the previous region or page) the grid
    as it was does not count as a change."""
    start = time.perf_counter()
    seen = tuple(before["rows"]) if before else None
    last_change, grid, changes, missing = None, None, 0, 0
    while time.perf_counter() - start < timeout:
        grid = page.evaluate(GRID_JS)
        missing += grid is None
        now = time.perf_counter()
        if (grid and grid["expected"] and grid["cells"] == grid["expected"] and grid["buttons"] >= grid["expected"]
                and grid["done"] and grid["rows"]):
            rows = tuple(grid["rows"])
            if rows != seen:
                seen, last_change, changes = rows, now, changes + 1
            elif last_change is not None and now - last_change >= settle:
                return last_change - start, grid
        time.sleep(0.02)
    grid = grid or {}
    raise TimeoutError(f"the sweep's pictures were not all on screen within {timeout:.0f} s "
                       f"({'switching on' if before is None else 'after a change'}; buttons {grid.get('buttons')}, "
                       f"cells {grid.get('cells')} of {grid.get('expected')}, pictures {grid.get('n')}, "
                       f"not loaded {grid.get('pending')}, rows {len(grid.get('rows') or [])}, "
                       f"changed {changes} times, last {now - last_change if last_change else float('nan'):.1f} s "
                       f"before the end; no grid at {missing} looks)")


def browser(section: Section, strokes: int = 3, subject: Subject = SUBJECTS["mobilenetv2"]) -> None:
    """The same tab in Chromium (1280×800, sidebar open): the model uploaded, a stroke, the sweep switched
    on (first trace), then new strokes with the sweep on: mouse-up → every picture of the grid's page
    repainted (this includes the canvas's 200 ms debounce and the loop's own maps, which run first); the
    sweep switched on for new regions; clicks on other pages of the grid."""
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from e2e_server import StreamlitServer, draw_stroke  # noqa: E402  (the tests' server helper)
    from playwright.sync_api import sync_playwright

    import explainers
    from benchmarks.ui_latency import ARGS, CHROMIUM
    from benchmarks.upload_latency import working_image, working_size_on_page
    from dashboard.sweep_view import PAGE_SIZE as PAGE_LIMIT

    loads = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model = subject.build()
        layers = len(explainers.explainable_layers(model))
        model.save(path)
        with StreamlitServer() as server, sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = chromium.new_page(viewport={"width": 1280, "height": 800})
                page.goto(server.url)
                page.wait_for_selector("text=Active: shipped", timeout=240_000)
                sidebar = page.locator("section[data-testid='stSidebar']")
                if subject.free:  # an image of the working size first: the shipped samples are 144²
                    sidebar.locator("[data-testid=stFileUploader]").filter(has_text="upload an image").locator(
                        "input[type='file']").set_input_files(str(working_image(Path(folder) / "scene.png")))
                    page.wait_for_selector("text=The sample scenes are not in use", timeout=120_000)
                    time.sleep(3)
                sidebar.locator("input[type='file']").first.set_input_files(str(path))
                page.wait_for_selector("text=Active: uploaded", timeout=300_000)
                if subject.free:
                    section.row("working size on the page (longest side)", working_size_on_page(page, sidebar))
                time.sleep(3)
                for attempt in range(3):  # a stroke while the canvas is redrawn (a slow run at 512²) can be lost
                    draw_stroke(page, 0.35 + 0.05 * attempt, 0.4, 8, 0.03, 0.01)
                    try:
                        page.wait_for_selector(".st-key-map-gradcam img", timeout=60_000)
                        break
                    except Exception:  # noqa: BLE001  (Playwright's TimeoutError: stroke again)
                        if attempt == 2:
                            raise
                time.sleep(3)
                page.get_by_role("tab", name="Layer sweep").click()
                page.get_by_text("Compute Grad-CAM and Grad-CAM++ at every explainable layer").click()
                first, grid = _painted(page, None)
                if grid["total"] != layers:
                    raise RuntimeError(f"the grid counts {grid['total']} maps, the model has {layers} layers")
                times = []
                for x, y in ((0.55, 0.5), (0.3, 0.6), (0.5, 0.3), (0.4, 0.55), (0.6, 0.4))[:strokes]:
                    before = grid
                    time.sleep(2)
                    draw_stroke(page, x, y, 8, 0.03, 0.01)
                    seconds, grid = _painted(page, before)
                    times.append(seconds)
                    print(f"  stroke → all {grid['n']} sweep pictures repainted: {seconds:.2f} s", flush=True)
                # the sweep asked for on a region it has not seen (the pass traced): switch → pictures
                toggle = page.get_by_text("Compute Grad-CAM and Grad-CAM++ at every explainable layer")
                switched = []
                for x, y in ((0.45, 0.35), (0.3, 0.5), (0.55, 0.6))[:strokes]:
                    toggle.click()
                    page.wait_for_selector(".st-key-sweep-grid", state="detached", timeout=60_000)
                    maps = page.evaluate("() => document.querySelector('.st-key-map-gradcam img').src")
                    draw_stroke(page, x, y, 8, 0.03, 0.01)
                    page.wait_for_function("(before) => { const i = document.querySelector('.st-key-map-gradcam img');"
                                           " return i && i.complete && i.src !== before; }", arg=maps, timeout=60_000)
                    time.sleep(2)
                    start = time.perf_counter()
                    toggle.click()
                    seconds, grid = _painted(page, None)
                    switched.append(time.perf_counter() - start)
                    print(f"  switch on, new region → all {grid['n']} pictures: {switched[-1]:.2f} s", flush=True)
                # another page of the grid (the sweep cached): click → its pictures painted
                paged, sizes = [], [grid["expected"]]
                for _ in range(strokes):
                    before = grid
                    time.sleep(2)
                    others = page.locator(".st-key-sweep_page button[role=radio][aria-checked=false]")
                    start = time.perf_counter()
                    others.nth(len(paged) % others.count()).click()
                    seconds, grid = _painted(page, before)
                    paged.append(time.perf_counter() - start)
                    sizes.append(grid["expected"])
                    print(f"  another page → its {grid['n']} pictures: {paged[-1]:.2f} s", flush=True)
            except Exception:
                shot = Path(tempfile.gettempdir()) / "sweep_page_failure.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"  failed: the page as it was is in {shot}", flush=True)
                raise
            finally:
                chromium.close()
    section.row("load average (1 min) at the start / end of the Chromium runs (2 shared cores)",
                f"{loads[0]:.2f} / {os.getloadavg()[0]:.2f}")
    section.row("Chromium: switch on → the page's pictures painted (first trace)", f"{first:.2f} s")
    section.row(f"Chromium: stroke → the page's pictures repainted, median of {len(times)} (worst)",
                f"{statistics.median(times):.2f} s ({max(times):.2f} s; picture width {grid['width']:.0f} px)")
    section.row(f"Chromium: switch on for a new region → the page's pictures painted, median of {len(switched)} (worst)",
                f"{statistics.median(switched):.2f} s ({max(switched):.2f} s)")
    section.row(f"Chromium: another page of the grid → its pictures painted, median of {len(paged)} (worst)",
                f"{statistics.median(paged):.2f} s ({max(paged):.2f} s)")
    section.row("Chromium: maps per page shown in these runs (of the layers)",
                f"{', '.join(str(n) for n in sizes)} (of {grid['total']}; every page holds ≤ {PAGE_LIMIT})")
    section.target(f"Chromium: switch on → sweep on screen ≤ {TARGET_SECONDS:g} s after the first trace (median)",
                   statistics.median(switched) <= TARGET_SECONDS)
    section.target(f"Chromium: stroke → maps and sweep on screen ≤ {TARGET_SECONDS:g} s (median; informational)",
                   statistics.median(times) <= TARGET_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", choices=sorted(SUBJECTS), default="mobilenetv2",
                        help="the network: a MobileNetV2 head (224²) or a keras-hub DeepLabV3 worked at 512×512")
    parser.add_argument("--write", action="store_true", help="put the figures into benchmarks/RESULTS.md")
    parser.add_argument("--browser", action="store_true", help="also time the tab in Chromium (a few minutes)")
    args = parser.parse_args()
    subject = SUBJECTS[args.model]
    section = run(args.repeats, subject)
    if args.browser:
        try:
            browser(section, subject=subject)
        except Exception as error:  # noqa: BLE001  (the AppTest figures are still written)
            section.row("Chromium", f"not measured: {type(error).__name__}: {str(error)[:160]}")
    if args.write:
        flag = "" if args.model == "mobilenetv2" else f" --model {args.model}"
        note = f"Written by `python -m benchmarks.sweep_page{flag}{' --browser' if args.browser else ''} --write` " \
               f"(not by run_all), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        text = RESULTS_PATH.read_text(encoding="utf-8")
        start, end = subject.markers
        if start not in text and END in text:  # a new table goes right after the first one
            at = text.index(END) + len(END)
            text = text[:at] + f"\n\n{start}\n{end}" + text[at:]
        RESULTS_PATH.write_text(replace_block(text, start, end, note + section.markdown()), encoding="utf-8")


if __name__ == "__main__":
    main()
