"""The draw-and-compare loop under AppTest: slow maps kept across changes, notes on what the maps mean,
export names and wording, the sweep of a 1×1 layer, the polygon hint and the component outline.

Regions come in through `state.INJECTED_REGION`; each run waits for its slow maps (the `finish_slow_maps`
fixture: AppTest does not run the page's looks on its own) except in the tests that watch a job running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from map_pictures import map_captions
from streamlit.testing.v1 import AppTest

from dashboard import compute, state

pytestmark = pytest.mark.usefixtures("finish_slow_maps")  # AppTest has no looks: each run waits for its slow maps

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SIZE = 144


def _app(region: np.ndarray | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in {keys.XRAI_STEPS: 4, keys.XRAI_ALGORITHM: "fast", **session}.items():
        at.session_state[key] = value
    if region is not None:
        at.session_state[state.INJECTED_REGION] = region
    return at


def _box(top: int = 40, left: int = 45, bottom: int = 72, right: int = 100) -> np.ndarray:
    region = np.zeros((SIZE, SIZE), dtype=bool)
    region[top:bottom, left:right] = True  # the cap of the default sample ("fly agaric")
    return region


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.slow
def test_a_layer_change_neither_restarts_nor_recomputes_xrai(monkeypatch) -> None:
    """XRAI is layer-free: after a layer change the page shows the same XRAI result, and no new job starts."""
    at = _app(_box(), **{keys.XRAI_STEPS: 6})
    at.run()
    _clean(at)
    first = at.session_state[state.RESULTS]["xrai"]
    calls = []
    original = compute.slow_map
    monkeypatch.setattr(compute, "slow_map", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    at.selectbox(key=state.LAYER).set_value("aggregation").run()
    _clean(at)
    results = at.session_state[state.RESULTS]
    assert results["gradcam"].layer == "aggregation"
    assert results["xrai"] is first  # the very object computed before the layer change
    assert calls == []


@pytest.mark.slow
def test_a_running_slow_map_survives_a_layer_change(finish_slow_maps) -> None:
    """Without waiting: the first run only starts XRAI; a layer change finds the same job, which finishes once."""
    finish_slow_maps.stop()
    region = _box(44, 50, 70, 96)
    at = _app(region, **{keys.XRAI_STEPS: 30})
    at.run()
    _clean(at)
    assert "xrai" not in at.session_state[state.RESULTS]  # the CAMs are on screen, XRAI still to come
    assert {"gradcam", "gradcam++", "vinogradova"} <= set(at.session_state[state.RESULTS])
    request = at.session_state[state.REQUEST]
    job = compute.slow_job(request.map_request("xrai"), None)
    at.selectbox(key=state.LAYER).set_value("aggregation").run()
    _clean(at)
    request = at.session_state[state.REQUEST]
    assert compute.slow_job(request.map_request("xrai"), None) is job  # same job, not a new one
    deadline = time.monotonic() + 240
    while not job.done and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.result is not None and job.error is None
    at.run()
    assert at.session_state[state.RESULTS]["xrai"] is job.result


@pytest.mark.slow
def test_identical_maps_and_a_region_blind_layer_are_said_in_words() -> None:
    at = _app(_box(), **{state.METHODS: ["gradcam", "vinogradova", "hirescam"], state.LAYER: "final_conv"})
    at.run()
    _clean(at)
    infos = " ".join(i.value for i in at.info)
    assert "Grad-CAM and Seg-Grad-CAM are the same map here" in infos
    assert "largest pixel difference" in infos and "Humer" in infos
    warnings = " ".join(w.value for w in at.warning)
    # at final_conv only a 1×1 classifier and upsampling follow: Grad-CAM ignores the drawn region
    assert "ignore" in warnings and "Grad-CAM" in warnings and "HiResCAM" in warnings
    assert "whole class" in warnings
    assert "such as the default `head_concat`" in warnings  # the way out names the default layer


@pytest.mark.slow
def test_the_default_layer_answers_the_drawn_region() -> None:
    """Issue 31, item 4: a newcomer's first maps are not the region-blind warning (it was, at final_conv)."""
    at = _app(_box(), **{state.METHODS: ["gradcam", "vinogradova"]})
    at.run()
    _clean(at)
    assert at.selectbox(key=state.LAYER).value == "head_concat"
    assert not any("ignore" in w.value for w in at.warning), [w.value for w in at.warning]


