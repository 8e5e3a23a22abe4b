"""Issue 32's page problems that AppTest can see: the class overview without a region, maps with no
location (1×1 layers and their upsampled copies), captions that say what the region is, points on two
classes, the brush only for the tools that use it, one "Class" label in the error-region mode.

The canvas is drawn on through public state: `state.LOAD_DRAWING` takes a drawing in the library's JSON,
which the page mounts a fresh canvas with (its `initial_drawing`); AppTest's stand-in for the component
returns that drawing, as the browser does once it has loaded it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from streamlit.testing.v1 import AppTest

import explainers
from dashboard import comparison, compute, region, state

pytestmark = pytest.mark.usefixtures("finish_slow_maps")  # AppTest has no looks: each run waits for its slow maps

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SIZE = 144
SCALE = region.CANVAS_SIZE / SIZE  # canvas pixels per image pixel


def _app(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[keys.XRAI_STEPS] = 4
    at.session_state[keys.XRAI_ALGORITHM] = "fast"
    at.session_state[state.METHODS] = ["gradcam", "gradcam++"]
    for key, value in session.items():
        at.session_state[key] = value
    return at


def _box(top: int = 40, left: int = 45, bottom: int = 72, right: int = 100) -> np.ndarray:
    box = np.zeros((SIZE, SIZE), dtype=bool)
    box[top:bottom, left:right] = True  # the cap of the default sample ("fly agaric")
    return box


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def _point(row: float, col: float) -> dict:
    """A point of the library's point mode at image pixel (row, col), as its JSON has it."""
    x, y = col * SCALE, row * SCALE
    return {"type": "Circle", "radius": 4, "left": x - 5, "top": y, "originX": "left", "originY": "center",
            "width": 8, "height": 8, "strokeWidth": 2, "scaleX": 1, "scaleY": 1, "angle": 0}


def _draw(at: AppTest, objects: list[dict]) -> None:
    """Put a drawing on the draw mode's canvas, as a shared link does (`state.LOAD_DRAWING`)."""
    at.session_state[state.LOAD_DRAWING] = {"version": "7.4.0", "objects": objects}


def test_the_class_overview_needs_no_region() -> None:
    """It said "Mark a region first…" until a region was drawn and the whole page reran; it uses the
    layer only, so it is there from the start and computes without a region."""
    at = _app(**{state.OVERVIEW_ON: True, state.METHODS: ["gradcam"], state.IMAGE_TAB: "Class overview"})
    at.run()
    _clean(at)
    assert not any("Mark a region first" in info.value for info in at.info)
    overview = at.session_state[state.OVERVIEW]
    assert len(overview) >= 3, overview  # fly agaric: cap, gills, stipe, … each with a map
    assert "at layer `head_concat`" in _captions(at)  # the default layer (issue 31)


def test_only_the_open_image_tab_runs_and_a_hidden_tab_keeps_its_choices() -> None:
    """The tabs under the loop (ground truth, class overview, gallery, browser) used to run and be sent all
    at once: the browser re-renders every element for each message of a stroke's run, so the hidden
    gallery's ten pictures and buttons slowed the loop. Only the open tab's content is there now, and a
    choice made in a tab survives a visit to another."""
    at = _app(**{state.METHODS: ["gradcam"]})
    at.run()
    _clean(at)
    gallery_buttons = [b for b in at.button if str(b.key).startswith("gallery-")]
    assert gallery_buttons == []  # the first tab (ground truth) is open, the gallery is not drawn
    assert "Prediction" in [img.caption for element in at.get("image") for img in element.proto.imgs]
    at.session_state[state.IMAGE_TAB] = "Class overview"
    at.run()
    at.toggle(key=state.OVERVIEW_ON).set_value(True).run()
    _clean(at)
    assert at.session_state[state.OVERVIEW]
    at.session_state[state.IMAGE_TAB] = "Sample gallery"
    at.run()
    _clean(at)
    assert len([b for b in at.button if str(b.key).startswith("gallery-")]) == 10
    assert "Prediction" not in [img.caption for element in at.get("image") for img in element.proto.imgs]
    at.session_state[state.IMAGE_TAB] = "Class overview"
    at.run()
    _clean(at)
    assert at.toggle(key=state.OVERVIEW_ON).value is True  # kept while its tab was hidden


def test_a_map_with_no_location_is_blank_with_a_note_in_the_loop() -> None:
    """`psp_level1_conv` is 1×1: its maps are one number, which normalised painted the image solid red."""
    at = _app(**{state.INJECTED_REGION: _box(), state.LAYER: "psp_level1_conv"})
    at.run()
    _clean(at)
    results = at.session_state[state.RESULTS]
    assert set(results) == {"gradcam", "gradcam++"}
    assert all(comparison.is_flat(e.heatmap) for e in results.values())
    assert _captions(at).count("keeps no spatial information") == 2
    at.session_state[state.LAYER] = "aggregation"
    at.run()
    assert not any(comparison.is_flat(e.heatmap) for e in at.session_state[state.RESULTS].values())
    assert "keeps no spatial information" not in _captions(at)


