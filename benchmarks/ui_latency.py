"""Latency of the draw-and-compare loop in a real browser: action on screen → all CAM maps updated.

Starts `streamlit run dashboard/app.py` on a free loopback port, drives Debian's Chromium through
Playwright at 1280×800, draws strokes at different places on the canvas and switches the layer, and
reports the median and worst time from the action (mouse-up, option click) to every CAM map on
screen showing its new picture, beside the engine's own time (the seconds each map's caption
reports). All three instants are taken in the page's own clock (`performance.now()`): the mouse-up,
the first websocket message after it (the rerun request streamlit-drawable-canvas sends 200 ms after a stroke ends),
and the check that finds the last map showing its new picture (every frame for the CAMs, every
`XRAI_POLL_MS` for XRAI). It also times XRAI for a new region on an image already seen (its segments
are cached), its preview (PAIR's XRAI at 12 of the 100 steps, shown while the full map is computed)
and the full map, beside XRAI's own seconds, times the first visit of a layer (which traces its gradient
function) apart from the warm layer changes, and checks that the canvas and every map are inside the
viewport together.

Run: `python -m benchmarks.ui_latency [--strokes N] [--write]` (`--write` puts the table into
benchmarks/RESULTS.md between this benchmark's markers). Figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
CAMS = ("gradcam", "gradcam++", "vinogradova")
XRAI_POLL_MS = 50  # how often the benchmark checks for the XRAI map (its figures are ±0.05 s)
LAYERS = ("aggregation", "final_conv")
STROKES = ((0.30, 0.38), (0.40, 0.45), (0.25, 0.55), (0.50, 0.35), (0.35, 0.60), (0.45, 0.50),
           (0.28, 0.42), (0.52, 0.58), (0.33, 0.33), (0.42, 0.62))

# src of each map's picture (its inline data URI, or an st.image's media URL: either names its content) and
# its caption (a <figcaption>, or an st.image's caption), by method key
MAPS_JS = """
(keys) => Object.fromEntries(keys.map(k => {
  const img = document.querySelector('.st-key-map-' + k + ' img');
  const cap = document.querySelector('.st-key-map-' + k + ' figcaption, .st-key-map-' + k + ' [data-testid=stImageCaption]');
  return [k, img && img.complete && img.naturalWidth > 0 ? {src: img.src, caption: cap ? cap.innerText : ''} : null];
}))
"""
# `final`: a picture whose caption says "preview" (XRAI's early map) does not count
CHANGED_JS = """
([keys, before, final]) => {
  for (const k of keys) {
    const img = document.querySelector('.st-key-map-' + k + ' img');
    if (!img || !img.complete || img.naturalWidth === 0) return false;
    if (before[k] && img.src === before[k]) return false;
    const cap = document.querySelector('.st-key-map-' + k + ' figcaption, .st-key-map-' + k + ' [data-testid=stImageCaption]');
    if (final && cap && cap.innerText.includes('preview')) return false;
  }
  return performance.now();
}
"""
# Runs before the page's own scripts: the page-clock time of the last mouse-up and of every websocket send.
CLOCK_JS = """
window.__segexplain = {up: 0, sends: []};
for (const type of ['pointerup', 'mouseup']) {  // a pointer handler may suppress the compatibility mouse events
  document.addEventListener(type, () => { window.__segexplain.up = performance.now(); }, true);
}
const originalSend = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.__segexplain.sends.push(performance.now());
  return originalSend.call(this, data);
};
"""
TIMES_JS = """
() => { const t = window.__segexplain;
        return t ? {up: t.up, sent: t.sends.find(s => s >= t.up) ?? null} : null; }
"""


def key(method: str) -> str:
    return method.replace("+", "p")


def shown(page, methods=CAMS) -> dict:
    return page.evaluate(MAPS_JS, [key(m) for m in methods])


@dataclass
class Timing:
    """One action, in seconds of the page's clock: mouse-up → rerun request sent → all maps updated."""

    total: float
    to_send: float

    @property
    def after_send(self) -> float:
        return self.total - self.to_send


