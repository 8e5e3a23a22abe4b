"""A long session: 200 interactions with the page through Streamlit's AppTest, no errors, bounded memory.

One AppTest session changes, in a seeded random order, the region (through the documented test hook
`injected_region`), the class, the layer, the image (the sample selectbox) and now and then the
target, and runs the whole page after every change, as a user clicking around for a long time would.
Every run must end without an exception or an error message, with maps for exactly the settings on
screen.

Memory is the process's resident set size (VmRSS from /proc/self/status), read after a warm-up (the
first run imports TensorFlow and builds the model: ~800 MB, not what we measure; the warm-up also
visits every layer and both targets once, so TensorFlow has traced the compiled functions it will
need), halfway and after the 200 measured interactions, each time after `gc.collect()`.

What may legitimately grow, all of it bounded:

- Streamlit's caches (`max_entries` in `dashboard/compute.py`): CAM results ≤ 256 entries of one
  144×144 float32 map (+ layer map) per method, XRAI's own store ≤ 64 maps, its segments ≤ 16 images;
  an interaction adds at most one CAM entry and one XRAI map, so ≤ 200 × ~0.2 MB here;
- AppTest keeps the element tree and widget state of the last run; glibc keeps freed arenas.

Measured on the 2-core test machine (three runs): +45 MB and +39 MB with the four default methods,
+33 MB with the two used here, over the 200 interactions. The bound, `RSS_GROWTH_LIMIT_MB` = 150 MB,
is ~3× that: it tolerates the caches filling up completely, but a leak of a model, a compiled function
or a page of figures per run (megabytes each) trips it within 200 runs. Two methods instead of four
keep the test near 2 minutes (each run draws fewer figures) while still covering both code paths, the
layer-based CAMs and the layer-free XRAI with its own store.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import state
from models import scenes

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SIZE = 144
INTERACTIONS = 200
WARMUP = 24
RSS_GROWTH_LIMIT_MB = 150
LAYERS = ("final_conv", "aggregation", "block4_conv3", "block3_conv3")
IMAGES = tuple(scenes.sample_names()[:3])
METHODS = ("gradcam", "xrai")  # one layer method and the layer-free one: both code paths, fewer figures per run


def rss_mb() -> float:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _regions() -> list[np.ndarray]:
    """Six boxes of different sizes and places (a finite set, as a user's repeated strokes would be)."""
    out = []
    for top, left, height, width in ((40, 45, 30, 55), (20, 20, 50, 40), (80, 60, 40, 50), (10, 90, 30, 40),
                                     (60, 10, 70, 30), (0, 0, SIZE, SIZE)):
        region = np.zeros((SIZE, SIZE), bool)
        region[top : top + height, left : left + width] = True
        out.append(region)
    return out


def _interact(at: AppTest, rng: np.random.Generator, regions: list[np.ndarray]) -> str:
    """One user action, then one run of the page; returns what was changed."""
    kind = rng.choice(["region", "class", "layer", "image", "target"], p=[0.3, 0.25, 0.25, 0.15, 0.05])
    if kind == "region":
        at.session_state[state.INJECTED_REGION] = regions[int(rng.integers(len(regions)))]
        at.run()
    elif kind == "class":
        at.selectbox(key=state.CLASS).set_value(int(rng.integers(6))).run()
    elif kind == "layer":
        at.selectbox(key=state.LAYER).set_value(LAYERS[int(rng.integers(len(LAYERS)))]).run()
    elif kind == "image":
        at.selectbox(key=state.SAMPLE).set_value(IMAGES[int(rng.integers(len(IMAGES)))]).run()
    else:
        current = at.radio(key=state.TARGET).value
        at.radio(key=state.TARGET).set_value("probabilities" if current == "logits" else "logits").run()
    return str(kind)


def _check(at: AppTest, step: int, kind: str) -> None:
    assert not at.exception, (step, kind, [e.value for e in at.exception])
    assert not at.error, (step, kind, [e.value for e in at.error])
    results = at.session_state[state.RESULTS]
    assert tuple(results) == METHODS, (step, kind)
    layer = at.selectbox(key=state.LAYER).value
    assert results["gradcam"].layer == layer, (step, kind)
    for method, explanation in results.items():
        heat = explanation.heatmap
        assert heat.shape == (SIZE, SIZE) and np.all(np.isfinite(heat)), (step, kind, method)
        assert heat.max() == 1 or "all-zero" in explanation.note, (step, kind, method)


@pytest.mark.slow
@pytest.mark.usefixtures("finish_slow_maps")  # AppTest has no looks: each run waits for its slow maps
def test_two_hundred_interactions_without_errors_and_with_bounded_memory() -> None:
    regions = _regions()
    rng = np.random.default_rng(2024)
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[keys.XRAI_STEPS] = 2
    at.session_state[keys.XRAI_ALGORITHM] = "fast"
    at.session_state[state.METHODS] = list(METHODS)
    at.session_state[state.INJECTED_REGION] = regions[0]
    at.run()
    _check(at, 0, "first run")
    for step in range(WARMUP):  # every layer and both targets once, so TensorFlow has traced them all
        if step < len(LAYERS):
            at.selectbox(key=state.LAYER).set_value(LAYERS[step]).run()
            kind = "layer"
        elif step == len(LAYERS):
            at.radio(key=state.TARGET).set_value("probabilities").run()
            kind = "target"
        else:
            kind = _interact(at, rng, regions)
        _check(at, step, kind)
    before = rss_mb()
    started = time.monotonic()
    kinds: dict[str, int] = {}
    for step in range(INTERACTIONS):
        kind = _interact(at, rng, regions)
        kinds[kind] = kinds.get(kind, 0) + 1
        _check(at, step, kind)
        if step == INTERACTIONS // 2 - 1:
            halfway = rss_mb()
    after = rss_mb()
    seconds = time.monotonic() - started
    print(f"long session: {INTERACTIONS} interactions {kinds} in {seconds:.0f} s; "
          f"RSS {before:.0f} MB → {halfway:.0f} MB (halfway) → {after:.0f} MB (growth {after - before:+.0f} MB)")
    assert all(kinds.get(k, 0) >= 5 for k in ("region", "class", "layer", "image")), kinds
    assert after - before < RSS_GROWTH_LIMIT_MB, f"RSS grew by {after - before:.0f} MB over {INTERACTIONS} runs"
