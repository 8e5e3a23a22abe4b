"""The "Layer sweep" tab: every explainable layer's map for the drawn region, and where along the depth
the attribution settles on it.

Why its own module: on a real backbone (MobileNetV2: 155 layers) the sweep was one Plotly subplot per
layer and method, 2 × 155 heatmaps at input resolution, 100 MB of JSON: 90 s to reach the screen,
each map a 15 px thumbnail. Now the maths is one library call (`compute.sweep`: one compiled pass,
maps shrunk once), and the tab has two parts:

- the curve over depth (share of the attribution inside the region per method, `explainers.depth_profile`):
  one small Plotly figure with every layer; a click on a point makes that layer the loop's layer;
- one method's maps (radio), one page at a time (`pages`: at most `PAGE_SIZE` maps, whole stages packed
  together, a stage larger than a page cut into near-equal parts; a page selector above the grid),
  seven to a row, a row block per stage: a row's pictures inline in one HTML element, a button under
  each map makes its layer the loop's layer. The page follows the loop's layer when that changes
  elsewhere (layer picker, the curve), so the explained layer's map is on screen.

The switch and `show` are a fragment of their own (`tab`) inside the sections' fragment: the switch, the
method and the page selector rerun this tab alone. A pick (map button, curve point) reruns the whole page
(`_pick`: the layer selector must show the new layer in the browser).

Why pages and the fragment: all 155 maps at once (1.6 MB of inline JPEG, 155 buttons in 155 column blocks)
took 2.8 s from the switch to the screen in Chromium for 0.8 s of server work. Pages alone (18 pictures
instead of 155) brought it only to 2.55 s, a page change to 1.15 s: the rerun of every tab under the loop
was the rest. With the tab's own fragment: 1.80 s median (benchmarks/RESULTS.md, sweep_page).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import compute, figures, guard, layer_picker, safe_text, state
from dashboard.comparison import PLOT_CONFIG, Request, region_key
from explainers import ExplainerError, registry

COLUMNS = 7  # maps per row: about 100 px each on a 1280 px wide window with the sidebar open
PAGE_SIZE = 28  # most maps on one page of the grid (four rows of seven)
FRAGMENT = "segexplain-sweep"  # key of the tab's fragment (inside the sections' fragment)
METHOD = "sweep_method"  # which method's maps the grid shows
PAGE = "sweep_page"  # the page selector (index into `pages`)
PAGE_FOR = "sweep_page_for"  # (model key, loop layer) the page was last moved for: a new layer moves it
DEPTH = "sweep-depth"  # key of the depth curve (its selection: a click on a point)
GRID = "sweep-grid"  # key of the grid's container (CSS class st-key-sweep-grid: the browser benchmark finds it)
FLAT_TEXT = "no location"  # what a flat map's cell says instead of a picture
PICK_PREFIX = "sweep-pick-"  # key of the button under a layer's map: PICK_PREFIX + layer name
RANGE_TEXT = "Maps {first}–{last} of {total}"  # the grid's first line (the browser benchmark reads it)


@dataclass(frozen=True)
class Page:
    """One page of the grid: its stages' labels with their layers on it, in forward order."""

    stages: tuple[tuple[str, tuple[str, ...]], ...]
    first: int  # 1-based position of its first layer in the sweep
    last: int

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(name for _, names in self.stages for name in names)


def pick_key(layer: str) -> str:
    return PICK_PREFIX + layer


