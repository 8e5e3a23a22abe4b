"""Sections 3 and 4 of the page: the maps side by side, their agreement, the layer sweep.

The layer-based maps (Grad-CAM, Grad-CAM++, Seg-Grad-CAM) are computed and drawn first; XRAI,
which takes seconds, runs afterwards with a progress bar in its own column, so the other maps are on
screen while it works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

import explainers
from dashboard import compute, figures, state

XRAI_NOTE = "attributes to input pixels; the layer choice does not apply"
PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


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


def label(method: str) -> str:
    return explainers.METHOD_LABELS.get(method, method)


def short_label(method: str) -> str:
    """The label without its citation, for narrow map titles ("Seg-Grad-CAM")."""
    return label(method).split(" (")[0]


def title(method: str, explanation: Any) -> str:
    return f"{short_label(method)} · {explanation.seconds:.2f} s"


def caption(method: str, explanation: Any) -> str:
    """Under each map: what it attributes to, the time, and a warning when the map is empty."""
    where = f"XRAI {XRAI_NOTE}" if method == "xrai" else f"{label(method)} at layer `{explanation.layer}`"
    text = f"{where}; {explanation.seconds:.2f} s"
    note = getattr(explanation, "note", "") or ""
    if "all-zero" in note:
        text += " · ⚠️ " + note[note.index("all-zero"):].split(".")[0]
    return text


def notes(results: dict[str, Any]) -> None:
    """How each map was computed (the library's own notes), out of the way under the table."""
    with st.expander("How each map was computed", expanded=False):
        for method, explanation in results.items():
            st.markdown(f"**{label(method)}**: {getattr(explanation, 'note', '') or '—'}")


def maps_row(request: Request) -> dict[str, Any]:
    """Draw one column per method; returns {method: Explanation} in the order shown."""
    methods = request.methods
    paths = compute.outline(request.region)
    columns = st.columns(len(methods))
    slots = dict(zip(methods, columns, strict=True))
    cams = tuple(m for m in methods if m != "xrai")
    results: dict[str, Any] = {}
    if cams:
        results.update(compute.cam_maps(request.model_key, request.image_key, request.region,
                                        request.class_index, request.layer, cams, request.target,
                                        request.image, request.model))
        for method in cams:
            with slots[method]:
                _draw_map(request.image, method, results[method], paths)
    if "xrai" in methods:
        with slots["xrai"]:
            results["xrai"] = _xrai_column(request, paths)
    return {m: results[m] for m in methods}


def _draw_map(image: np.ndarray, method: str, explanation: Any, paths: Sequence[np.ndarray]) -> None:
    fig = figures.map_figure(image, explanation.heatmap, paths, title(method, explanation), label(method))
    st.plotly_chart(fig, key=f"map-{method}", config=PLOT_CONFIG)
    st.caption(caption(method, explanation))


def _xrai_column(request: Request, paths: Sequence[np.ndarray]) -> Any:
    key = compute.xrai_key(request.model_key, request.image_key, request.region, request.class_index,
                           request.target, request.xrai_steps, request.xrai_algorithm)
    explanation = compute.xrai_cached(key)
    if explanation is None:
        slot = st.empty()
        with slot.container(), st.status(f"XRAI: {request.xrai_steps} steps × 2 baselines…", expanded=True) as status:
            bar = st.progress(0.0, text="integrated gradients")
            explanation = compute.xrai(key, request.model, request.image, request.region, request.class_index,
                                       request.layer, request.target, request.xrai_steps,
                                       request.xrai_algorithm, progress=_progress_to(bar))
            status.update(label=f"XRAI done in {explanation.seconds:.1f} s", state="complete")
        slot.empty()
    _draw_map(request.image, "xrai", explanation, paths)
    return explanation


def _progress_to(bar: Any) -> Callable[[float], None]:
    def report(fraction: float) -> None:
        fraction = float(min(max(fraction, 0.0), 1.0))
        bar.progress(fraction, text="integrated gradients" if fraction < 0.9 else "ranking segments")

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
        by_layer = compute.sweep(request.model_key, request.image_key, request.region, request.class_index,
                                 request.target, request.image, request.model)
    paths = compute.outline(request.region)
    for method in ("gradcam", "gradcam++"):
        maps = {layer: result[method].heatmap for layer, result in by_layer.items() if method in result}
        if maps:
            st.plotly_chart(figures.sweep_figure(maps, paths, label(method)), key=f"sweep-{method}",
                            config=PLOT_CONFIG)


def remember(results: dict[str, Any]) -> None:
    state.put(state.RESULTS, results)
