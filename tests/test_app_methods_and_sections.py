"""Issue 9 in the dashboard, under AppTest: more methods, faithfulness scores, the class overview, export.

Same conventions as test_app.py: the region comes in through `st.session_state["injected_region"]`,
and the slow methods are kept cheap through their session-state settings (XRAI 4 'fast' steps,
IG 4 steps, SmoothGrad 3 samples, Score-CAM 8 channels); the page itself uses the library defaults.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from map_pictures import map_captions
from streamlit.testing.v1 import AppTest

import explainers
from dashboard import state
from explainers import registry

pytestmark = pytest.mark.usefixtures("finish_slow_maps")  # AppTest has no looks: each run waits for its slow maps

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
FOUR = ("gradcam", "gradcam++", "xrai", "vinogradova")
SIZE = 144
CHEAP = {keys.XRAI_STEPS: 4, keys.XRAI_ALGORITHM: "fast", **keys.input_steps(4), keys.SMOOTHGRAD_SAMPLES: 3,
         keys.SCORECAM_CHANNELS: 8}


def _app(region: np.ndarray | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in {**CHEAP, **session}.items():
        at.session_state[key] = value
    if region is not None:
        at.session_state[state.INJECTED_REGION] = region
    return at


def _box() -> np.ndarray:
    region = np.zeros((SIZE, SIZE), dtype=bool)
    region[40:72, 45:100] = True  # the cap of the default sample ("fly agaric")
    return region


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _title(spec: dict) -> str:
    return spec["layout"].get("title", {}).get("text") or ""


def _map_titles(at: AppTest) -> list[str]:
    """Captions of the map pictures of the loop view ("Grad-CAM · 0.02 s"), in the order shown."""
    return [caption for caption in map_captions(at) if re.match(r"^[^·]+ · [0-9.]+ s", caption)]


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# ------------------------------------------------------------------------------------------------
# Pure pieces (no page run)


def test_picker_offers_every_method_and_tags_layer_free_and_slow_ones() -> None:
    from dashboard import comparison

    assert set(comparison.picker_order()) == set(explainers.ALL_METHODS)
    assert len(comparison.picker_order()) == len(explainers.ALL_METHODS)
    for method in ("xrai", "integrated-gradients", "smoothgrad", "guided-ig", "blur-ig"):
        assert "layer-free" in comparison.picker_label(method) and "slow" in comparison.picker_label(method)
    assert "slow" in comparison.picker_label("scorecam") and "layer-free" not in comparison.picker_label("scorecam")
    for method in ("gradcam", "hirescam", "layercam", "xgradcam", "contrastive-gradcam", "vinogradova"):
        assert comparison.picker_label(method) == registry.label(method)
    # the maps keep the library's order whatever order they were picked in
    assert comparison.ordered(["smoothgrad", "hirescam", "gradcam"]) == ("gradcam", "hirescam", "smoothgrad")


def test_map_settings_are_part_of_the_slow_maps_keys() -> None:
    from dashboard import comparison

    request = comparison.Request(model=None, model_key="m", image=np.zeros((4, 4, 3), np.uint8), image_key="i",
                                 region=np.ones((4, 4), bool), class_index=1, layer="final_conv", methods=(),
                                 target="logits", options={"xrai": {"steps": 4, "algorithm": "fast"},
                                                           "integrated-gradients": {"steps": 7}})
    other_layer = comparison.Request(**{**request.__dict__, "layer": "aggregation"})
    more_steps = comparison.Request(**{**request.__dict__, "options": {"integrated-gradients": {"steps": 8}}})
    ig = "integrated-gradients"
    assert comparison.slow_key(request, ig) == comparison.slow_key(other_layer, ig)  # layer-free
    assert comparison.slow_key(request, ig) != comparison.slow_key(more_steps, ig)
    assert comparison.slow_key(request, "scorecam") != comparison.slow_key(other_layer, "scorecam")
    assert comparison.map_options(request, ig) == {"steps": 7}


def test_method_settings_default_to_the_library_defaults() -> None:
    from dashboard import method_settings
    from explainers.methods import methods_input, scorecam

    defaults = method_settings.defaults()
    assert defaults[keys.SCORECAM_CHANNELS] == scorecam.DEFAULT_CHANNELS
    assert defaults[keys.IG_STEPS] == methods_input.DEFAULT_STEPS
    assert defaults[keys.SMOOTHGRAD_SAMPLES] == methods_input.DEFAULT_SAMPLES
    assert state.DEFAULTS[state.FAITHFULNESS_TARGET] == "probabilities"
    assert state.DEFAULTS[state.OVERVIEW_METHOD] == "gradcam"


def test_comparison_png_wraps_at_four_maps_per_row() -> None:
    from PIL import Image

    from dashboard import export

    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    tiles = [(f"m{k}", np.random.default_rng(k).random((SIZE, SIZE))) for k in range(5)]
    one_row = Image.open(io.BytesIO(export.comparison_png(image, tiles[:4], [], "caption")))
    two_rows = Image.open(io.BytesIO(export.comparison_png(image, tiles, [], "caption")))
    assert two_rows.width == one_row.width
    assert two_rows.height > one_row.height + export.TILE


# ------------------------------------------------------------------------------------------------
# The page


@pytest.mark.slow
def test_extra_methods_produce_maps_after_the_fast_ones() -> None:
    methods = ["integrated-gradients", "gradcam", "hirescam"]
    at = _app(_box(), **{state.METHODS: methods})
    at.run()
    _clean(at)
    options = at.multiselect(key=state.METHODS).options
    assert len(options) == len(explainers.ALL_METHODS)
    assert "Integrated Gradients  ·  layer-free, slow" in options and "Score-CAM  ·  slow" in options
    results = at.session_state[state.RESULTS]
    assert tuple(results) == ("gradcam", "hirescam", "integrated-gradients")
    for method, explanation in results.items():
        assert explanation.heatmap.shape == (SIZE, SIZE), method
        assert np.isfinite(explanation.heatmap).all() and 0 <= explanation.heatmap.min() <= explanation.heatmap.max() <= 1
    assert results["hirescam"].layer == "head_concat"  # the default layer
    assert results["integrated-gradients"].layer is None and "4 steps" in results["integrated-gradients"].note
    assert [t.split(" ·")[0] for t in _map_titles(at)] == ["Grad-CAM", "HiResCAM", "Integrated Gradients"]
    assert any(t.startswith("Integrated Gradients ·") and "layer-free" in t for t in _map_titles(at))
    assert not any("layer-free" in t for t in _map_titles(at) if t.startswith(("Grad-CAM", "HiResCAM")))
    first_ig = results["integrated-gradients"]

    at.selectbox(key=state.LAYER).set_value("aggregation").run()  # layer-free: kept; HiResCAM: recomputed
    _clean(at)
    results = at.session_state[state.RESULTS]
    assert results["integrated-gradients"] is first_ig
    assert results["hirescam"].layer == "aggregation"

    at.number_input(key=keys.IG_STEPS).set_value(5).run()  # a new setting is a new map
    _clean(at)
    assert at.session_state[state.RESULTS]["integrated-gradients"] is not first_ig
    assert "5 steps" in at.session_state[state.RESULTS]["integrated-gradients"].note


@pytest.mark.slow
def test_rise_and_seg_xres_cam_settings_reach_their_maps() -> None:
    """RISE's masks and grid and Seg-XRes-CAM's pool size are set in "Method settings" like the other
    methods' settings, and the maps are computed with them: a pool of 1 cell is HiResCAM by definition."""
    at = _app(_box(), **{state.METHODS: ["hirescam", "seg-xres-cam", "rise"], keys.RISE_MASKS: 24,
                         keys.RISE_CELLS: 4})
    at.run()
    _clean(at)
    results = at.session_state[state.RESULTS]
    assert (results["rise"].options.masks, results["rise"].options.cells) == (24, 4)
    assert results["seg-xres-cam"].options.pool_size == explainers.registry.default("seg-xres-cam", "pool_size")
    assert not np.allclose(results["seg-xres-cam"].heatmap, results["hirescam"].heatmap, atol=1e-3)
    first_rise = results["rise"]

    at.number_input(key=keys.SEGXRES_POOL).set_value(1).run()  # a CAM setting: the CAM pass again, RISE kept
    _clean(at)
    results = at.session_state[state.RESULTS]
    assert results["seg-xres-cam"].options.pool_size == 1
    np.testing.assert_allclose(results["seg-xres-cam"].heatmap, results["hirescam"].heatmap, atol=1e-5)
    assert results["rise"] is first_rise

    at.number_input(key=keys.RISE_MASKS).set_value(16).run()
    _clean(at)
    assert at.session_state[state.RESULTS]["rise"].options.masks == 16


