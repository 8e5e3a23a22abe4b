"""Section 7 of the page: the class overview.

One map per class the network predicts in the image, each explaining that class's whole predicted
area (`explainers.class_overview`), in one row like Figure 2 of Humer et al.: where does the network
look for each class? The method is chosen here (Grad-CAM at the current layer by default); the
slow methods' settings are those of section 2. Behind a toggle, because it runs the method once
per class; the maps are cached per model, image, method, layer, target and settings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from dashboard import compute, export, figures, guard, safe_text, state
from dashboard.comparison import (
    PLOT_CONFIG,
    Request,
    is_layer_free,
    map_options,
    picker_label,
    picker_order,
    short_label,
)
from explainers import ExplainerError, registry

PER_ROW = 6  # the default network has six classes: one row
MAP_HEIGHT = 240


def show(request: Request, labels: np.ndarray, names: list[str], image_name: str) -> dict[int, Any] | None:
    """Method picker and toggle, then one map per predicted class and a PNG download; returns the maps."""
    state.put(state.OVERVIEW, {})
    if st.session_state.get(state.OVERVIEW_METHOD) not in picker_order():
        st.session_state[state.OVERVIEW_METHOD] = picker_order()[0]
    method_col, toggle_col = st.columns([1, 2])
    method = method_col.selectbox("Method", list(picker_order()), key=state.OVERVIEW_METHOD, format_func=picker_label)
    layer = None if is_layer_free(method) else request.layer
    on = toggle_col.toggle("Show the overview (the method runs once per predicted class)", key=state.OVERVIEW_ON)
    where = "layer-free" if layer is None else f"at layer {safe_text.code(layer)}"
    if not on:
        st.caption(f"{registry.label(method)} {where} for every predicted class, each with all of its predicted pixels as "
                   "the region.")
        return None
    options = tuple(sorted(map_options(request, method).items()))
    with st.spinner(f"{short_label(method)} for every predicted class…"):
        maps = compute.class_overview(request.model_key, request.image_key, method, layer, request.target, options,
                                      request.image, request.model)
    state.put(state.OVERVIEW, maps)
    if not maps:
        st.info("The network predicts no class in this image.")
        return maps
    outlines = {c: compute.outline(compute.class_region(labels, c)) for c in maps}
    classes = list(maps)
    per_row = max(1, min(PER_ROW, len(classes)))
    for start in range(0, len(classes), per_row):
        row = classes[start:start + per_row]
        for c, column in zip(row, st.columns(per_row)[:len(row)], strict=True):
            fig = figures.map_figure(request.image, maps[c].heatmap, outlines[c], names[c],
                                     f"{short_label(method)} · {names[c]}", height=MAP_HEIGHT)
            column.plotly_chart(fig, key=f"overview-{c}", config=PLOT_CONFIG)
            column.caption(f"{int(np.count_nonzero(labels == c))} px · {maps[c].seconds:.2f} s")
    st.caption(f"{registry.label(method)} {where}, target {request.target}; the white line outlines each class's predicted "
               "pixels. Same colour scale as section 3; each map is scaled to its own maximum.")
    png, file_name = export.overview_file(request.image, maps, outlines, names, method, layer, request.target,
                                          image_name)
    st.download_button("Class overview (PNG)", png, file_name=file_name, mime="image/png", on_click="ignore",
                       key="overview-png")
    return maps


@st.fragment
def section(model: Any, model_key: str, image: np.ndarray, image_key: str, target: str, labels: np.ndarray,
            names: list[str], image_name: str) -> None:
    """The overview in a fragment of its own: it reruns when its own widgets change, not on every stroke.

    It needs no marked region (each class's predicted pixels are its regions): the layer and the method
    settings are read from the session state when it runs, so its toggle, method or "Refresh" use the
    layer chosen in the loop view since."""
    from dashboard import choices  # the method settings' widgets' keys

    layer = st.session_state.get(state.LAYER)
    if layer is None:
        st.info("Choose a layer in the view above first: the overview uses it.")
        return
    request = Request(model=model, model_key=model_key, image=image, image_key=image_key,
                      region=np.ones(labels.shape, bool), class_index=0, layer=layer, methods=(), target=target,
                      options=choices.current_method_settings())
    st.button("Refresh for the current layer and settings", key="overview-refresh")
    try:
        with guard.section("Class overview"):
            show(request, labels, names, image_name)
    except ExplainerError as error:
        st.error(safe_text.md(error))
