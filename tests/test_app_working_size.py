"""The sidebar's working size (issue 31, item 1): shown for free-size models only; an odd-sized photo on a
model whose decoder needs stride multiples gives maps at the photo's own size (AppTest)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from helpers_models import free_size_skip_model
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import state

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
HEIGHT, WIDTH = 30, 45  # not multiples of the model's output stride 4: TensorFlow's Concat fails at this size


def _png(height: int, width: int) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _keys(widgets) -> set:
    return {w.key for w in widgets}


def test_an_odd_photo_on_a_free_size_model_gets_maps_at_its_own_size(tmp_path) -> None:
    path = tmp_path / "free.keras"
    free_size_skip_model().save(path)
    region = np.zeros((HEIGHT, WIDTH), bool)
    region[5:20, 10:30] = True
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state[state.METHODS] = ["gradcam"]
    at.run()
    assert state.WORKING_LONGEST not in _keys(at.number_input)  # the shipped network has a fixed size
    at.file_uploader(key=state.MODEL_UPLOAD).set_value(("free.keras", path.read_bytes(), "application/octet-stream"))
    at.run()
    at.file_uploader(key=state.IMAGE_UPLOAD).set_value(("odd.png", _png(HEIGHT, WIDTH), "image/png"))
    at.session_state[state.INJECTED_REGION] = region
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert state.WORKING_LONGEST in _keys(at.number_input)
    captions = [c.value for c in at.sidebar.caption]
    assert any("worked at 48×32 px (pad" in text for text in captions), captions
    assert at.session_state[state.RESULTS]["gradcam"].heatmap.shape == (HEIGHT, WIDTH)

    at.radio(key=state.WORKING_FIT).set_value("crop").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    captions = [c.value for c in at.sidebar.caption]
    assert any("worked at 44×28 px (crop" in text for text in captions), captions
    assert at.session_state[state.RESULTS]["gradcam"].heatmap.shape == (HEIGHT, WIDTH)
