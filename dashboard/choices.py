"""Section 2 of the page: which class, which layer, which methods.

Defaults follow the region and the model: the class is the one predicted most often inside a new
region (`regions.dominant_class`, background only when nothing else is there), the layer is
`explainers.default_layer` when the model changes; after that the user's choices are kept.
The method picker offers every method of the registry (`explainers.registry.ALL_METHODS`), the default four
selected; entries say which methods are layer-free and which are slow. The chosen methods' own settings
sit in a small expander underneath (`method_settings`, drawn from their options' metadata).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from dashboard import compute, layer_picker, share, state
from dashboard import method_settings as settings_widgets
from dashboard.comparison import picker_label, picker_order
from dashboard.region import region_class
from explainers import ExplainerError, registry


def shape_text(shape: tuple[int | None, ...]) -> str:
    return "×".join("?" if d is None else str(d) for d in shape[1:])


def resolve(region: np.ndarray | None, labels: np.ndarray, names: list[str], model: Any,
            model_key: str) -> tuple[int, str, list[str]]:
    """(class index, layer, methods) as the pickers will hold them, defaults applied, before they are drawn.

    The maps need these three values, not the widgets: the loop reads them here, computes and sends the maps,
    and draws the pickers (`show`) after them, so a stroke's maps reach the browser ahead of the picker
    widgets (each message is a render of the page in the browser: `benchmarks/ui_latency.py`)."""
    layers, default_layer = compute.layer_table(model_key, model)
    _default_class(region, labels, names)
    if st.session_state.get(state.LAYER) not in {info.name for info in layers}:
        st.session_state[state.LAYER] = default_layer
    layer_picker.resolve(model_key, model, default_layer)
    if state.METHODS not in st.session_state:
        st.session_state[state.METHODS] = list(registry.DEFAULT_METHODS)
    return int(st.session_state[state.CLASS]), str(st.session_state[state.LAYER]), list(st.session_state[state.METHODS])


def show(names: list[str], model: Any, model_key: str, image_size: tuple[int, int] | None = None) -> None:
    """Class and stage pickers in one row, the layer and the method picker under them at full width, holding
    the values `resolve` settled in this run."""
    _layers, default_layer = compute.layer_table(model_key, model)
    class_col, stage_col = st.columns(2)  # the layer below them at full width: its labels are long
    class_col.selectbox("Class", range(len(names)), key=state.CLASS, format_func=names.__getitem__,
                        help="Defaults to the class predicted most often inside the region.")
    layer_picker.show(stage_col, st.container(), model, model_key, default_layer, image_size)
    st.multiselect(
        "Methods", list(picker_order()), key=state.METHODS, format_func=picker_label,
        help="Fast CAMs share one pass and appear at once. Slow methods run after them, each with a progress "
             "bar. Layer-free methods attribute to input pixels: the layer choice does not apply to them.")


def method_settings() -> dict[str, dict[str, Any]]:
    """The chosen methods' own settings (widgets from their options' metadata), in an expander."""
    methods = [m for m in state.get(state.METHODS) or () if m in registry.METHODS]
    settings_widgets.show(methods)
    return current_method_settings()


def current_method_settings() -> dict[str, dict[str, Any]]:
    """{method: {field: value}} of every method's page settings as the widgets hold them (before they are
    drawn): the `options` of `comparison.Request`."""
    return settings_widgets.current()


def _default_class(region: np.ndarray | None, labels: np.ndarray, names: list[str]) -> None:
    """A new region resets the class to its dominant class; otherwise the user's class stays."""
    if region is not None:
        try:
            region_key = compute.digest(np.asarray(region))
            if state.get(state.CLASS_FOR_REGION) != region_key:
                st.session_state[state.CLASS] = region_class(region, labels, names)
                state.put(state.CLASS_FOR_REGION, region_key)
        except ExplainerError:
            pass  # empty or misshaped region: regions.check_region words the message in section 3
    share.apply_pending_class(region is not None)
    if st.session_state.get(state.CLASS) not in range(len(names)):
        st.session_state[state.CLASS] = 0
