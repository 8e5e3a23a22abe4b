"""The maps of the loop view, what they mean, their agreement and the layer sweep.

The fast maps (the gradient CAMs, which share one pass) are computed and drawn at once; the slow ones
(XRAI, Score-CAM, the Integrated-Gradients family) are background jobs (`compute.slow_job`) keyed by
everything they depend on (`slow_key`: the layer only for the methods that use one), so a change of
anything else finds the same job, running or done. Each running slow map's cell is a small fragment
that polls its job (the CAM pictures are not redrawn meanwhile). Maps are pictures
(`figures.map_picture`: JPEG, inline in one `st.html` each with its caption, so no media request) at
their column's width, two per row, with adjustable opacity and a per-map
or common scale; `meaning` says when maps are identical or ignore the drawn region, with the
numbers from `explainers.diagnostics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

import explainers
from dashboard import compute, figures, safe_text, state, wake
from explainers import diagnostics, regions, registry, results

LAYER_FREE_NOTE = "layer-free: attributes to input pixels; the layer choice does not apply"
PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


def picker_order() -> tuple[str, ...]:
    """Order of the method picker: the gradient CAMs (one shared pass), then the other layer methods, then the
    layer-free ones (read from the registry each time: a method registered from outside joins the picker)."""
    others = [m for m in registry.ALL_METHODS if m not in registry.CAM_METHODS]
    return (*registry.CAM_METHODS, *(m for m in others if not registry.get(m).layer_free),
            *(m for m in others if registry.get(m).layer_free))


@dataclass(frozen=True)
class Request:
    """Everything a map depends on (the model and image are identified by their cache keys)."""

    model: Any
    model_key: str
    image: np.ndarray
    image_key: str
    region: np.ndarray
    class_index: int
    layer: str
    methods: tuple[str, ...]
    target: str
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # {method: {field: value}} of the page

    def map_request(self, method: str) -> compute.MapRequest:
        """`method`'s map as one request: its inputs and its cache identity (`MapRequest.key()`)."""
        return compute.MapRequest(method=method, image=self.image, region=self.region,
                                  class_index=int(self.class_index), layer=self.layer, target=self.target,
                                  options=dict(self.options.get(method, {})), model_key=self.model_key,
                                  image_key=self.image_key)


def is_layer_free(method: str) -> bool:
    return registry.get(method).layer_free


def is_slow(method: str) -> bool:
    return registry.get(method).slow


def picker_label(method: str) -> str:
    """The method picker's entry: the label, and whether the method is layer-free and/or slow."""
    tags = [tag for tag, on in (("layer-free", is_layer_free(method)), ("slow", is_slow(method))) if on]
    return registry.label(method) + (f"  ·  {', '.join(tags)}" if tags else "")


def ordered(methods: Sequence[str]) -> tuple[str, ...]:
    """The chosen methods in the page's order (the registry's order)."""
    return tuple(m for m in registry.ALL_METHODS if m in methods)


def map_options(request: Request, method: str) -> dict[str, Any]:
    """The options of `method` set by the page's widgets (a dict of its options fields; may be empty)."""
    return dict(request.options.get(method, {}))


def settings_key(request: Request, method: str) -> tuple:
    """What `method`'s map depends on besides model, image, region, class and target (`MapRequest.settings`)."""
    return request.map_request(method).settings()


def region_key(request: Request) -> str:
    """`compute.digest(request.region)`, computed once per region array (`compute.region_digest`)."""
    return compute.region_digest(request.region)


def slow_key(request: Request, method: str) -> tuple:
    """`method`'s map's cache identity (`MapRequest.key()`): its job's and its stored result's key."""
    return request.map_request(method).key()


def short_label(method: str) -> str:
    """The label without its citation, for narrow map titles ("Seg-Grad-CAM")."""
    return registry.get(method).short_label if method in registry.METHODS else method