@pytest.mark.slow
def test_many_methods_wrap_into_rows_and_the_default_stays_four() -> None:
    at = _app(_box(), **{state.METHODS: ["gradcam", "gradcam++", "vinogradova", "hirescam", "layercam", "scorecam"]})
    at.run()
    _clean(at)
    assert tuple(at.session_state[state.RESULTS]) == ("gradcam", "gradcam++", "vinogradova", "hirescam", "layercam",
                                                      "scorecam")
    assert len(_map_titles(at)) == 6
    assert "8 channel(s)" in at.session_state[state.RESULTS]["scorecam"].note
    # rows of two equal columns: six maps fill three rows (each map wide enough to read)
    map_columns = [col for col in at.columns if sum(bool(re.match(r"^[^·]+ · [0-9.]+ s", caption))
                   for caption in map_captions(col)) == 1]  # one map each
    assert len(map_columns) == 6
    assert {round(col.proto.weight, 3) for col in map_columns} == {0.5}

    fresh = _app(_box())
    fresh.run()
    assert fresh.multiselect(key=state.METHODS).value == list(FOUR)


@pytest.mark.slow
def test_faithfulness_section_draws_curves_and_a_ranking_with_a_random_row() -> None:
    at = _app(_box(), **{state.METHODS: ["gradcam", "vinogradova", "integrated-gradients"]})
    at.run()
    _clean(at)
    assert at.session_state[state.FAITHFULNESS] == {}  # off until asked for
    assert not [s for s in _charts(at) if _title(s).startswith(("Deletion", "Insertion"))]

    at.toggle(key=state.FAITHFULNESS_ON).set_value(True).run()
    _clean(at)
    scores = at.session_state[state.FAITHFULNESS]
    assert set(scores) == {"gradcam", "vinogradova", "integrated-gradients", "random"}
    for result in scores.values():
        assert len(result.deletion.scores) == 21 and len(result.insertion.scores) == 21
        assert np.isfinite(result.deletion.auc) and np.isfinite(result.insertion.auc)
    curves = {_title(s).split(" ")[0]: s for s in _charts(at) if _title(s).startswith(("Deletion", "Insertion"))}
    assert set(curves) == {"Deletion", "Insertion"}
    for spec in curves.values():
        names = [trace["name"] for trace in spec["data"]]
        assert names == ["Grad-CAM = Seg-Grad-CAM", "Integrated Gradients", "random baseline"]  # identical: one line
        dashes = {trace["name"]: trace["line"].get("dash") for trace in spec["data"]}
        assert dashes["random baseline"] == "dash" and dashes["Grad-CAM = Seg-Grad-CAM"] is None
    table = next(d.value for d in at.dataframe if "insertion − deletion" in d.value.columns)
    assert list(table.columns) == ["method", "insertion − deletion", "deletion AUC", "insertion AUC",
                                   "Average Drop %", "Increase in Confidence"]
    assert "random baseline" in list(table["method"])
    assert list(table["insertion − deletion"]) == sorted(table["insertion − deletion"], reverse=True)
    assert any("How to read it" in c.value for c in at.caption)

    first = at.session_state[state.FAITHFULNESS]
    at.run()  # same region, class and maps: remembered, not recomputed
    assert at.session_state[state.FAITHFULNESS] is first
    at.radio(key=state.FAITHFULNESS_TARGET).set_value("logits").run()
    _clean(at)
    assert at.session_state[state.FAITHFULNESS] is not first