@pytest.mark.slow
def test_export_names_carry_the_region_and_the_json_says_where_the_score_is_averaged() -> None:
    at = _app(_box(), **{state.METHODS: ["gradcam"], state.FAITHFULNESS_ON: True})
    at.run()
    at.button(key="export-prepare").click().run()
    _clean(at)
    assert not [b for b in at.button if b.key == "export-prepare"], "the prepare button stays beside the downloads"
    first = {b.proto.label: b.proto for b in at.get("download_button")}
    zip_name = first["Maps + settings (.zip)"]
    at.session_state[state.INJECTED_REGION] = _box(80, 30, 100, 60)
    at.run()
    at.button(key="export-prepare").click().run()
    second = {b.proto.label: b.proto for b in at.get("download_button")}
    from dashboard import export

    name_a = export.file_stem("fly agaric", "cap", "final_conv", _box())
    name_b = export.file_stem("fly agaric", "cap", "final_conv", _box(80, 30, 100, 60))
    assert name_a != name_b and "r40-72c45-100" in name_a
    assert zip_name is not None and second["Maps + settings (.zip)"] is not None
    record = export.faithfulness_settings({}, [], "probabilities", 20)
    assert "averaged over the whole output grid" in record["score"]
    assert "averaged over the region" not in record["score"]


def test_export_zip_json_records_the_whole_grid_average() -> None:
    from dashboard import export

    text = json.dumps(export.faithfulness_settings({}, [], "logits", 10))
    assert "whole output grid" in text


@pytest.mark.slow
def test_the_sweep_leaves_a_single_position_layer_blank() -> None:
    at = _app(_box(), **{state.METHODS: ["gradcam"]})
    at.run()
    at.toggle(key=state.SWEEP).set_value(True).run()
    _clean(at)
    assert any("psp_level1_conv" in c.value and "1×1" in c.value for c in at.caption)
    # the cell of the 1×1 layer holds no picture (blank, not a solid maximum), for either method's grid
    for method in ("gradcam", "gradcam++"):
        at.radio(key="sweep_method").set_value(method).run()
        _clean(at)
        blank = sum(h.value.count("no location") for h in at.html)
        assert blank >= 2, method  # psp_level1_conv and its upsampled copy psp_level1
        assert any(b.key == "sweep-pick-psp_level1_conv" for b in at.button)


def test_the_polygon_tool_says_how_to_close_a_polygon() -> None:
    at = _app(**{state.DRAW_TOOL: "polygon"})
    at.run()
    _clean(at)
    assert any("click the first corner again to close it" in c.value for c in at.caption)  # the library's polygon tool


def test_method_tags_wrap_and_keep_their_close_button_visible() -> None:
    """The CSS the page sets for the method picker: wrapping rows, whole tag labels (× not pushed out)."""
    at = _app()
    at.run()
    css = " ".join(m.value for m in at.markdown if "<style>" in m.value)
    assert ".st-key-methods-picker" in css and "stMultiSelectTagsContainer" in css
    assert "flex-wrap: wrap" in css and "max-width: none" in css and "[data-tag] > button { flex-shrink: 0; }" in css


def test_identical_faithfulness_curves_are_one_line_named_after_both_maps() -> None:
    from types import SimpleNamespace

    from dashboard import faithfulness_view

    def scores(deletion, insertion):
        return SimpleNamespace(deletion=SimpleNamespace(scores=np.array(deletion)),
                               insertion=SimpleNamespace(scores=np.array(insertion)))

    results = {"gradcam": scores([1.0, 0.5, 0.1], [0.1, 0.6, 1.0]),
               "vinogradova": scores([1.0, 0.5, 0.1], [0.1, 0.6, 1.0]),
               "hirescam": scores([1.0, 0.4, 0.1], [0.1, 0.7, 1.0]),
               "random": scores([1.0, 0.8, 0.1], [0.1, 0.2, 1.0])}
    names = faithfulness_view.merged_names(results, ["gradcam", "vinogradova", "hirescam", "random"])
    assert names == {"gradcam": "Grad-CAM = Seg-Grad-CAM", "hirescam": "HiResCAM", "random": "random baseline"}


def test_common_scale_rescales_the_cams_sharing_units_and_leaves_the_others() -> None:
    from types import SimpleNamespace

    from dashboard import comparison

    def cam(peak: float) -> SimpleNamespace:
        return SimpleNamespace(layer_map=np.array([[0.0, peak], [-3.0, peak / 2]]), heatmap=np.ones((2, 2)))

    results = {"gradcam": cam(2.0), "hirescam": cam(8.0), "gradcam++": cam(100.0),
               "xrai": SimpleNamespace(layer_map=None, heatmap=np.ones((2, 2)))}
    assert comparison.display_factors(results, "own") == {m: 1.0 for m in results}
    common = comparison.display_factors(results, "common")
    assert common == {"gradcam": 0.25, "hirescam": 1.0, "gradcam++": 1.0, "xrai": 1.0}  # ++ and XRAI: own units