def title(method: str, explanation: Any) -> str:
    if getattr(explanation, "preview", False):
        return (f"{short_label(method)} preview, {explanation.options.steps} steps · "
                f"{explanation.seconds:.2f} s · the full map follows")
    return f"{short_label(method)} · {explanation.seconds:.2f} s"


def caption(method: str, explanation: Any) -> str:
    """Under each map: what it attributes to, the time, and a warning when the map is empty."""
    where = (f"{short_label(method)} · {LAYER_FREE_NOTE}" if is_layer_free(method)
             else f"{registry.label(method)} at layer {safe_text.code(explanation.layer)}")
    text = f"{where}; {explanation.seconds:.2f} s"
    for icon, message in visible_warnings(explanation):
        text += f" · {icon} {message}"
    return text


# Warnings shown under the map itself, by code (every message stays in the "How each map was computed"
# expander): an empty map and non-finite values as warnings, a resized region or batch as information.
_WARN_CODES = (results.ALL_ZERO, results.NON_FINITE, results.NON_FINITE_GRADIENTS)
_INFO_CODES = (results.REGION_RESIZED, results.REGION_TOUCHED, results.BATCH_REDUCED)


def visible_warnings(explanation: Any) -> list[tuple[str, str]]:
    """(icon, message) of the warnings worth showing under the map, decided by their codes."""
    shown = []
    for warning in getattr(explanation, "warnings", ()):
        if warning.code in _WARN_CODES:
            shown.append(("⚠️", warning.message.rstrip(".")))
        elif warning.code in _INFO_CODES:
            shown.append(("ℹ️", warning.message.rstrip(".")))
    return shown


def notes(results: dict[str, Any]) -> None:
    """How each map was computed (the library's own notes), out of the way under the table."""
    with st.expander("How each map was computed", expanded=False):
        for method, explanation in results.items():
            st.markdown(f"**{registry.label(method)}**: {safe_text.md(getattr(explanation, 'note', '') or '—')}")


# ---------------------------------------------------------------------------------------------
# The grid of maps (right half of the loop view)

SCALES = ("own", "common")
SCALE_LABELS = {"own": "each map ÷ its own maximum", "common": "common scale (maps sharing units)"}
SCALE_CHOICES = {"own": "own maximum", "common": "common scale"}  # the Scale picker's short names (half a column)
PER_ROW_GRID = 2  # maps per row in the loop view: each map at least 300 px wide on a 1600 px screen


@dataclass(frozen=True)
class View:
    """How the maps are shown (not what they are): heat opacity over the image and the scale."""

    opacity: float = figures.HEAT_OPACITY
    scale: str = "own"


def map_key(method: str) -> str:
    """CSS-safe element key of a method's map (`map-gradcampp` for Grad-CAM++)."""
    return "map-" + method.replace("+", "p")


def display_factors(results: dict[str, Any], scale: str) -> dict[str, float]:
    """Multiplier of each shown (own-max normalised) map: 1, or its share of the common scale."""
    factors = {m: 1.0 for m in results}
    if scale != "common":
        return factors
    shared = registry.common_units(list(results))
    peaks = {m: float(np.max(np.maximum(e.layer_map, 0.0), initial=0.0)) for m, e in results.items()
             if m in shared and getattr(e, "layer_map", None) is not None}
    factors.update(diagnostics.common_scale(peaks))
    return factors


def slow_jobs(request: Request) -> dict[str, compute.Job]:
    """The jobs of the methods on screen that are not gradient CAMs (`fast_maps` computes those): started now if
    new, never restarted."""
    return {m: compute.slow_job(request.map_request(m), request.model)
            for m in request.methods if m not in registry.CAM_METHODS}


def prepare_slow(model_key: str, image_key: str, image: np.ndarray, methods: list[str], target: str,
                 options: Mapping[str, Mapping[str, Any]]) -> None:
    """Ask the worker to do now, before a region is drawn, the image-only work of the slow methods shown
    that prepare the image (their records' `prepares`), with the options their jobs will get."""
    for method in methods:
        if method in registry.METHODS and registry.get(method).prepares and registry.get(method).slow:
            compute.prepare_worker(model_key, image_key, image, method, target, dict(options.get(method, {})))


