"""The draw-and-compare loop: the region on the left, the maps of that region on the right.

Everything here runs in one `st.fragment`: a stroke on the canvas, a new class, layer or method set,
or a display change reruns this part of the page only (the sidebar, the ground truth, the class
overview, the gallery and the browser stay as they are). The gradient CAMs are computed at once; the
slow maps run as background jobs (`compute.slow_job`) that a rerun never restarts, and each one's
cell is an inner fragment that polls it while it runs. Everything on the left but the region's own
inputs and the canvas (the class, layer and method pickers, opacity, scale, method settings, the class
switch, the canvas's caption and the legend) is drawn after the maps, in the places kept for it, its
values read from the session state first: each message is a render of the page in the browser, so
the fewer reach it ahead of a stroke's maps, the sooner they are on screen.

Under the two columns, tabs hold what the loop's maps feed: agreement, layer sweep, faithfulness,
trust and export (the heavy ones behind a switch or a button). They are a fragment of their own
(`sections`), drawn from the maps on screen (`state.SHOWN`): after a loop run of its own the loop asks
for them once its pictures are painted (`wake.after_paint`), so a stroke's maps do not wait for the
tables and charts below them, in the script nor in the browser (measured in
`benchmarks/ui_latency.py`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

from dashboard import (
    choices,
    comparison,
    export,
    faithfulness_view,
    figures,
    guard,
    region,
    runtime,
    safe_text,
    share,
    state,
    sweep_view,
    trust_view,
    wake,
    warmup,
)
from explainers import ExplainerError, regions, registry


@dataclass(frozen=True)
class Context:
    """What the loop gets from the rest of the page (all of it fixed until the next full rerun)."""

    model: Any
    model_key: str
    model_name: str
    choice: dict[str, Any]
    settings: dict[str, Any]
    image: np.ndarray
    labels: np.ndarray
    names: list[str]
    colors: list[tuple[int, int, int]]
    truth: np.ndarray | None = field(default=None)


@dataclass(frozen=True)
class Shown:
    """The maps on screen, as the sections under the loop read them."""

    request: comparison.Request
    results: dict[str, Any]
    how: str


@st.fragment(key=state.LOOP_FRAGMENT)
def show(ctx: Context) -> None:
    """The loop view (see the module docstring); an unexpected error costs this view, not the page."""
    with guard.section("The maps"):
        _show(ctx)
    if _fragment_run():  # in a run of the whole page the sections come next anyway
        wake.after_paint(key="settle-sections", on_due=_rerun_sections)


@st.fragment(key=state.SECTIONS_FRAGMENT)
def sections(ctx: Context) -> None:
    """The tabs under the loop, for the maps on screen (nothing while there are none)."""
    shown = state.get(state.SHOWN)
    if shown is None:
        return
    _tabs(ctx, shown.request, shown.results, shown.how)


def _rerun_sections() -> None:
    st.rerun(state.SECTIONS_FRAGMENT)


def _fragment_run() -> bool:
    """Whether this run is a fragment's alone (not the whole page). Read off the run's context (not public
    API); where it cannot be read, True: the sections are then asked for once more than needed."""
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        return bool(get_script_run_ctx().fragment_ids_this_run)
    except Exception:  # noqa: BLE001 (another Streamlit)
        return True


def _show(ctx: Context) -> None:
    state.put(state.RESULTS, {})
    state.put(state.REQUEST, None)
    state.put(state.SHOWN, None)
    left, right = st.columns([5, 7], gap="medium")
    with left:
        mode = region.controls()
        with st.container():  # its lines change with the mode: the method settings' expander keeps its place
            marked = region.mark(mode, ctx.image, ctx.labels, ctx.names, ctx.colors,
                                 canvas_id=f"{ctx.model_key}-{ctx.choice['digest']}", truth=ctx.truth)
        pickers = st.container(key="methods-picker")  # class, layer, methods: drawn after the maps
        settings_box = st.container()  # display and method settings: drawn after the maps (see `_settings`)
    class_index, layer, methods = choices.resolve(marked.region if marked.error is None else None, ctx.labels,
                                                  ctx.names, ctx.model, ctx.model_key)
    view = current_view()
    with right:
        shown = _maps(ctx, marked, class_index, layer, methods, view)
    with pickers:
        choices.show(ctx.names, ctx.model, ctx.model_key, ctx.image.shape[:2])
    share.publish(ctx.choice, mode, f"{ctx.model_key}-{ctx.choice['digest']}", class_index, layer, methods)
    # after the maps: a slow map this run asks for reaches the worker before the preparation does
    comparison.prepare_slow(ctx.model_key, ctx.choice["digest"], ctx.image, methods, ctx.settings["target"],
                            choices.current_method_settings())
    _settings(settings_box, marked, mode)
    if shown is None:
        return
    request, results = shown
    with right:
        comparison.meaning(request, results, ctx.labels)
    state.put(state.SHOWN, Shown(request, results, marked.how))
    _whole_image_ahead(ctx, mode, layer, methods)


def _whole_image_ahead(ctx: Context, mode: str, layer: str, methods: list[str]) -> None:
    """The gradient CAMs of the whole image at the layer on screen, computed once this run's maps and controls
    are sent: a switch of the region mode to "Whole image" then finds them cached and costs what a cached
    region does (on a 512² DeepLabV3 the pass is ~0.2 s; once per image, layer and method set, as every later
    run finds it cached). The class is the one the switch will pick (the whole image's dominant class); the
    slow maps are left to the switch itself."""
    if mode == "image":
        return
    whole = regions.whole_image(ctx.labels.shape)
    try:
        class_index = region.region_class(whole, ctx.labels, ctx.names)
    except ExplainerError:
        return
    explained, problem = region.finish(region.Marked(whole, region.WHOLE_IMAGE), ctx.labels, ctx.names, class_index)
    if explained is None or problem is not None:
        return
    request = _make_request(ctx, explained, class_index, layer, methods, choices.current_method_settings())
    with contextlib.suppress(ExplainerError):  # the switch itself will say why
        comparison.fast_maps(request)


def _maps(ctx: Context, marked: region.Marked, class_index: int, layer: str, methods: list[str],
          view: comparison.View) -> tuple[comparison.Request, dict[str, Any]] | None:
    """The caption, the grid of maps and the colour bar; (request, maps shown), or None after saying why
    there is nothing to show."""
    request = _request(ctx, marked, class_index, layer, methods, choices.current_method_settings())
    if request is None:
        _warm(ctx, class_index, layer, methods)
        return None
    state.put(state.REQUEST, request)
    st.caption(f"Explaining **{safe_text.md(ctx.names[class_index])}** ({ctx.settings['target']}) for "
               f"{safe_text.md(region.described(marked.how, ctx.names[class_index]))} ({int(request.region.sum())} px) "
               f"at layer {safe_text.code(layer)}; the white line is the region's outline.")
    try:
        results = comparison.show_grid(request, view)
    except ExplainerError as error:
        state.put(state.RESULT_ERROR, str(error))
        st.error(safe_text.md(error))
        return None
    runtime.freeze_long_lived("first maps")  # the traced gradient functions are long-lived too
    st.markdown(figures.colorbar_html(comparison.SCALE_LABELS[view.scale]), unsafe_allow_html=True)
    comparison.remember(results)
    return request, results


def _settings(box: Any, marked: region.Marked, mode: str) -> None:
    """The widgets whose values the maps read from the session state, drawn once the maps are sent, so
    a stroke's maps reach the browser before them (the page shows them in their places all the same)."""
    region.controls_below(marked, mode)
    with box:
        display_controls()
        choices.method_settings()


def current_view() -> comparison.View:
    """The display settings as the widgets of `display_controls` hold them (before they are drawn)."""
    return comparison.View(opacity=float(state.get(state.OPACITY)), scale=state.get(state.MAP_SCALE))


def display_controls() -> comparison.View:
    """Opacity of the maps over the image and the normalisation (per map, or a common scale)."""
    opacity_col, scale_col = st.columns([1, 1], vertical_alignment="bottom")
    opacity = opacity_col.slider("Map opacity", 0.0, 1.0, step=0.05, key=state.OPACITY,
                                 help="How strongly the maps cover the image (0: image only, 1: map only).")
    scale = scale_col.selectbox("Scale", comparison.SCALES, key=state.MAP_SCALE,
                                format_func=comparison.SCALE_CHOICES.get,
                                help="Each map ÷ its own maximum, or one absolute scale for the gradient CAMs of the "
                                     "adapter's score (Grad-CAM, HiResCAM, LayerCAM, XGrad-CAM: activation × "
                                     "gradient of one score); the other maps keep their own maximum.")
    return comparison.View(opacity=float(opacity), scale=scale)


def _request(ctx: Context, marked: region.Marked, class_index: int, layer: str, methods: list[str],
             method_settings: dict[str, dict[str, Any]]) -> comparison.Request | None:
    """The request of the maps to show, or None after saying why there is nothing to show."""
    explained, problem = region.finish(marked, ctx.labels, ctx.names, class_index)
    state.put(state.RESULT_ERROR, problem)
    if problem is not None:
        st.error(safe_text.md(problem))
        return None
    if explained is None:
        st.info(safe_text.md(marked.hint or "Mark a region to explain."))
        return None
    if not methods:
        st.info("Choose at least one method.")
        return None
    return _make_request(ctx, explained, class_index, layer, methods, method_settings)


def _make_request(ctx: Context, region_mask: Any, class_index: int, layer: str, methods: list[str],
                  method_settings: dict[str, dict[str, Any]]) -> comparison.Request:
    settings = ctx.settings
    return comparison.Request(
        model=ctx.model, model_key=ctx.model_key, image=ctx.image, image_key=ctx.choice["digest"], region=region_mask,
        class_index=int(class_index), layer=layer, methods=comparison.ordered(methods), target=settings["target"],
        options=method_settings)


def _warm(ctx: Context, class_index: int, layer: str, methods: list[str]) -> None:
    """No region yet: have the CAM pass of the layer and methods on screen traced meanwhile (`warmup`)."""
    probe = _make_request(ctx, warmup.centre_box(ctx.image.shape[:2]), class_index, layer, methods,
                          choices.current_method_settings())
    cams = tuple(m for m in probe.methods if m in registry.CAM_METHODS)
    warmup.start(ctx.model_key, ctx.model, ctx.image, layer, cams, probe.target,
                 {m: dict(items) for m, items in comparison.cam_options(probe, cams)})


def _tabs(ctx: Context, request: comparison.Request, results: dict[str, Any], how: str) -> None:
    agree_tab, sweep_tab, faith_tab, trust_tab, export_tab = st.tabs(
        ["Agreement and notes", "Layer sweep", "Which map to believe?", "Trust", "Export"])
    with agree_tab, guard.section("Agreement"):
        with st.container():  # lines that come and go with the methods: the expander below keeps its place
            comparison.agreement(results)
            comparison.score_choice(request)
        comparison.notes(results)
    with sweep_tab:
        sweep_view.tab(request)  # its own fragment: its switch, method and pages rerun it alone
    scores = None
    with faith_tab, guard.section("Which map to believe?"):
        try:
            scores = faithfulness_view.show(request, results)
        except ExplainerError as error:
            scores = None
            st.error(safe_text.md(error))
    with trust_tab, guard.section("Trust"):
        trust_view.show(request, results, ctx.truth)
    with export_tab, guard.section("Export"):
        _export(ctx, request, results, how, scores)


def export_key(request: comparison.Request, results: dict[str, Any]) -> tuple:
    return (request.model_key, request.image_key, comparison.region_key(request), request.class_index,
            request.layer, request.target, tuple(comparison.settings_key(request, m) for m in results))


def _export(ctx: Context, request: comparison.Request, results: dict[str, Any], how: str,
            scores: faithfulness_view.Scores | None) -> None:
    """Downloads built on request (a PNG and a zip cost more than a stroke), for the maps on screen."""
    current = export_key(request, results)
    if state.get(state.EXPORT_FOR) != current:
        # set in the click's callback, so the run it starts draws the downloads in the button's place
        st.button("Prepare the downloads for the maps on screen", key="export-prepare", on_click=state.put,
                  args=(state.EXPORT_FOR, current))
        st.caption("The PNG shows the maps as on screen; the zip adds an .npz of every map and a .json of the "
                   "settings. File names carry the image, class, layer and region.")
        return
    files = export.files(request, results, ctx.choice, ctx.model_name, ctx.names, ctx.labels, how,
                         faithfulness=scores.results if scores else None,
                         faithfulness_record=export.faithfulness_settings(scores.results, scores.ranking,
                                                                          scores.target, scores.steps)
                         if scores else None)
    png_col, zip_col = st.columns(2)
    png_col.download_button("Comparison (PNG)", files.png, file_name=f"{files.stem}.png", mime="image/png",
                            on_click="ignore")
    zip_col.download_button("Maps + settings (.zip)", files.zip, file_name=f"{files.stem}.zip",
                            mime="application/zip", on_click="ignore")
    st.caption("The zip holds the PNG, an .npz and a .json. The .npz has each map (`heatmap_<method>`, H×W in "
               "[0, 1]), the layer-resolution maps, the region mask, the image and the predicted labels, and, once "
               "the maps were scored, their deletion/insertion curves; the .json records model, image hash, region, "
               "class, layer, target, method parameters and the faithfulness ranking.")