def wait_changed(page, before: dict, methods=CAMS, timeout_ms: int = 120_000, polling: str | int = "raf",
                 final: bool = True) -> Timing:
    """Wait until every map in `methods` shows a picture different from `before` (checked every frame,
    or every `polling` ms), a preview only if `final` is False; the times from the last mouse-up."""
    done = page.wait_for_function(CHANGED_JS, arg=[[key(m) for m in methods],
                                                   {k: (v or {}).get("src") for k, v in before.items()}, final],
                                  polling=polling, timeout=timeout_ms).json_value()
    times = page.evaluate(TIMES_JS)
    if times is None:
        raise RuntimeError("the page has no clock: add `context.add_init_script(CLOCK_JS)` before opening it")
    sent = times["sent"] if times["sent"] is not None else times["up"]
    return Timing(total=(done - times["up"]) / 1000.0, to_send=(sent - times["up"]) / 1000.0)


def engine_seconds(page, methods=CAMS) -> float:
    """The engine's own time, as the maps' captions report it ("Grad-CAM · 0.02 s")."""
    captions = [v["caption"] for v in shown(page, methods).values() if v]
    found = [float(m.group(1)) for c in captions if (m := re.search(r"·\s*([0-9.]+)\s*s", c))]
    return max(found) if found else float("nan")


def stroke(page, x_frac: float, y_frac: float) -> None:
    """A short stroke; returns right after mouse-up (the action whose latency is measured)."""
    from e2e_server import draw_stroke  # tests/ is put on the path above

    draw_stroke(page, x_frac, y_frac, steps=10, dx=0.01, dy=0.004)