@pytest.mark.slow
def test_gradcampp_score_choice_is_measured_only_when_asked(monkeypatch) -> None:
    """The extra Grad-CAM++ passes stay off the stroke's path: nothing is computed until the switch is on."""
    calls = []
    original = compute.score_choice
    monkeypatch.setattr(compute, "score_choice", lambda *a, **k: calls.append(a[:5]) or original(*a, **k))
    at = _app(_box(), **{state.METHODS: ["gradcam", "gradcam++"]})
    at.run()
    _clean(at)
    assert calls == []
    captions = " ".join(c.value for c in at.caption)
    assert "depends on the score's scale" in captions and "rank correlation" not in captions
    at.toggle(key=state.SCORE_CHOICE).set_value(True).run()
    _clean(at)
    assert len(calls) == 1
    measured = [c.value for c in at.caption if "region sum instead of the adapter mean: rank correlation" in c.value]
    assert len(measured) == 1
    rho = float(measured[0].split("rank correlation ")[1].split(" ")[0])
    assert -1.0 <= rho <= 1.0


@pytest.mark.slow
def test_settings_drawn_after_the_maps_keep_their_values_and_places() -> None:
    """Opacity, scale and the class switch are read before they are drawn: a change applies to the maps."""
    at = _app(_box(), **{state.METHODS: ["gradcam", "hirescam"]})
    at.run()
    _clean(at)
    at.selectbox(key=state.MAP_SCALE).set_value("common").run()
    _clean(at)
    captions = " ".join(map_captions(at))
    assert "of the common scale" in captions  # the maps were drawn with the scale just chosen
    assert at.slider(key=state.OPACITY).value == pytest.approx(0.55)
    at.toggle(key=state.RESTRICT).set_value(True).run()
    _clean(at)
    request = at.session_state[state.REQUEST]
    labels = at.session_state[state.RESULTS]["gradcam"].heatmap.shape
    assert request.region.shape == labels and request.region.sum() <= _box().sum()


@pytest.mark.slow
def test_xrai_preview_is_shown_while_the_full_map_runs_and_never_counts_as_the_map(finish_slow_maps) -> None:
    """A running XRAI job that has its preview shows it (captioned as one) with the progress bar; the
    agreement, faithfulness and export see XRAI only once the full map is in."""
    finish_slow_maps.stop()  # the job is the test's: the page must show it running, not wait for it
    at, key, final, early = _xrai_job_setup(16)
    # a job that has sent its preview and is still computing its full map (the dispatcher never runs it)
    job = compute.Job(key=key, label="XRAI", started=True, started_at=time.monotonic(), progress=0.3)
    job.preview = early[0]
    dispatcher = compute._dispatcher()
    with dispatcher.lock:
        dispatcher.jobs[key] = job
    at.session_state[state.METHODS] = ["gradcam", "xrai"]
    at.run()
    _clean(at)
    captions = " ".join(map_captions(at))
    assert "XRAI preview, 4 steps" in captions and "the full map follows" in captions
    assert "xrai" not in at.session_state[state.RESULTS]
    job.result, job.progress = final, 1.0
    job.finished.set()
    at.run()
    _clean(at)
    captions = " ".join(map_captions(at))
    assert "preview" not in captions and "XRAI · " in captions
    assert at.session_state[state.RESULTS]["xrai"] is final


@pytest.mark.slow
def test_a_look_near_the_end_waits_for_the_map_and_any_other_run_does_not(finish_slow_maps) -> None:
    """The run a progress bar's timer asks for (its look) waits on the server for a job about to end and
    shows the map; a run the look did not ask for shows the progress and returns at once."""
    import threading
    from collections import deque

    from dashboard import comparison

    finish_slow_maps.stop()  # the job is the test's: the page must show it running, not wait for it
    at, key, final, _early = _xrai_job_setup(4)
    # a job about to end (a little past its usual time), never run by the dispatcher
    job = compute.Job(key=key, label="XRAI-test", started=True, started_at=time.monotonic(), progress=0.9)
    compute.TYPICAL_SECONDS["XRAI-test"] = deque([0.01])
    dispatcher = compute._dispatcher()
    with dispatcher.lock:
        dispatcher.jobs[key] = job
    at.session_state[state.METHODS] = ["gradcam", "xrai"]
    at.run()  # not a look: the progress is drawn at once
    _clean(at)
    captions = " ".join(map_captions(at))
    assert "XRAI · " not in captions

    def finish() -> None:
        job.result, job.progress = final, 1.0
        job.finished.set()

    timer = threading.Timer(0.2, finish)
    timer.start()
    at.session_state[state.WAKE_LOOK] = comparison._wake_key("xrai")
    started = time.monotonic()
    at.run()  # the look: it waits for the job and shows its map
    timer.join()
    _clean(at)
    captions = " ".join(map_captions(at))
    assert "XRAI · " in captions and time.monotonic() - started >= 0.2
    assert state.WAKE_LOOK not in at.session_state