def pages(stages: list[tuple[str, list[str]]], size: int = PAGE_SIZE) -> list[Page]:
    """The grid's pages: each stage's layers cut into near-equal parts of at most `size`, then consecutive
    parts packed onto one page while they fit (so one-layer stages do not get a page of their own)."""
    parts: list[tuple[str, list[str]]] = []
    for text, names in stages:
        count = -(-len(names) // size)
        step = -(-len(names) // count) if names else 0
        parts += [(text, names[k:k + step]) for k in range(0, len(names), step or 1)]
    result: list[Page] = []
    current: list[tuple[str, tuple[str, ...]]] = []
    position = 0
    for text, names in parts:
        if current and sum(len(n) for _, n in current) + len(names) > size:
            result.append(_page(current, position))
            position += sum(len(n) for _, n in current)
            current = []
        current.append((text, tuple(names)))
    if current:
        result.append(_page(current, position))
    return result


def _page(stages: list[tuple[str, tuple[str, ...]]], before: int) -> Page:
    count = sum(len(names) for _, names in stages)
    return Page(tuple(stages), before + 1, before + count)


def page_label(page: Page) -> str:
    """ "58–78 · 14×14": the layers' positions and the resolution holding most of them."""
    main = max(page.stages, key=lambda stage: len(stage[1]))[0]
    return f"{page.first}–{page.last} · {_short_stage(main)}"


def pictures(model_key: str, image_key: str, region: str, class_index: int, target: str, method: str,
             layers: tuple[str, ...], _profile: Any, _image: Any, _region: Any) -> dict[str, bytes | None]:
    """layer → JPEG of `method`'s map over the image (None for a flat map) for the layers of one page,
    encoded once per sweep and page (`compute.sweep_pictures`)."""
    smalls = {layer: _profile.small[method][layer] for layer in layers}
    return compute.sweep_pictures(model_key, image_key, region, class_index, target, method, layers,
                                  lambda: figures.sweep_pictures(_image, smalls, compute.outline(_region),
                                                                 compute.SWEEP_SIZE))


def _pick(layer: str) -> None:
    """A map's button (or a point of the curve): its layer becomes the loop's layer (the layer picker follows
    with its stage) in a run of the whole page. Not a keyed rerun of the loop's and this tab's fragments:
    in Chromium the layer selector then kept showing the old layer, and its stale value came back with the
    next interaction (a page change reverted the pick); AppTest does not show this."""
    st.session_state[state.LAYER] = layer
    st.rerun()


def layer_at(selection: Any, layers: list[str]) -> str | None:
    """The layer of the depth curve's clicked point (its x is the layer's position), None without one."""
    points = ((selection or {}).get("selection") or {}).get("points") or [] if isinstance(selection, dict) else []
    for point in points:
        x = point.get("x") if isinstance(point, dict) else None
        if isinstance(x, int | float) and float(x).is_integer() and 0 <= int(x) < len(layers):
            return layers[int(x)]
    return None


def _curve_pick(layers: tuple[str, ...]) -> None:
    """A click on a point of the depth curve: as a map's button, for the point's layer."""
    layer = layer_at(st.session_state.get(DEPTH), list(layers))
    if layer is not None and layer != st.session_state.get(state.LAYER):
        _pick(layer)


@st.fragment(key=FRAGMENT)
def tab(request: Request) -> None:
    """The tab's switch and, when on, `show`: a fragment of its own inside the sections' fragment, so the
    switch, the method and the page selector rerun this tab alone, not every tab under the loop (a page
    change cost 1.15 s to the screen in Chromium as a rerun of all the tabs)."""
    with guard.section("Layer sweep"):
        if st.toggle("Compute Grad-CAM and Grad-CAM++ at every explainable layer for this region and class",
                     key=state.SWEEP):
            try:
                show(request)
            except ExplainerError as error:
                st.error(safe_text.md(error))


def show(request: Request) -> None:
    """The depth curve, the note on flat maps, then one method's maps, a page at a time, stage by stage (the
    curve is sent last, into its place)."""
    with st.spinner("Computing Grad-CAM and Grad-CAM++ at every layer…"):
        profile = compute.sweep(request.model_key, request.image_key, region_key(request), request.class_index,
                                request.target, request.image, request.region, request.model)
    index = {name: k for k, name in enumerate(profile.layers)}
    stages = [(stage.label, [info.name for info in stage.layers if info.name in index])
              for stage in layer_picker.stages(request.model_key, request.model)]
    stages = [(text, sorted(names, key=index.__getitem__)) for text, names in stages if names]
    starts = [(_short_stage(text), min(index[name] for name in names)) for text, names in stages]
    layers = list(profile.layers)
    curve = st.container()  # the depth curve goes here once the grid's pictures are sent: see `_curve`
    flat = [layer for k, layer in enumerate(layers) if any(profile.flat[m][k] for m in profile.methods)]
    if flat:
        st.caption(f"{', '.join(safe_text.code(name) for name in flat)}: the map is the same value at every pixel (a 1×1 "
                   "output, or a copy of one upsampled, keeps no location); those cells are left blank rather than "
                   "painted at the maximum.")
    if state.get(METHOD) not in profile.methods:
        st.session_state[METHOD] = profile.methods[0]
    method = st.radio("Maps of", profile.methods, key=METHOD, format_func=registry.label, horizontal=True,
                      help=f"{len(layers)} layers in {len(stages)} stages, from one pass of {profile.seconds:.2f} s. "
                           "A map's button, or a click on a point of the curve, makes its layer the one explained "
                           "above.")
    book = pages(stages)
    page = book[_page_index(book, request)]
    shown = pictures(request.model_key, request.image_key, region_key(request), request.class_index, request.target,
                     method, page.layers, profile, request.image, request.region)
    with st.container(key=GRID):
        st.caption(RANGE_TEXT.format(first=page.first, last=page.last, total=len(layers))
                   + (f" ({safe_text.md(_stage_names(page))})" if page.stages else ""))
        _grid(page, shown, profile, method, index, request.layer)
    with curve:
        _curve(layers, profile, starts, request.layer)


def _curve(layers: list[str], profile: Any, starts: list[tuple[str, int]], selected: str) -> None:
    """The depth curve, drawn into its place above the grid after the grid: Plotly's chart is the slowest
    element for the browser to draw, and the maps should not wait behind it."""
    st.plotly_chart(figures.depth_figure(layers, {registry.label(m): profile.shares[m] for m in profile.methods},
                                         profile.chance, starts, selected=selected),
                    key=DEPTH, config=PLOT_CONFIG, on_select=functools.partial(_curve_pick, tuple(layers)),
                    selection_mode="points")


def _page_index(book: list[Page], request: Request) -> int:
    """The page selector (shown when there is more than one page). It moves to the loop's layer's page
    when that layer changed since the last run (or the selector is new), and otherwise stays put."""
    where = {layer: k for k, page in enumerate(book) for layer in page.layers}
    current = st.session_state.get(PAGE)
    if state.get(PAGE_FOR) != (request.model_key, request.layer) or not (
            isinstance(current, int) and 0 <= current < len(book)):
        st.session_state[PAGE] = where.get(request.layer, current if isinstance(current, int)
                                           and 0 <= current < len(book) else 0)
        st.session_state[PAGE_FOR] = (request.model_key, request.layer)
    if len(book) == 1:
        return 0
    choice = st.segmented_control(
        "Layers on screen", list(range(len(book))), key=PAGE, required=True,
        format_func=lambda k: page_label(book[k]),
        help=f"{PAGE_SIZE} maps at most per page, a stage's layers together; the layer explained above is on "
             "its page when you pick it elsewhere.")
    return int(choice) if choice is not None else 0


def _grid(page: Page, shown: dict[str, bytes | None], profile: Any, method: str, index: dict[str, int],
          selected: str) -> None:
    """A block per stage of the page, `COLUMNS` maps to a row: the row's pictures in one HTML element
    (inline, so the browser fetches no media file per map), then the buttons that pick their layers,
    column under column."""
    for text, names in page.stages:
        st.markdown(f"**{safe_text.md(text)}**")
        for start in range(0, len(names), COLUMNS):
            row = names[start:start + COLUMNS]
            st.html(figures.picture_row_html([shown.get(layer) for layer in row], COLUMNS, FLAT_TEXT))
            for column, layer in zip(st.columns(COLUMNS, gap="small"), row, strict=False):
                column.button(safe_text.md(layer), key=pick_key(layer), on_click=_pick, args=(layer,),
                              type="primary" if layer == selected else "tertiary", width="stretch",
                              help=f"Explain layer {safe_text.code(layer)} in the maps above; share inside the "
                                   f"region: {_share_text(profile, method, index[layer])}.")


def _stage_names(page: Page) -> str:
    return ", ".join(dict.fromkeys(_short_stage(text) for text, _ in page.stages))


def _short_stage(text: str) -> str:
    """ "stage 3 · 16×16 (1/8 of the input) · 12 layers" → "16×16" for the curve's stage marks."""
    parts = [part.strip() for part in text.split("·")]
    return parts[1].split(" (")[0] if len(parts) > 1 else text


def _share_text(profile: Any, method: str, k: int) -> str:
    value = float(profile.shares[method][k])
    return "none (no positive attribution)" if value != value else f"{value:.0%}"
