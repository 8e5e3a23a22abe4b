"""Section 2 of the page: which class, which layer, which methods.

Defaults follow the region and the model: the class is the one predicted most often inside a new
region (`regions.dominant_class`, background only when nothing else is there), the layer is
`explainers.default_layer` when the model changes; after that the user's choices are kept.
The method picker offers every method of the registry (`explainers.registry.ALL_METHODS`), the default four
selected; entries say which methods are layer-free and which are slow. The slow methods' own
settings (Score-CAM channels, IG steps, SmoothGrad samples, RISE masks and grid) and Seg-XRes-CAM's pool
size sit in a small expander underneath.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from dashboard import compute, layer_picker, share, state
from dashboard.comparison import PICKER_ORDER, picker_label
from explainers import ExplainerError, regions, registry


def shape_text(shape: tuple[int | None, ...]) -> str:
    return "×".join("?" if d is None else str(d) for d in shape[1:])


def show(region: np.ndarray | None, labels: np.ndarray, names: list[str], model: Any,
         model_key: str, image_size: tuple[int, int] | None = None) -> tuple[int, str, list[str]]:
    """Class and stage pickers in one row, the layer and the method picker under them at full width; returns
    (class index, layer, methods)."""
    layers, default_layer = compute.layer_table(model_key, model)
    shapes = {info.name: shape_text(info.output_shape) for info in layers}
    _default_class(region, labels, names)
    if st.session_state.get(state.LAYER) not in shapes:
        st.session_state[state.LAYER] = default_layer
    if state.METHODS not in st.session_state:
        st.session_state[state.METHODS] = list(registry.DEFAULT_METHODS)
    class_col, stage_col = st.columns(2)  # the layer below them at full width: its labels are long
    class_index = class_col.selectbox("Class", range(len(names)), key=state.CLASS, format_func=names.__getitem__,
                                      help="Defaults to the class predicted most often inside the region.")
    layer = layer_picker.show(stage_col, st.container(), model, model_key, default_layer, image_size)
    methods = st.multiselect(
        "Methods", list(PICKER_ORDER), key=state.METHODS, format_func=picker_label,
        help="Fast CAMs share one pass and appear at once. Slow methods run after them, each with a progress "
             "bar. Layer-free methods attribute to input pixels: the layer choice does not apply to them.")
    return int(class_index), layer, list(methods)


# The methods' own settings: (label, session key, min, max, step, method and option whose default
# the help names, what the number is). Two per row: the expander sits in the left column, too narrow
# for three labels side by side.
SETTINGS = (
    ("Score-CAM channels", state.SCORECAM_CHANNELS, 1, 1024, 16, "scorecam", "channels",
     "At most this many channels (largest mean activation) are scored: one forward pass each."),
    ("Seg-XRes-CAM pool", state.SEGXRES_POOL, 1, 64, 1, "seg-xres-cam", "pool_size",
     "Side, in cells of the layer's grid, of the blocks Seg-XRes-CAM averages its gradient over (1 is "
     "HiResCAM's element-wise product)."),
    ("IG steps", state.INPUT_STEPS, 2, 500, 10, "integrated-gradients", "steps",
     "Path points of Integrated Gradients, Guided IG and Blur IG (one gradient each)."),
    ("SmoothGrad samples", state.SMOOTHGRAD_SAMPLES, 1, 500, 5, "smoothgrad", "samples",
     "Noisy copies averaged by SmoothGrad (one gradient each)."),
    ("RISE masks", state.RISE_MASKS, 1, 20_000, 100, "rise", "masks",
     "Random masks RISE averages (one forward pass each)."),
    ("RISE grid", state.RISE_CELLS, 1, 64, 1, "rise", "cells",
     "Cells per side of each of RISE's random keep/drop grids before it is upsampled: fewer cells, coarser "
     "masks."),
)


def method_settings() -> dict[str, int]:
    """The methods' own settings (`SETTINGS`: Score-CAM channel cap, Seg-XRes-CAM pool size, IG steps,
    SmoothGrad samples, RISE masks and grid), in an expander."""
    with st.expander("Method settings: Score-CAM, IG, SmoothGrad, RISE, Seg-XRes-CAM", expanded=False):
        for start in range(0, len(SETTINGS), 2):
            for column, (label, key, low, high, step, method, option, text) in zip(
                    st.columns(2), SETTINGS[start:start + 2], strict=False):
                column.number_input(label, min_value=low, max_value=high, step=step, key=key,
                                    help=f"{text} {registry.default(method, option)} is the library's default.")
    return current_method_settings()


def current_method_settings() -> dict[str, int]:
    """The methods' settings as the widgets of `method_settings` hold them (before they are drawn), by
    session key; each key is also the name of the `comparison.Request` field it sets."""
    return {key: int(state.get(key)) for _, key, *_ in SETTINGS}


def _default_class(region: np.ndarray | None, labels: np.ndarray, names: list[str]) -> None:
    """A new region resets the class to its dominant class; otherwise the user's class stays."""
    if region is not None:
        try:
            region_key = compute.digest(np.asarray(region))
            if state.get(state.CLASS_FOR_REGION) != region_key:
                ignore = (0,) if names[0] == "background" else ()
                st.session_state[state.CLASS] = regions.dominant_class(region, labels, ignore=ignore)
                state.put(state.CLASS_FOR_REGION, region_key)
        except ExplainerError:
            pass  # empty or misshaped region: regions.check_region words the message in section 3
    share.apply_pending_class(region is not None)
    if st.session_state.get(state.CLASS) not in range(len(names)):
        st.session_state[state.CLASS] = 0
