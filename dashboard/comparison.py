"""Sections 3 and 4 of the page: the maps side by side, their agreement, the layer sweep.

The fast maps (the gradient CAMs, which share one pass) are computed and drawn first; the slow ones
(XRAI, Score-CAM, the Integrated-Gradients family) run afterwards one by one, each with a progress
bar in its own column, so the fast maps are on screen while they work. Slow maps are remembered in
a store of their own (`compute.slow_map`) keyed by everything they depend on
(`slow_key`), because Streamlit would replay their progress bars from an `st.cache_data` hit.
The maps wrap onto several rows, at most `PER_ROW` per row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from dashboard import compute, figures, state
from explainers import registry, results
from explainers.caching import LRU

LAYER_FREE_NOTE = "layer-free: attributes to input pixels; the layer choice does not apply"
PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
PER_ROW = 4  # maps per row; more methods wrap onto further rows
FAST_METHODS = registry.FAST_METHODS  # one shared pass
SLOW_METHODS = registry.SLOW_METHODS  # progress bar each
# Order of the method picker: fast layer CAMs, then Score-CAM (slow, layer), then the layer-free ones.
PICKER_ORDER = (*FAST_METHODS, *(m for m in SLOW_METHODS if not registry.get(m).layer_free),
                *(m for m in SLOW_METHODS if registry.get(m).layer_free))
# Which widget of the page sets which option of which method (the rest keep the registry's defaults).
WIDGET_OPTIONS = {
    "xrai": {"steps": "xrai_steps", "algorithm": "xrai_algorithm"},
    "scorecam": {"channels": "scorecam_channels"},
    "smoothgrad": {"samples": "smoothgrad_samples"},
    "integrated-gradients": {"steps": "input_steps"},
    "guided-ig": {"steps": "input_steps"},
    "blur-ig": {"steps": "input_steps"},
}


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
    xrai_steps: int
    xrai_algorithm: str
    scorecam_channels: int = registry.default("scorecam", "channels")
    input_steps: int = registry.default("integrated-gradients", "steps")
    smoothgrad_samples: int = registry.default("smoothgrad", "samples")


def label(method: str) -> str:
    return registry.label(method)


def is_layer_free(method: str) -> bool:
    return registry.get(method).layer_free


def is_slow(method: str) -> bool:
    return registry.get(method).slow


def picker_label(method: str) -> str:
    """The method picker's entry: the label, and whether the method is layer-free and/or slow."""
    tags = [tag for tag, on in (("layer-free", is_layer_free(method)), ("slow", is_slow(method))) if on]
    return label(method) + (f"  ·  {', '.join(tags)}" if tags else "")


def ordered(methods: Sequence[str]) -> tuple[str, ...]:
    """The chosen methods in the page's order (the registry's order)."""
    return tuple(m for m in registry.ALL_METHODS if m in methods)


def map_options(request: Request, method: str) -> dict[str, Any]:
    """The options of `method` set by the page's widgets (a dict of its options fields; may be empty)."""
    return {option: getattr(request, field) for option, field in WIDGET_OPTIONS.get(method, {}).items()}


def settings_key(request: Request, method: str) -> tuple:
    """What `method`'s map depends on besides model, image, region, class and target."""
    layer = None if is_layer_free(method) else request.layer
    return (method, layer, *sorted(map_options(request, method).items()))


# `region_key` memo: the digest of each recent region mask, so a rerun hashes its region once rather than once
# per map, cache lookup and store. Keyed by the array's id and checked by identity (the memo holds the array,
# so its id cannot be reused meanwhile); kept off `Request` so `Request(**request.__dict__)` still works.
_REGION_KEYS = LRU(8)


def region_key(request: Request) -> str:
    """`compute.digest(request.region)`, computed once per region array."""
    region = request.region
    hit = _REGION_KEYS.get(id(region))
    if hit is not None and hit[0] is region:
        return hit[1]
    key = compute.digest(region)
    _REGION_KEYS.put(id(region), (region, key))
    return key


def slow_key(request: Request, method: str) -> tuple:
    return ("map", request.model_key, request.image_key, region_key(request), int(request.class_index),
            request.target, *settings_key(request, method))


def short_label(method: str) -> str:
    """The label without its citation, for narrow map titles ("Seg-Grad-CAM")."""
    return registry.get(method).short_label if method in registry.METHODS else method


def title(method: str, explanation: Any) -> str:
    return f"{short_label(method)} · {explanation.seconds:.2f} s"


def caption(method: str, explanation: Any) -> str:
    """Under each map: what it attributes to, the time, and a warning when the map is empty."""
    where = (f"{short_label(method)} · {LAYER_FREE_NOTE}" if is_layer_free(method)
             else f"{label(method)} at layer `{explanation.layer}`")
    text = f"{where}; {explanation.seconds:.2f} s"
    for warning in getattr(explanation, "warnings", ()):
        if warning.code in _INFO_CODES:
            text += " · ℹ️ " + warning.message.rstrip(".")
        elif warning.code in _WARN_CODES:
            text += " · ⚠️ " + warning.message.rstrip(".")
    return text


# Warnings shown under the map itself, by code (every message stays in the "How each map was computed"
# expander): an empty map and non-finite values as warnings, a resized region or batch as information.
_WARN_CODES = (results.ALL_ZERO, results.NON_FINITE, results.NON_FINITE_GRADIENTS)
_INFO_CODES = (results.REGION_RESIZED, results.REGION_TOUCHED, results.BATCH_REDUCED)


