"""A view that can be shared (issue 32): the comparison kept in the page's URL and put back by a new
session opened on it. The browser round trip (reload, and the link in another tab) is in test_e2e.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import share, state

pytestmark = pytest.mark.usefixtures("finish_slow_maps")  # AppTest has no looks: each run waits for its slow maps

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
STROKE = {"type": "Path", "originX": "center", "originY": "center", "left": 150, "top": 140, "width": 100,
          "height": 20, "strokeWidth": 18, "fill": None, "scaleX": 1, "scaleY": 1, "angle": 0,
          "path": [["M", 100, 130], ["Q", 120, 135, 150, 140], ["L", 200, 150]]}


def _app(query: dict[str, str] | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[keys.XRAI_STEPS] = 4
    at.session_state[keys.XRAI_ALGORITHM] = "fast"
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in session.items():
        at.session_state[key] = value
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _params(at: AppTest) -> dict[str, str]:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def test_a_drawing_survives_the_trip_through_the_url() -> None:
    drawing = {"version": "7.4.0", "objects": [STROKE]}
    text = share.encode_drawing(drawing)
    assert text and len(text) < 400 and all(c.isalnum() or c in "-_" for c in text)
    back = share.decode_drawing(text)
    assert back["objects"][0]["path"] == STROKE["path"] and back["objects"][0]["type"] == "Path"
    assert back["objects"][0]["stroke"]  # drawable again: the page's ink
    assert share.encode_drawing({"objects": []}) is None


@pytest.mark.parametrize("text", ["", "not base64 ☃", "eJzLSM3JyQcABiwCFQ", share.encode_drawing(
    {"objects": [{"type": "Image", "src": "http://example.invalid/x.png"}]})])
def test_a_tampered_region_parameter_is_refused(text) -> None:
    assert share.decode_drawing(text) is None


def test_the_url_holds_the_comparison_and_a_new_session_shows_it_again() -> None:
    at = _app(**{state.LOAD_DRAWING: {"version": "7.4.0", "objects": [STROKE]},
                 state.METHODS: ["gradcam", "hirescam"], state.LAYER: "aggregation"})
    at.run()
    _clean(at)
    first = at.session_state[state.REQUEST]
    assert first is not None and first.layer == "aggregation"
    at.selectbox(key=state.CLASS).set_value(2).run()  # another class than the region's default
    _clean(at)
    params = _params(at)
    assert params["image"] == "sample:fly agaric" and params["mode"] == "draw"
    assert params["class"] == "2" and params["layer"] == "aggregation" and params["methods"] == "gradcam,hirescam"
    assert params["region"]

    again = _app(params)  # a reload, or the link opened elsewhere: a new session
    again.run()
    _clean(again)
    shown = again.session_state[state.REQUEST]
    assert shown is not None
    np.testing.assert_array_equal(shown.region, first.region)
    assert (shown.class_index, shown.layer, shown.methods) == (2, "aggregation", ("gradcam", "hirescam"))
    assert _params(again) == params


def test_a_link_to_another_sample_and_mode_is_followed() -> None:
    samples = __import__("models.scenes", fromlist=["sample_names"]).sample_names()
    at = _app({"image": f"sample:{samples[1]}", "mode": "image", "class": "1", "layer": "final_conv",
               "methods": "gradcam"})
    at.run()
    _clean(at)
    assert at.session_state[state.IMAGE_CHOICE]["name"] == samples[1]
    request = at.session_state[state.REQUEST]
    assert request is not None and request.region.all() and request.class_index == 1
    assert request.methods == ("gradcam",)


def test_a_link_to_an_upload_that_is_gone_says_so() -> None:
    at = _app({"image": "upload:0123456789abcdef", "mode": "image", "class": "1", "methods": "gradcam"})
    at.run()
    _clean(at)
    warnings = [w.value for w in at.warning if "does not have" in w.value]
    assert len(warnings) == 1 and "Upload it again" in warnings[0], [w.value for w in at.warning]
    assert at.session_state[state.IMAGE_CHOICE]["source"] == "sample"
    assert at.session_state[state.REQUEST] is not None  # the rest of the link still applies
