"""The "Layer sweep" tab: every explainable layer's map for the drawn region, and where along the depth
the attribution settles on it.

Why its own module: on a real backbone (MobileNetV2: 155 layers) the sweep was one Plotly subplot per
layer and method, 2 × 155 heatmaps at input resolution, 100 MB of JSON: 90 s to reach the screen,
each map a 15 px thumbnail. Now the maths is one library call (`compute.sweep`: one compiled pass,
maps shrunk once), each map is a small JPEG encoded once per region (`pictures`), shown one method at
a time, seven to a row, a row block per stage: a row's pictures inline in one HTML element (155
`st.image`s cost 155 media requests and elements: 2.5 s to the screen in Chromium), and a button under
each map makes its layer the loop's layer.
The curve over depth (share of the attribution inside the region, `explainers.depth_profile`) is one
small Plotly figure.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import compute, figures, layer_picker, safe_text, state
from dashboard.comparison import PLOT_CONFIG, Request, label, region_key

COLUMNS = 7  # maps per row: about 100 px each on a 1280 px wide window with the sidebar open
METHOD = "sweep_method"  # which method's maps the grid shows
GRID = "sweep-grid"  # key of the grid's container (CSS class st-key-sweep-grid: the browser benchmark finds it)
FLAT_TEXT = "no location"  # what a flat map's cell says instead of a picture
PICK_PREFIX = "sweep-pick-"  # key of the button under a layer's map: PICK_PREFIX + layer name


def pick_key(layer: str) -> str:
    return PICK_PREFIX + layer


def pictures(model_key: str, image_key: str, region: str, class_index: int, target: str, method: str,
             _profile: Any, _image: Any, _region: Any) -> dict[str, bytes | None]:
    """layer → JPEG of `method`'s map over the image (None for a flat map), encoded once per sweep
    (`compute.sweep_pictures`)."""
    return compute.sweep_pictures(model_key, image_key, region, class_index, target, method, lambda: figures.sweep_pictures(
        _image, _profile.small[method], compute.outline(_region), compute.SWEEP_SIZE))


def _pick(layer: str) -> None:
    """A map's button: its layer becomes the loop's layer (the layer picker follows with its stage); the
    loop reruns, then this tab's fragment (under the loop) with the loop's new maps."""
    st.session_state[state.LAYER] = layer
    st.rerun([state.LOOP_FRAGMENT, state.SECTIONS_FRAGMENT])


def show(request: Request) -> None:
    """The depth curve, the note on flat maps, then one method's maps stage by stage."""
    with st.spinner("Computing Grad-CAM and Grad-CAM++ at every layer…"):
        profile = compute.sweep(request.model_key, request.image_key, region_key(request), request.class_index,
                                request.target, request.image, request.region, request.model)
    index = {name: k for k, name in enumerate(profile.layers)}
    stages = [(stage.label, [info.name for info in stage.layers if info.name in index])
              for stage in layer_picker.stages(request.model_key, request.model)]
    stages = [(text, names) for text, names in stages if names]
    starts = [(_short_stage(text), min(index[name] for name in names)) for text, names in stages]
    st.plotly_chart(figures.depth_figure(profile.layers, {label(m): profile.shares[m] for m in profile.methods},
                                         profile.chance, starts, selected=request.layer),
                    key="sweep-depth", config=PLOT_CONFIG)
    flat = [layer for k, layer in enumerate(profile.layers) if any(profile.flat[m][k] for m in profile.methods)]
    if flat:
        st.caption(f"{', '.join(safe_text.code(name) for name in flat)}: the map is the same value at every pixel (a 1×1 "
                   "output, or a copy of one upsampled, keeps no location); those cells are left blank rather than "
                   "painted at the maximum.")
    if state.get(METHOD) not in profile.methods:
        st.session_state[METHOD] = profile.methods[0]
    method = st.radio("Maps of", profile.methods, key=METHOD, format_func=label, horizontal=True,
                      help=f"{len(profile.layers)} layers in {len(stages)} stages, from one pass of "
                           f"{profile.seconds:.2f} s. A map's button makes its layer the one explained above.")
    shown = pictures(request.model_key, request.image_key, region_key(request), request.class_index, request.target,
                     method, profile, request.image, request.region)
    with st.container(key=GRID):
        _grid(stages, shown, profile, method, index, request.layer)


def _grid(stages: list[tuple[str, list[str]]], shown: dict[str, bytes | None], profile: Any, method: str,
          index: dict[str, int], selected: str) -> None:
    """A block per stage, `COLUMNS` maps to a row: the row's pictures in one HTML element (inline, so the
    browser fetches no media file per map), then the buttons that pick their layers, column under column."""
    for text, names in stages:
        st.markdown(f"**{safe_text.md(text)}**")
        for start in range(0, len(names), COLUMNS):
            row = names[start:start + COLUMNS]
            st.html(figures.picture_row_html([shown.get(layer) for layer in row], COLUMNS, FLAT_TEXT))
            for column, layer in zip(st.columns(COLUMNS, gap="small"), row, strict=False):
                column.button(safe_text.md(layer), key=pick_key(layer), on_click=_pick, args=(layer,),
                              type="primary" if layer == selected else "tertiary", width="stretch",
                              help=f"Explain layer {safe_text.code(layer)} in the maps above; share inside the "
                                   f"region: {_share_text(profile, method, index[layer])}.")


def _short_stage(text: str) -> str:
    """ "stage 3 · 16×16 (1/8 of the input) · 12 layers" → "16×16" for the curve's stage marks."""
    parts = [part.strip() for part in text.split("·")]
    return parts[1].split(" (")[0] if len(parts) > 1 else text


def _share_text(profile: Any, method: str, k: int) -> str:
    value = float(profile.shares[method][k])
    return "none (no positive attribution)" if value != value else f"{value:.0%}"