@pytest.mark.slow
def test_class_overview_shows_one_map_per_predicted_class_and_a_png() -> None:
    at = _app(_box(), **{state.METHODS: ["gradcam"], state.IMAGE_TAB: "Class overview"})
    at.run()
    _clean(at)
    assert at.selectbox(key=state.OVERVIEW_METHOD).value == "gradcam"
    assert at.session_state[state.OVERVIEW] == {}
    at.toggle(key=state.OVERVIEW_ON).set_value(True).run()
    _clean(at)
    overview = at.session_state[state.OVERVIEW]
    image = at.session_state[state.IMAGE_CHOICE]["pixels"]
    import models

    predicted = sorted(int(c) for c in np.unique(explainers.predict(models.load_default(), image).labels))
    assert sorted(overview) == predicted
    names = list(models.CLASS_NAMES)
    titles = [_title(spec) for spec in _charts(at)]  # the overview's maps are Plotly figures titled by class
    assert [t for t in titles if t in names] == [names[c] for c in predicted]
    for c, explanation in overview.items():
        assert explanation.layer == "head_concat" and explanation.heatmap.shape == (SIZE, SIZE), c
    assert any(b.proto.label == "Class overview (PNG)" for b in at.get("download_button"))

    at.selectbox(key=state.OVERVIEW_METHOD).set_value("smoothgrad").run()  # a layer-free method
    _clean(at)
    assert all(e.layer is None for e in at.session_state[state.OVERVIEW].values())