def in_viewport(page, methods) -> dict[str, bool]:
    """Whether the canvas and each map's picture lie wholly inside the window (no scrolling).

    Playwright's locators reach into the canvas component's shadow DOM, `document.querySelector` does not."""
    from e2e_server import CANVAS

    size = page.viewport_size
    targets = {"canvas": page.locator(CANVAS).first}
    targets.update({m: page.locator(f".st-key-map-{key(m)} img").first for m in methods})
    out = {}
    for name, locator in targets.items():
        box = locator.bounding_box() if locator.count() else None
        out[name] = bool(box and box["width"] > 0 and box["x"] >= 0 and box["y"] >= 0
                         and box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"])
    return out


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    return [a / b for a, b in zip(numerators, denominators, strict=False) if b > 0]


def run(strokes: int = 8) -> dict[str, list[float]]:
    from e2e_server import StreamlitServer, choose_layer
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {name: [] for name in (
        "stroke", "stroke_send", "stroke_after_send", "stroke_engine", "layer", "layer_engine", "layer_first",
        "xrai", "xrai_engine", "xrai_preview", "xrai_preview_engine")}
    with StreamlitServer(root=ROOT, startup_timeout=240) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(CLOCK_JS)
        page = context.new_page()
        page.set_default_timeout(240_000)
        page.goto(server.url, wait_until="domcontentloaded")
        page.get_by_text("Draw on the image to mark the region to explain").wait_for()
        # warm-up: first stroke (compiles the gradient functions, computes XRAI's segments for this image)
        stroke(page, 0.36, 0.42)
        wait_changed(page, {}, timeout_ms=240_000)
        wait_changed(page, {}, methods=("xrai",), timeout_ms=600_000)
        print("viewport 1280×800, canvas and maps inside:", in_viewport(page, (*CAMS, "xrai")), flush=True)
        for x, y in STROKES[:strokes]:
            before = shown(page, (*CAMS, "xrai"))
            stroke(page, x, y)
            cams = wait_changed(page, before)
            out["stroke"].append(cams.total)
            out["stroke_send"].append(cams.to_send)
            out["stroke_after_send"].append(cams.after_send)
            out["stroke_engine"].append(engine_seconds(page))
            # XRAI's wait checks every 50 ms, not every frame: a per-frame check keeps headless Chromium
            # rendering for seconds, CPU the worker computing XRAI would lose (a user's idle page has none)
            first = wait_changed(page, before, methods=("xrai",), timeout_ms=600_000, polling=XRAI_POLL_MS,
                                 final=False)
            early = "preview" in (shown(page, ("xrai",))["xrai"] or {}).get("caption", "")
            if early:  # the preview was on screen (a final map that came first is timed below, not here)
                out["xrai_preview"].append(first.total)
                out["xrai_preview_engine"].append(engine_seconds(page, ("xrai",)))
            out["xrai"].append(wait_changed(page, before, methods=("xrai",), timeout_ms=600_000,
                                            polling=XRAI_POLL_MS).total)
            out["xrai_engine"].append(engine_seconds(page, ("xrai",)))
            print(f"stroke at ({x:.2f}, {y:.2f}): CAMs {cams.total:.3f} s (request sent after {cams.to_send:.3f} s; "
                  f"engine {out['stroke_engine'][-1]:.3f} s), XRAI preview "
                  f"{f'{first.total:.2f} s' if early else 'not seen'}, XRAI {out['xrai'][-1]:.2f} s (engine "
                  f"{out['xrai_engine'][-1]:.2f} s)", flush=True)
        for k in range(max(2, strokes // 2) + 1):
            layer = LAYERS[k % 2]
            before = shown(page)
            choose_layer(page, layer)
            timing = wait_changed(page, before)
            first = k == 0  # the first visit of a layer other than the default traces its gradient function
            out["layer_first" if first else "layer"].append(timing.total)
            if not first:
                out["layer_engine"].append(engine_seconds(page))
            print(f"layer → {layer}{' (first visit)' if first else ''}: CAMs {timing.total:.3f} s (engine "
                  f"{engine_seconds(page):.3f} s)", flush=True)
        browser.close()
    return out


START, END = "<!-- ui_latency:start -->", "<!-- ui_latency:end -->"


def table(out: dict[str, list[float]]) -> str:
    """The figures as a Markdown table (for RESULTS.md)."""
    rows = [("stroke → 3 CAM maps on screen", out["stroke"]),
            ("  of which: mouse-up → rerun request sent (the canvas: its 200 ms send delay)", out["stroke_send"]),
            ("  of which: request sent → 3 CAM maps on screen", out["stroke_after_send"]),
            ("engine CAM pass after a stroke", out["stroke_engine"]),
            ("layer change → 3 CAM maps on screen (warm)", out["layer"]),
            ("engine seconds in the captions after a layer change (a revisited layer's maps are cached and keep the time of their first pass)", out["layer_engine"]),
            ("first visit of another layer → 3 CAM maps (traces its function)", out["layer_first"]),
            ("stroke → XRAI preview on screen (PAIR's XRAI at 12 of the 100 steps)", out["xrai_preview"]),
            ("engine seconds of that preview (its caption: from the job's start)", out["xrai_preview_engine"]),
            ("stroke → full XRAI map on screen (image already seen)", out["xrai"]),
            ("engine XRAI for that map (its caption)", out["xrai_engine"]),
            ("XRAI on screen ÷ XRAI engine (same run)", ratios(out["xrai"], out["xrai_engine"]))]
    lines = ["| measure | median | worst | n |", "|---|---|---|---|"]
    lines += [f"| {name} | {statistics.median(v):.3f}{'×' if '÷' in name else ' s'} | {max(v):.3f}"
              f"{'×' if '÷' in name else ' s'} | {len(v)} |" for name, v in rows if v]
    return "\n".join(lines)


def write(out: dict[str, list[float]], path: Path = ROOT / "benchmarks" / "RESULTS.md") -> None:
    """Put the table between this benchmark's markers in RESULTS.md (appended when they are missing)."""
    import datetime as dt
    import os

    from benchmarks.common import replace_block

    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    block = f"Latest run: {stamp}, load average {load} (2 cores).\n\n{table(out)}"
    path.write_text(replace_block(path.read_text() if path.exists() else "", START, END, block))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=int, default=8)
    parser.add_argument("--write", action="store_true", help="put the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    out = run(args.strokes)
    print(table(out))
    if args.write:
        write(out)


if __name__ == "__main__":
    main()