def test_the_sweep_blanks_the_upsampled_copy_of_a_1x1_layer_too() -> None:
    """`psp_level1` is `psp_level1_conv` upsampled: as flat, and it was painted solid red in the sweep."""
    at = _app(**{state.INJECTED_REGION: _box(), state.SWEEP: True})
    at.run()
    _clean(at)
    notes = [c.value for c in at.caption if "same value at every pixel" in c.value]
    assert len(notes) == 1, _captions(at)
    assert "`psp_level1_conv`" in notes[0] and "`psp_level1`" in notes[0], notes[0]
    assert "`aggregation`" not in notes[0]


def test_whole_image_restricted_to_the_class_is_named_so() -> None:
    """It said "for the whole image (1823 px)" with only the cap's pixels in the region."""
    at = _app(**{state.REGION_MODE: "image", state.RESTRICT: True})
    at.run()
    _clean(at)
    request = at.session_state[state.REQUEST]
    assert request is not None and request.region.sum() < SIZE * SIZE
    text = _captions(at)
    assert f"for the pixels of {_class_name(at)} in the whole image ({int(request.region.sum())} px)" in text, text
    assert "for the whole image (" not in text


def _class_name(at: AppTest) -> str:
    picker = at.selectbox(key=state.CLASS)
    return picker.options[picker.index]


def test_points_on_two_classes_are_refused_not_mixed() -> None:
    """A second point on another part switched the class to whichever covered more and explained both
    parts as one region; now the page says so and explains nothing until the point is moved."""
    at = _app(**{state.DRAW_TOOL: "point"})
    at.run()
    _clean(at)
    _draw(at, [_point(66, 60), _point(68, 64)])  # two points on the cap
    at.run()
    _clean(at)
    request = at.session_state[state.REQUEST]
    assert request is not None and request.region.sum() > 0
    assert not any("different predicted classes" in e.value for e in at.error)
    _draw(at, [_point(66, 60), _point(100, 72)])  # the second one on the stipe
    at.run()
    _clean(at)
    assert at.session_state[state.REQUEST] is None
    errors = [e.value for e in at.error if "different predicted classes" in e.value]
    assert len(errors) == 1 and "cap" in errors[0] and "stipe" in errors[0], [e.value for e in at.error]


def test_the_brush_width_shows_only_for_the_tools_that_use_it() -> None:
    at = _app(**{state.DRAW_TOOL: "point"})
    at.run()
    _clean(at)
    assert not [s for s in at.slider if "Brush" in s.label]
    for tool, shown in (("rect", False), ("polygon", False), ("freedraw", True), ("line", True)):
        at.session_state[state.DRAW_TOOL] = tool
        at.run()
        assert bool([s for s in at.slider if "Brush" in s.label]) == shown, tool


def test_the_error_region_mode_has_one_control_labelled_class() -> None:
    """Its class picker was labelled "Class" beside the explained class's "Class"."""
    at = _app(**{state.REGION_MODE: "errors", state.ERROR_KIND: "fp"})
    at.run()
    _clean(at)
    labels = [s.label for s in at.selectbox]
    assert labels.count("Class") == 1, labels
    assert "Class with errors" in labels, labels


def _values(data) -> np.ndarray:
    """A Plotly array from a figure's JSON (a list, or Plotly's typed {"dtype", "bdata"} form)."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
    return np.asarray(data, dtype=float)


def test_faithfulness_reads_the_regions_mean_score_and_says_yes_or_no() -> None:
    """The y-axis showed the adapter's score (averaged over the whole grid): 0.02 at most for a region that
    is all cap. Now the class probability averaged over the region, which ends near 1 for a sure region;
    Increase in Confidence is words, not disabled checkboxes that look editable."""
    at = _app(**{state.REGION_MODE: "class", state.REGION_CLASS: 1, state.METHODS: ["gradcam"],  # all of the cap
                 state.FAITHFULNESS_ON: True})
    at.run()
    _clean(at)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    curves = {c["layout"]["title"]["text"]: c for c in charts if "Insertion" in str(c["layout"].get("title"))}
    assert len(curves) == 1, [c["layout"].get("title") for c in charts]
    insertion = next(iter(curves.values()))
    assert insertion["layout"]["yaxis"]["title"]["text"] == "mean class probability over the region"
    assert insertion["layout"]["title"]["xanchor"] == "left"  # the hover toolbar is at the top right
    full_image = _values(insertion["data"][0]["y"])[-1]  # every pixel revealed: the image as it is
    assert 0.8 < full_image <= 1.0, full_image
    table = next(t for t in at.dataframe if "Increase in Confidence" in t.value.columns)
    assert set(table.value["Increase in Confidence"]) <= {"yes", "no"}


def test_a_free_size_models_layers_show_their_size_at_the_images_working_size() -> None:
    """Layers of a model with input (None, None, 3) were listed as "?×?×8"; the picker now names their size
    for the image on screen (inferred by Keras, no forward pass)."""
    from helpers_models import dynamic_size_model

    model = dynamic_size_model()
    shapes = compute.working_shapes("free-size-test", (40, 56), model)
    infos = {info.name: info.output_shape for info in explainers.explainable_layers(model)}
    assert shapes and set(shapes) <= set(infos)
    for name, shape in shapes.items():
        assert None in infos[name][1:3]  # free in the model …
        assert shape[1:3] == (40, 56) and shape[-1] == infos[name][-1], (name, shape)  # … sized for the image
