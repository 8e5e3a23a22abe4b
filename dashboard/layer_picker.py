"""The layer picker: a stage (output resolution) selector above the layer selector.

Why: a ResNet50 or EfficientNet backbone has hundreds of explainable feature maps (every
convolution, normalisation, activation, Add / Concatenate, pooling and resizing output). Grouping
them by resolution (`explainers.graph.layer_stages`) lets the user pick "1/16 of the input" first and
then a layer inside it. "All stages" (the default) lists every layer, so a layer chosen elsewhere
(state, tests, the sweep) is always selectable; picking a stage jumps to its deepest layer, or to the
default layer when it lies in that stage.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import compute, safe_text, state
from explainers import graph, working_size

STAGE = "layer_stage"  # selectbox of the stage filter
ALL = "all stages"

DEFAULT_RULE = ("Default: the deepest layer whose Grad-CAM answers the drawn region, i.e. with a non-linear "
                "layer (an activation) between it and the output; a layer followed only by a 1×1 classifier, "
                "normalisation, pooling or resizing gives the same Grad-CAM for every region.")


def stages(model_key: str, model: Any) -> list[graph.Stage]:
    """The explainable layers grouped by output resolution (cached per model: `compute.layer_stages`)."""
    return compute.layer_stages(model_key, model)


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "×".join("?" if d is None else str(d) for d in shape[1:])


def _on_stage(groups: dict[str, list[str]], default_layer: str) -> None:
    """A stage was picked: select its default layer if it holds it, else its deepest layer."""
    names = groups.get(st.session_state.get(STAGE))
    if names:
        st.session_state[state.LAYER] = default_layer if default_layer in names else names[-1]


def resolve(model_key: str, model: Any, default_layer: str) -> str:
    """The chosen layer (session key `state.LAYER`, the default when it is not a layer of this model) and
    a stage filter that lists it, settled before the pickers are drawn (`show`)."""
    groups_list = stages(model_key, model)
    groups = {stage.label: [info.name for info in stage.layers] for stage in groups_list}
    if st.session_state.get(state.LAYER) not in {name for names in groups.values() for name in names}:
        st.session_state[state.LAYER] = default_layer
    current = st.session_state[state.LAYER]
    if st.session_state.get(STAGE) not in (ALL, *groups):
        st.session_state[STAGE] = ALL
    if st.session_state[STAGE] != ALL and current not in groups[st.session_state[STAGE]]:
        st.session_state[STAGE] = next((label for label, names in groups.items() if current in names), ALL)
    return current


def show(container: Any, layer_box: Any, model: Any, model_key: str, default_layer: str,
         image_size: tuple[int, int] | None = None) -> str:
    """The stage selector in `container`, the layer selector in `layer_box`; returns the chosen layer
    (session key `state.LAYER`). A free-size model's layers show their size at `image_size` (the image's
    working size), not "?×?"."""
    resolve(model_key, model, default_layer)
    groups_list = stages(model_key, model)
    groups = {stage.label: [info.name for info in stage.layers] for stage in groups_list}
    infos = {info.name: info for stage in groups_list for info in stage.layers}
    stage = container.selectbox(
        "Stage", [ALL, *groups], key=STAGE, on_change=_on_stage, args=(groups, default_layer),
        help="Layers grouped by output resolution (1/8 of the input = stride 8), in forward order. "
             f"{len(infos)} explainable layers in {len(groups)} stages.")
    forward = [info.name for info in compute.layer_table(model_key, model)[0]]  # the network's own order
    if image_size:  # a free-size model works at its working size (explainers.working_size), not the image's
        plan = working_size.plan(model, tuple(int(d) for d in image_size), graph.inspect_model(model).input_size)
        image_size = plan.size if plan is not None else image_size
    sized = compute.working_shapes(model_key, tuple(int(d) for d in image_size), model) if image_size else {}
    options = [name for name in forward if name in infos] if stage == ALL else groups[stage]
    return layer_box.selectbox(
        "Layer", options, key=state.LAYER,
        format_func=lambda name: f"{name}  ({_shape_text(sized.get(name, infos[name].output_shape))} · "
                                 f"{infos[name].kind})",
        help=f"Feature map the CAMs explain: any layer with a spatial (h×w×channels) output, or a token map "
             f"on the patch grid. {DEFAULT_RULE} Here: {safe_text.code(default_layer)}.")