def fast_maps(request: Request) -> dict[str, Any]:
    """The maps of the gradient CAMs on screen: one shared pass (`compute.cam_maps`)."""
    cams = tuple(m for m in request.methods if m in registry.CAM_METHODS)
    if not cams:
        return {}
    return compute.cam_maps([request.map_request(m) for m in cams], request.model)


def cam_options(request: Request, cams: tuple[str, ...]) -> tuple:
    """The page's options of these CAMs as `compute.cam_maps` takes them (hashable, in a fixed order)."""
    return tuple((m, tuple(sorted(map_options(request, m).items()))) for m in cams if map_options(request, m))


def show_grid(request: Request, view: View) -> dict[str, Any]:
    """Every map on screen, `PER_ROW_GRID` per row: the CAMs at once, each slow map in a cell of its own.

    A slow map's cell is a fragment of its own that looks at its job when the job should be done
    (`wake`), so the CAM pictures are not re-encoded and re-sent while it runs. Returns
    {method: Explanation} of the maps that are ready now, in the order shown."""
    results = fast_maps(request)
    jobs = slow_jobs(request)
    for method, job in jobs.items():
        if job.result is not None:
            results[method] = job.result
    ready = {m: results[m] for m in request.methods if m in results}
    factors = display_factors(ready, view.scale)
    paths = compute.outline(request.region)
    methods = request.methods
    cells = {}  # every cell first (the layout), then the maps ready now, then the running slow maps' cells:
    for start in range(0, len(methods), PER_ROW_GRID):  # a CAM after a slow cell no longer waits behind it
        row = methods[start:start + PER_ROW_GRID]
        for method, column in zip(row, st.columns(PER_ROW_GRID), strict=False):
            cells[method] = column.container(key=map_key(method))
    running = [m for m in methods if m in jobs and not jobs[m].done]
    # every ready picture is encoded before the first is sent, so they leave within a millisecond and the
    # browser puts them on screen in one render instead of one render per picture
    pictures = {m: _map_parts(request.image, m, ready[m], paths, view, factors[m]) for m in methods
                if m in ready and m not in running}
    for method in methods:
        if method in running:
            continue
        with cells[method]:
            if method in pictures:
                _show_map(*pictures[method])
                if registry.get(method).scale_dependent:
                    st.caption(scale_caption(method))
            else:
                _draw_pending(request, method, jobs[method])  # failed: its message
    for method in running:
        with cells[method]:
            st.fragment(_slow_cell)(request, method, view, paths, jobs[method], tuple(jobs.values()))
    return ready


def _slow_cell(request: Request, method: str, view: View, paths: Sequence[np.ndarray], job: compute.Job,
               jobs: tuple[compute.Job, ...]) -> None:
    """One slow map's cell while its `job` runs: progress (under the method's preview once there is
    one), then the map; when the last of the request's `jobs` is in, the loop's fragment reruns once
    the map is painted, so the agreement, faithfulness and export see every map (never the preview).
    Only the loop: the sidebar and the sections under it do not depend on the maps."""
    if not job.done and wake.looked(_wake_key(method)) and job.remaining() <= wake.LOOK_WAIT:
        wake.wait_for(job.wait, wake.LOOK_WAIT)
    if job.result is not None:
        _draw_map(request.image, method, job.result, paths, view, 1.0)
    else:
        if job.preview is not None:
            _draw_map(request.image, method, job.preview, paths, view, 1.0)
        _draw_pending(request, method, job)
    if job.done and all(j.done for j in jobs):
        wake.after_paint(key=f"settle-{map_key(method)}", on_due=_rerun_loop)


def _wake_key(method: str) -> str:
    return f"wake-{map_key(method)}"


def _rerun_loop() -> None:
    st.rerun(state.LOOP_FRAGMENT)