def _xrai_job_setup(steps: int) -> tuple[AppTest, tuple, object, list]:
    """The page showing Grad-CAM for a box on the cap; XRAI's job key for that request, XRAI's map and its
    previews (computed here, for a test to hand to a job it makes)."""
    import explainers
    from dashboard import comparison

    at = _app(_box(44, 50, 70, 96), **{keys.XRAI_STEPS: steps, state.METHODS: ["gradcam"]})
    at.run()
    _clean(at)
    request = at.session_state[state.REQUEST]
    early: list = []
    final = explainers.explain(request.model, request.image, request.region, request.class_index, None,
                               methods=("xrai",), options={"xrai": {"steps": steps}},
                               preview=lambda _m, e: early.append(e))["xrai"]
    return at, comparison.slow_key(request, "xrai"), final, early


def test_the_maps_are_sent_before_the_pickers_and_the_legend_and_follow_their_values(monkeypatch) -> None:
    """Each message is a render of the page in the browser: a stroke's maps go out before the class, layer
    and method pickers, the canvas caption and the legend (drawn after them in their places), and a picker's
    new value still applies to the maps of the same run (read from the session state before it is drawn)."""
    from dashboard import choices, comparison, figures

    order: list[str] = []

    def spy(name, original):
        return lambda *a, **k: order.append(name) or original(*a, **k)

    monkeypatch.setattr(comparison, "_show_map", spy("map", comparison._show_map))
    monkeypatch.setattr(choices, "show", spy("pickers", choices.show))
    monkeypatch.setattr(figures, "legend_html", spy("legend", figures.legend_html))
    at = _app(_box(), **{state.METHODS: ["gradcam", "gradcam++"]})
    at.run()
    _clean(at)
    assert order.index("map") < order.index("pickers") and order.index("map") < order.index("legend"), order
    order.clear()
    at.selectbox(key=state.LAYER).set_value("aggregation").run()
    _clean(at)
    assert order.index("map") < order.index("pickers"), order
    assert {r.layer for r in at.session_state[state.RESULTS].values()} == {"aggregation"}
    at.multiselect(key=state.METHODS).set_value(["gradcam"]).run()
    _clean(at)
    assert list(at.session_state[state.RESULTS]) == ["gradcam"]
    assert at.selectbox(key=state.LAYER).value == "aggregation"


def test_the_ready_maps_are_encoded_before_the_first_is_sent(monkeypatch) -> None:
    """Each picture used to be encoded and sent in turn (~3 ms apart), so the browser put the first maps
    on screen in one render and the last in another; now every ready picture is encoded first and the
    maps leave together."""
    import streamlit as st

    from dashboard import figures

    events: list[str] = []
    encode, html = figures.map_picture, st.html
    monkeypatch.setattr(figures, "map_picture", lambda *a, **k: events.append("encode") or encode(*a, **k))
    monkeypatch.setattr(st, "html", lambda body, *a, **k: events.append("send") or html(body, *a, **k))
    at = _app(_box(), **{state.METHODS: ["gradcam", "gradcam++", "vinogradova"]})
    at.run()
    _clean(at)
    maps = [e for e in events if e in ("encode", "send")]
    assert maps.count("encode") == 3 and maps.count("send") >= 3, maps
    assert maps[:4] == ["encode", "encode", "encode", "send"], maps


def test_a_switch_to_the_whole_image_finds_its_cams_computed_ahead(monkeypatch) -> None:
    """After a drawn region's maps, the run computes the whole image's CAMs for the layer on screen, so the
    region-mode switch to "Whole image" runs no CAM pass of its own (issue 31: mode switch ≤ 0.5 s)."""
    compute._cam_maps.clear()
    at = _app(_box())
    at.run()
    _clean(at)
    assert at.session_state[state.RESULTS]["gradcam"].layer == at.session_state[state.LAYER]
    passes = []
    original = compute.explainers.explain
    monkeypatch.setattr(compute.explainers, "explain",
                        lambda *a, **k: passes.append(k.get("methods")) or original(*a, **k))
    del at.session_state[state.INJECTED_REGION]
    at.selectbox(key=state.REGION_MODE).set_value("image").run()
    _clean(at)
    assert at.session_state[state.REQUEST].region.all() and "gradcam" in at.session_state[state.RESULTS]
    assert not [methods for methods in passes if methods and "gradcam" in methods]
