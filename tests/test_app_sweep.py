"""The layer sweep of a deep model on the page (issue 31 item 2), in AppTest: every explainable layer
of a nested MobileNetV2 is on screen as a readable picture with a button, one curve of the region's
share per method over depth, and a map's button makes its layer the loop's layer.

Before, the sweep was one Plotly subplot per layer and method (2 × 160 heatmaps at input size, ~15 px each
on a 156-layer model) and nothing on it selected a layer.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from helpers_models import applications_seg_model
from PIL import Image
from streamlit.testing.v1 import AppTest

import explainers
from dashboard import compute, figures, state

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SIZE = 64
PICK = "sweep-pick-"


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.slow
def test_the_sweep_shows_every_layer_of_a_deep_model_and_a_click_on_a_map_picks_its_layer(tmp_path,
                                                                                          monkeypatch) -> None:
    model = applications_seg_model("MobileNetV2", SIZE, 5)
    layers = [info.name for info in explainers.explainable_layers(model)]
    assert len(layers) > 150
    path = tmp_path / "mobilenet.keras"
    model.save(path)
    data = path.read_bytes()
    sizes: list[tuple[int, int]] = []
    original = getattr(figures, "sweep_picture", None)  # (absent before issue 31: the test then fails below)

    def recorded(*args, **kwargs) -> bytes:
        picture = original(*args, **kwargs)
        sizes.append(Image.open(io.BytesIO(picture)).size)
        return picture

    monkeypatch.setattr(figures, "sweep_picture", recorded, raising=False)
    region = np.zeros((SIZE, SIZE), bool)
    region[16:44, 20:48] = True
    at = AppTest.from_file(APP, default_timeout=300)
    for key, value in {state.INJECTED_REGION: region, state.METHODS: ["gradcam"], keys.XRAI_STEPS: 3,
                       keys.XRAI_ALGORITHM: "fast"}.items():
        at.session_state[key] = value
    at.run()
    at.file_uploader(key=state.MODEL_UPLOAD).set_value(("mobilenet.keras", data, "application/octet-stream"))
    at.run()
    assert at.session_state[state.MODEL_CHOICE]["key"] == f"upload:{compute.digest(data)}"
    at.toggle(key=state.SWEEP).set_value(True).run()
    _clean(at)

    # every layer has its cell (a picture or "no location") and a button, in forward order
    picks = [b.key for b in at.button if b.key and b.key.startswith(PICK)]
    assert picks == [PICK + name for name in layers]
    rows = [h.value for h in at.html if ("data:image/jpeg" in h.value or "no location" in h.value)
            and figures.MAP_CLASS not in h.value]  # the sweep's rows, not the loop's maps
    shown = sum(row.count("data:image/jpeg") for row in rows)
    blank = sum(row.count("no location") for row in rows)  # flat maps (a random net has all-zero ones)
    assert shown + blank == len(layers) == len(sizes) + blank and shown > len(layers) / 2
    assert len(rows) <= len(layers) / 7 + 8  # seven to a row, a row block per stage
    assert min(min(size) for size in sizes) >= 96  # readable, not 15 px thumbnails
    # one small figure: the share inside the region over depth, a line per method of the sweep
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    depth = [c for c in charts if "by depth" in str(c["layout"].get("title", {}).get("text"))]
    assert len(depth) == 1
    lines = [t for t in depth[0]["data"] if t.get("type") == "scatter"]
    assert [t["name"] for t in lines] == ["Grad-CAM", "Grad-CAM++"]
    assert not any(t.get("type") == "heatmap" for c in charts for t in c["data"])

    # a click on a map (its button) makes that layer the loop's layer; the maps follow
    chosen = "block_6_expand_relu"
    at.button(key=PICK + chosen).click().run()
    _clean(at)
    assert at.session_state[state.LAYER] == chosen
    assert at.selectbox(key=state.LAYER).value == chosen
    assert at.session_state[state.RESULTS]["gradcam"].layer == chosen
    assert next(b for b in at.button if b.key == PICK + chosen).proto.type == "primary"