def scale_caption(method: str) -> str:
    """The caption under a map whose method depends on the score's scale (`Method.scale_dependent`)."""
    return f"{short_label(method)} depends on the score's scale; “Agreement and notes” measures how much."


FLAT_NOTE = ("⚠️ The same value at every pixel: this layer keeps no spatial information for this map (e.g. a 1×1 "
             "pooled layer, or a copy of one upsampled), so it cannot say where; shown blank rather than painted "
             "at the maximum. Pick a layer with a spatial grid.")


def is_flat(heatmap: np.ndarray | None) -> bool:
    """Whether a map is one constant over the whole image (`explainers.diagnostics.is_flat`): normalised
    to its maximum such a map painted the image solid red."""
    return diagnostics.is_flat(heatmap)


def _draw_map(image: np.ndarray, method: str, explanation: Any, paths: Sequence[np.ndarray], view: View,
              factor: float = 1.0) -> None:
    _show_map(*_map_parts(image, method, explanation, paths, view, factor))


def _map_parts(image: np.ndarray, method: str, explanation: Any, paths: Sequence[np.ndarray], view: View,
               factor: float = 1.0) -> tuple[str, list[str]]:
    """A map's figure (HTML with its picture encoded) and the captions under it."""
    flat = is_flat(explanation.heatmap)
    heat = np.zeros_like(explanation.heatmap) if flat else explanation.heatmap * factor
    scale_note = "" if view.scale == "own" else (
        f" · ×{factor:.2f} of the common scale" if method in registry.common_units([method])
        else " · own max (other units)")
    where = " · layer-free" if is_layer_free(method) else ""
    html = figures.map_html(figures.map_picture(image, heat, paths, opacity=view.opacity),
                            title(method, explanation) + where + scale_note)
    captions = [FLAT_NOTE] if flat else []
    return html, captions + [f"{icon} {message}" for icon, message in visible_warnings(explanation)]


def _show_map(html: str, captions: list[str]) -> None:
    st.html(html)
    for caption in captions:
        st.caption(caption)


def score_choice(request: Request) -> None:
    """How much Grad-CAM++'s map changes when it differentiates the region sum instead of the adapter mean.

    Behind a switch: it costs two more gradient passes (and a trace per new layer), which the stroke's
    maps should not wait for."""
    if not any(registry.get(m).scale_dependent for m in request.methods):
        return
    if not st.toggle("Measure how much Grad-CAM++ depends on its score (adapter mean vs region sum)",
                     key=state.SCORE_CHOICE):
        return
    rho = compute.score_choice(request.model_key, request.image_key, region_key(request), request.class_index,
                               request.layer, request.target, request.image, request.region, request.model)
    st.caption(f"Grad-CAM++ on the region sum instead of the adapter mean: rank correlation {rho:.2f} with the "
               "map on screen (1.00 would mean the score's scale does not matter here; for Grad-CAM and the "
               "other linear CAMs it never does).")


def _draw_pending(request: Request, method: str, job: compute.Job) -> None:
    if job.error is not None:
        st.error(safe_text.md(job.error))
        return
    # no percentage in the text: the bar moves between looks, a number would stand still
    wake.progress(job.progress, job.remaining(), pending_text(request, method, job), key=_wake_key(method),
                  look=job.until_preview())
    st.caption(f"{short_label(method)} is computed in the background; it keeps running when you change the "
               "layer, other methods or the display" + (" (layer-free)." if is_layer_free(method) else "."))


def pending_text(request: Request | None, method: str, job: compute.Job) -> str:
    """What a slow map not on screen yet is doing: running (the method's own status), waiting for its
    image's preparation, or queued behind other slow maps."""
    if job.started:
        return _status_text(request, method)
    if compute.waits_for_preparation(job):
        return (f"{short_label(method)}: waits for this image's forward passes, kept once per image (every later "
                "region then takes less)…")
    return f"{short_label(method)}: queued behind other slow maps…"


def _status_text(request: Request, method: str) -> str:
    record = registry.get(method)
    return record.status(record.make_options(map_options(request, method)))