def test_overview_png_has_one_tile_per_class() -> None:
    from PIL import Image

    from dashboard import export

    image = np.zeros((SIZE, SIZE, 3), np.uint8)

    class Map:
        heatmap = np.ones((SIZE, SIZE), np.float32)

    png, name = export.overview_file(image, {0: Map(), 1: Map(), 3: Map()}, {0: [], 1: [], 3: []},
                                     ["bg", "cap", "gills", "stipe"], "gradcam", "final_conv", "logits", "fly agaric")
    assert name == "segexplain_fly-agaric_overview_gradcam_final_conv.png"
    picture = Image.open(io.BytesIO(png))
    assert picture.width == export.PAD + 3 * (export.TILE + export.PAD)


@pytest.mark.slow
def test_export_zip_holds_the_extra_maps_and_the_faithfulness_numbers() -> None:
    from dashboard import comparison, export, faithfulness_view

    methods = ["gradcam", "hirescam", "integrated-gradients", "smoothgrad"]
    at = _app(_box(), **{state.METHODS: methods, state.FAITHFULNESS_ON: True})
    at.run()
    _clean(at)
    results = at.session_state[state.RESULTS]
    scores = at.session_state[state.FAITHFULNESS]
    assert not any(b.proto.label == "Maps + settings (.zip)" for b in at.get("download_button"))  # on request only
    at.button(key="export-prepare").click().run()
    assert any(b.proto.label == "Maps + settings (.zip)" for b in at.get("download_button"))

    image = at.session_state[state.IMAGE_CHOICE]["pixels"]
    request = comparison.Request(model=None, model_key="default", image=image, image_key="abc", region=_box(),
                                 class_index=1, layer="final_conv", methods=tuple(results), target="logits",
                                 options={"xrai": {"steps": 4, "algorithm": "fast"},
                                          "integrated-gradients": {"steps": 4}, "smoothgrad": {"samples": 3}})
    choice = {"source": "sample", "name": "fly agaric", "digest": "abc", "pixels": image}
    ranking = faithfulness_view.compute.faithfulness_ranking(scores)
    files = export.files(request, results, choice, "shipped", ["bg", "cap", "g", "s", "r", "v"],
                         np.zeros((SIZE, SIZE), np.int64), "drawing", faithfulness=scores,
                         faithfulness_record=export.faithfulness_settings(scores, ranking, "probabilities", 20))
    with zipfile.ZipFile(io.BytesIO(files.zip)) as archive:
        names = archive.namelist()
        settings = json.loads(archive.read(next(n for n in names if n.endswith(".json"))))
        arrays = np.load(io.BytesIO(archive.read(next(n for n in names if n.endswith(".npz")))))
    assert {"heatmap_gradcam", "heatmap_hirescam", "heatmap_integrated-gradients", "heatmap_smoothgrad",
            "layer_map_hirescam"} <= set(arrays.files)
    np.testing.assert_array_equal(arrays["heatmap_integrated-gradients"], results["integrated-gradients"].heatmap)
    assert "layer_map_integrated-gradients" not in arrays.files
    for method in (*methods, "random"):
        assert arrays[f"deletion_{method}"].shape == arrays[f"insertion_{method}"].shape == (21,)
    assert arrays["faithfulness_fractions"][[0, -1]].tolist() == [0.0, 1.0]
    assert settings["methods"]["integrated-gradients"]["options"]["steps"] == 4
    assert settings["methods"]["smoothgrad"]["options"]["samples"] == 3
    record = settings["faithfulness"]
    assert record["target"] == "probabilities" and record["steps"] == 20
    assert [row["method"] for row in record["ranking"]] == [row["method"] for row in ranking]
    assert "random" in [row["method"] for row in record["ranking"]]

    # without scores, the zip has no faithfulness entries
    plain = export.files(request, results, choice, "shipped", ["bg", "cap", "g", "s", "r", "v"],
                         np.zeros((SIZE, SIZE), np.int64), "drawing")
    with zipfile.ZipFile(io.BytesIO(plain.zip)) as archive:
        names = archive.namelist()
        assert "faithfulness" not in json.loads(archive.read(next(n for n in names if n.endswith(".json"))))