def notes(results: dict[str, Any]) -> None:
    """How each map was computed (the library's own notes), out of the way under the table."""
    with st.expander("How each map was computed", expanded=False):
        for method, explanation in results.items():
            st.markdown(f"**{label(method)}**: {getattr(explanation, 'note', '') or '—'}")


def maps_row(request: Request) -> dict[str, Any]:
    """Draw one column per method, `PER_ROW` per row; returns {method: Explanation} in the order shown."""
    methods = request.methods
    paths = compute.outline(request.region)
    per_row = max(1, min(PER_ROW, len(methods)))
    slots: dict[str, Any] = {}
    for start in range(0, len(methods), per_row):
        row = methods[start:start + per_row]
        slots.update(zip(row, st.columns(per_row)[:len(row)], strict=True))
    cams = tuple(m for m in methods if m in FAST_METHODS)
    slow = tuple(m for m in methods if m in SLOW_METHODS)
    results: dict[str, Any] = {}
    if cams:
        results.update(compute.cam_maps(request.model_key, request.image_key, region_key(request),
                                        request.class_index, request.layer, cams, request.target,
                                        request.image, request.region, request.model))
        for method in cams:
            with slots[method]:
                _draw_map(request.image, method, results[method], paths)
                if method == "gradcam++":
                    _score_choice(request)
    waiting = {}
    for method in slow:  # one placeholder per slow column (even when cached: the page keeps its layout)
        with slots[method]:
            waiting[method] = st.empty()
            if compute.stored(slow_key(request, method)) is None:  # say which slow maps are still to come
                waiting[method].caption(f"{label(method)}: waiting for the maps before it…")
    for method in slow:
        with slots[method]:
            results[method] = _slow_column(request, method, paths, waiting[method])
    return {m: results[m] for m in methods}


def _draw_map(image: np.ndarray, method: str, explanation: Any, paths: Sequence[np.ndarray]) -> None:
    fig = figures.map_figure(image, explanation.heatmap, paths, title(method, explanation), label(method))
    st.plotly_chart(fig, key=f"map-{method}", config=PLOT_CONFIG)
    st.caption(caption(method, explanation))


def _score_choice(request: Request) -> None:
    """Under Grad-CAM++: how much its map changes when it differentiates the region sum instead."""
    rho = compute.score_choice(request.model_key, request.image_key, region_key(request), request.class_index,
                               request.layer, request.target, request.image, request.region, request.model)
    st.caption(f"Grad-CAM++ depends on the score's scale: on the region sum instead of the adapter mean its map "
               f"has rank correlation {rho:.2f} with this one.")


def _status_text(request: Request, method: str) -> str:
    record = registry.get(method)
    return record.status(record.make_options(map_options(request, method)))


def _slow_column(request: Request, method: str, paths: Sequence[np.ndarray], slot: Any) -> Any:
    """A slow map from its store, or computed now with a status box and a progress bar in `slot`."""
    key = slow_key(request, method)
    explanation = compute.stored(key)
    if explanation is None:
        with slot.container(), st.status(_status_text(request, method), expanded=True) as status:
            bar = st.progress(0.0, text=short_label(method))
            name = None if method == "xrai" else short_label(method)
            explanation = compute.slow_map(key, request.model, request.image,
                                           request.region, request.class_index, request.layer, method,
                                           request.target, map_options(request, method),
                                           progress=_progress_to(bar, name))
            status.update(label=f"{short_label(method)} done in {explanation.seconds:.1f} s", state="complete")
        slot.empty()
    _draw_map(request.image, method, explanation, paths)
    return explanation


def _progress_to(bar: Any, name: str | None = None) -> Callable[[float], None]:
    def report(fraction: float) -> None:
        fraction = float(min(max(fraction, 0.0), 1.0))
        if name is None:  # XRAI: integrated gradients, then the region ranking
            text = "integrated gradients" if fraction < 0.9 else "ranking segments"
        else:
            text = f"{name}: {100 * fraction:.0f} %"
        bar.progress(fraction, text=text)

    return report


def agreement(results: dict[str, Any]) -> None:
    """Pairwise agreement between the maps on screen (rank correlation, top-10 % overlap)."""
    if len(results) < 2:
        return
    rows = compute.agreement({label(m): e.heatmap for m, e in results.items()})
    table = [{"method A": r["method_a"], "method B": r["method_b"],
              "rank correlation": r["rank_correlation"], "top-10 % overlap (IoU)": r["top10_iou"]} for r in rows]
    st.dataframe(table, hide_index=True, column_config={
        "rank correlation": st.column_config.NumberColumn(format="%.2f",
                                                         help="Spearman correlation over all pixels (−1 … 1)."),
        "top-10 % overlap (IoU)": st.column_config.NumberColumn(format="%.2f",
                                                               help="Intersection over union of the 10 % "
                                                                    "highest-valued pixels of each map."),
    })


def sweep(request: Request) -> None:
    """Grad-CAM and Grad-CAM++ at every explainable layer, one grid per method."""
    with st.spinner("Computing Grad-CAM and Grad-CAM++ at every layer…"):
        by_layer = compute.sweep(request.model_key, request.image_key, region_key(request), request.class_index,
                                 request.target, request.image, request.region, request.model)
    paths = compute.outline(request.region)
    for method in ("gradcam", "gradcam++"):
        maps = {layer: result[method].heatmap for layer, result in by_layer.items() if method in result}
        if maps:
            st.plotly_chart(figures.sweep_figure(maps, paths, label(method)), key=f"sweep-{method}",
                            config=PLOT_CONFIG)


def remember(results: dict[str, Any]) -> None:
    state.put(state.RESULTS, results)