# ---------------------------------------------------------------------------------------------
# What the maps mean: identical maps, and maps that ignore the drawn region

def region_sensitive() -> tuple[str, ...]:
    """Methods that weigh each position by its own gradient (`Method.region == "position-wise"`)."""
    return tuple(m for m in registry.ALL_METHODS if registry.get(m).region == "position-wise")


def identical_note(results: dict[str, Any]) -> list[str]:
    """One sentence per group of maps that are the same on screen, with the measured difference."""
    groups = diagnostics.identical_groups({m: e.heatmap for m, e in results.items()})
    lines = []
    for members, difference in groups:
        names = " and ".join(short_label(m) for m in members)
        why = (registry.why_same(*members) if len(members) == 2 else None) or \
            "These methods weigh the layer's channels alike here."
        lines.append(f"**{names} are the same map here** (largest pixel difference {difference:.1e}). {why}")
    return lines


def region_blind(request: Request, results: dict[str, Any], labels: np.ndarray) -> list[str]:
    """CAMs whose map for the drawn region equals their map for the whole class at this layer."""
    cams = tuple(m for m in results if m in registry.CAM_METHODS)
    whole = regions.from_class(labels, request.class_index)
    if not cams or not whole.any() or np.array_equal(whole, request.region):
        return []
    try:
        whole_request = dataclasses.replace(request, region=whole)
        whole_maps = compute.cam_maps([whole_request.map_request(m) for m in cams], request.model)
    except explainers.ExplainerError:
        return []
    blind = [m for m in cams
             if diagnostics.region_independent(results[m].heatmap, whole_maps[m].heatmap)[0]]
    return blind


def meaning(request: Request, results: dict[str, Any], labels: np.ndarray) -> None:
    """The notes under the grid: identical maps and region-blind maps, each with the measured numbers."""
    for line in identical_note(results):
        st.info(line, icon=":material/info:")
    blind = region_blind(request, results, labels)
    if blind:
        default = compute.layer_table(request.model_key, request.model)[1]
        way_out = (f"or pick a layer with a non-linear layer after it, such as the default {safe_text.code(default)}"
                   if default != request.layer else "or pick an earlier layer")
        names = ", ".join(short_label(m) for m in blind)
        others = [registry.label(m) for m in region_sensitive()]
        st.warning(f"At layer {safe_text.code(request.layer)}, **{names}** ignore{'s' if len(blind) == 1 else ''} the drawn "
                   f"region: the map for this region equals the map for the whole class (largest difference "
                   f"≤ {diagnostics.SAME_TOLERANCE:g}), so here it answers “why this class?”, not “why this "
                   "region?”. This happens when no non-linear layer follows the chosen one (only e.g. a 1×1 "
                   "classifier, normalisation and upsampling): the channel weights are then the class's own, "
                   "whatever the region. "
                   f"Region-sensitive methods weigh each position by its own gradient: "
                   f"{', '.join(others) or 'HiResCAM, LayerCAM'}; {way_out}.", icon=":material/warning:")


def agreement(results: dict[str, Any]) -> None:
    """Pairwise agreement between the maps on screen (rank correlation, top-10 % overlap)."""
    if len(results) < 2:
        return
    rows = compute.agreement({registry.label(m): e.heatmap for m, e in results.items()})
    table = [{"method A": r["method_a"], "method B": r["method_b"],
              "rank correlation": r["rank_correlation"], "top-10 % overlap (IoU)": r["top10_iou"]} for r in rows]
    st.dataframe(table, hide_index=True, column_config={
        "rank correlation": st.column_config.NumberColumn(format="%.2f",
                                                         help="Spearman correlation over all pixels (−1 … 1)."),
        "top-10 % overlap (IoU)": st.column_config.NumberColumn(format="%.2f",
                                                               help="Intersection over union of the 10 % "
                                                                    "highest-valued pixels of each map."),
    })


def remember(results: dict[str, Any]) -> None:
    state.put(state.RESULTS, results)
