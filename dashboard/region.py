"""Section 1 of the page: the predicted mask, and the region to explain marked on it.

Five ways to mark a region (`state.REGION_MODES`): draw on the canvas (free hand, rectangle,
polygon, points), a whole predicted class, the connected component under a pixel (typed as row and
column, or clicked on the canvas in point mode), the whole image, or an error region of an image
with ground truth (false positives or false negatives of a class, or the pixels of class a predicted
as b, picked from the confusion table). The masks themselves come from `explainers.regions` and
`explainers.quality`; this module only collects the user's gestures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

from dashboard import canvas, compute, figures, safe_text, state
from explainers import ExplainerError, quality, regions

CANVAS_SIZE = 320  # longest side of the canvas in screen pixels: fits the loop view's left column at 1280 px


WHOLE_IMAGE = "whole image"  # how the "Whole image" mode's region is named (its captions, and `loop`'s maps ahead)


@dataclass
class Marked:
    """The region as marked (before the optional restriction to the explained class).

    `region` is None while nothing is marked yet (`hint` says what to do); `error` carries an
    ExplainerError message (e.g. a pixel outside the image)."""

    region: np.ndarray | None
    how: str
    hint: str | None = None
    error: str | None = None
    below: Any = None  # the container under the canvas that `controls_below` fills
    later: list[tuple[Any, Any]] = field(default_factory=list)  # (container, draw) that `controls_below` runs


def canvas_geometry(shape: tuple[int, int]) -> tuple[float, int, int]:
    """(scale, canvas width, canvas height): canvas pixels per image pixel and the canvas size."""
    height, width = shape
    scale = CANVAS_SIZE / max(height, width)
    return scale, int(round(width * scale)), int(round(height * scale))


POLYGON_TIP = ("Polygon: click to place corners; click the first corner again to close it (the region counts "
               "once it is closed).")
TOOLBAR = "the toolbar over the canvas (point at it) has undo, redo, reset and an edit mode that moves shapes."
TOOL_TIPS = {
    "freedraw": f"Draw over the mask; {TOOLBAR}",
    "line": f"Drag a line (as wide as the brush); {TOOLBAR}",
    "rect": f"Drag a rectangle over the mask; {TOOLBAR}",
    "circle": f"Drag from one side of a circle to the other; {TOOLBAR}",
    "polygon": f"{POLYGON_TIP} The {TOOLBAR}",
    "point": f"Click to place points (small discs), on one part of one class; {TOOLBAR}",
}
BRUSH_TOOLS = ("freedraw", "line")  # the tools whose strokes have the brush's width


def controls() -> str:
    """The region controls above the canvas (mode, then the tool in draw mode); returns the mode. The
    brush width sits under the canvas (`controls_below`), shown for the tools that use it."""
    mode_col, tool_col = st.columns(2, vertical_alignment="bottom")
    mode = mode_col.selectbox("Region", state.REGION_MODES, key=state.REGION_MODE,
                              format_func=state.REGION_MODE_LABELS.get, label_visibility="collapsed",
                              help="How to mark the region to explain.")
    if mode == "draw":
        with tool_col:
            st.selectbox("Tool", state.DRAW_TOOLS, key=state.DRAW_TOOL, format_func=state.DRAW_TOOL_LABELS.get,
                         label_visibility="collapsed")
    return mode


def canvas_background(overlay: np.ndarray, size: tuple[int, int], region: np.ndarray | None) -> np.ndarray:
    """The canvas picture: the mask overlay enlarged to `size` (width, height), `region` outlined on it.

    The component mode outlines the component it picked, so the user sees which pixels a click chose."""
    if region is None or not np.asarray(region).any():
        return figures.enlarge(overlay, size)
    scale = size[0] / overlay.shape[1]
    picture = figures.map_image(overlay, np.zeros(overlay.shape[:2], np.float32), compute.outline(region),
                                opacity=0.0, scale=max(1, int(round(scale))))
    return figures.enlarge(picture, size)


def _background_url(canvas_id: str, classes: tuple[int, bool], size: tuple[int, int], picked_key: str | None,
                    overlay: Callable[[], np.ndarray], picked: np.ndarray | None) -> str:
    """The canvas picture as a data URL, encoded once per image, model, size and picked component
    (`compute.canvas_background`); `overlay` makes the mask overlay, called only then (a stroke's run
    reuses the URL and skips it)."""
    return compute.canvas_background(canvas_id, classes, size, picked_key,
                                     lambda: canvas.background_url(canvas_background(overlay(), size, picked)))


def _injected_region(shape: tuple[int, int]) -> np.ndarray | None:
    """A region set from elsewhere (the dataset page's "Open in main view"), outlined on the canvas as
    on the maps while it is the region explained (a drawing replaces it)."""
    region = st.session_state.get(state.INJECTED_REGION)
    if region is None or np.shape(region) != tuple(shape):
        return None
    return np.asarray(region, dtype=bool)


def _component_now(labels: np.ndarray) -> np.ndarray | None:
    """The component at the row/column currently in the inputs (what the canvas outlines)."""
    row, col = st.session_state.get(state.CLICK_ROW), st.session_state.get(state.CLICK_COL)
    if not isinstance(row, int) or not isinstance(col, int):
        return None
    if not (0 <= row < labels.shape[0] and 0 <= col < labels.shape[1]):
        return None
    try:
        return regions.from_component(labels, row, col)
    except ExplainerError:
        return None


def mark(mode: str, image: np.ndarray, labels: np.ndarray, names: list[str],
         colors: list[tuple[int, int, int]], canvas_id: str, truth: np.ndarray | None = None) -> Marked:
    """Canvas (or mask preview), then the legend and the mode-specific inputs under it.

    `truth` is the ground-truth label map on the prediction's grid (None when the image has none);
    the "errors" mode needs it."""
    shape = labels.shape
    scale, canvas_w, canvas_h = canvas_geometry(shape)
    def overlay() -> np.ndarray:  # only when the canvas picture is encoded anew, or for the preview
        return figures.mask_overlay(image, labels, colors, skip=_background(names))

    drawing = None
    later: list[tuple[Any, Any]] = []  # lines under the canvas the maps do not need: drawn after them
    if mode in ("draw", "component"):
        tool = state.get(state.DRAW_TOOL) if mode == "draw" else "point"
        key = f"canvas-{canvas_id}-{mode}"  # one pad per image, model and mode
        picked = _component_now(labels) if mode == "component" else _injected_region(labels.shape)
        background = _background_url(canvas_id, (len(names), names[0] == "background"), (canvas_w, canvas_h),
                                     None if picked is None else compute.digest(picked), overlay, picked)
        with st.container(key="region-canvas"):  # room above it for the canvas's toolbar (layout.CSS)
            drawing = _pad(background, (canvas_w, canvas_h), key, tool, canvas_id, mode)
        if drawing.message:
            st.warning(drawing.message)
        if mode == "component":
            _note_click(drawing, key, scale, shape)
        tip = TOOL_TIPS.get(tool, "") if mode == "draw" else (
            "Click a pixel (point tool) or type its row and column; the picked component is outlined.")
        later.append((st.container(), lambda: st.caption(f"Predicted mask, {scale:.3g}× ({shape[1]}×{shape[0]} px). "
                                                         f"{tip}")))
    else:
        state.put(state.PAD_SHOWN, None)
    preview = st.container()
    later.append((st.container(), lambda: st.markdown(
        figures.legend_html(names, colors, quality.class_shares(labels, len(names))), unsafe_allow_html=True)))
    marked = _region_for_mode(mode, drawing, labels, names, shape, truth)
    marked = _apply_injection(marked, drawing)
    if mode not in ("draw", "component"):
        with preview:
            paths = [] if marked.region is None else compute.outline(marked.region)
            # a picture, not a Plotly figure: a mode switch then paints it (and the maps after it) at once
            st.image(figures.outlined(overlay(), paths, (canvas_w, canvas_h)), width=canvas_w)
            st.caption(f"Predicted mask over the image, shown {scale:.3g}×; the region is outlined.")
    marked.below = st.container()  # the class switch: `controls_below`, after the maps
    marked.later = later + marked.later
    return marked


def _pad(background: str, size: tuple[int, int], key: str, tool: str, canvas_id: str, mode: str) -> canvas.Drawing:
    """The canvas, its drawing kept per key: a canvas shown again after another mode (its browser side
    mounted anew, empty) starts from what it last sent (the library's `initial_drawing`), so it shows
    the region the maps explain. The same starting drawing is passed for as long as the canvas stays
    on the page (a new one would reload it).

    A drawing put in `state.LOAD_DRAWING` (a shared link, the dataset page, a test) replaces the draw
    mode's drawing: the canvas gets a new key (a fresh mount) that starts from it."""
    mine = f"canvas-{canvas_id}-"
    saved = {k: v for k, v in (state.get(state.PAD_SHAPES) or {}).items() if k.startswith(mine)}
    starts = {k: v for k, v in (state.get(state.PAD_INITIAL) or {}).items() if k.startswith(mine)}
    generation = int(state.get(state.PAD_GENERATION) or 0)
    if mode == "draw" and state.LOAD_DRAWING in st.session_state:
        loaded = st.session_state.pop(state.LOAD_DRAWING)
        generation += 1
        state.put(state.PAD_GENERATION, generation)
        saved[key] = starts[key] = loaded if isinstance(loaded, dict) else None
    mounted = f"{key}-{generation}"  # the component's key: a new generation is a fresh canvas
    if state.get(state.PAD_SHOWN) != mounted:
        starts[key] = saved.get(key)
    drawing, value = canvas.draw(background, size, mounted, tool,
                                 int(state.get(state.STROKE_WIDTH)) if mode == "draw" else 6, starts.get(key))
    saved[key] = value
    state.put(state.PAD_SHAPES, saved)  # this image's canvases only
    state.put(state.PAD_INITIAL, starts)
    state.put(state.PAD_SHOWN, mounted)
    return drawing


def controls_below(marked: Marked, mode: str = "draw") -> None:
    """Under the canvas: its caption and the class legend, the brush width (free hand and line only) and the
    restrict-to-class switch.

    Drawn after the maps (into the place `mark` kept for it), so a stroke's maps are sent first; their
    values are read from the session state before they are drawn (`_pad`, `finish`)."""
    for box, draw in marked.later:  # the canvas's caption and the class legend, in their places
        with box:
            draw()
    with marked.below if marked.below is not None else st.container():
        toggle_col, brush_col = st.columns([1.7, 1], vertical_alignment="center")
        toggle_col.toggle("Only pixels of the class", key=state.RESTRICT,
                          help="Keep only the marked pixels predicted as the class being explained.")
        if mode == "draw" and state.get(state.DRAW_TOOL) in BRUSH_TOOLS:
            brush_col.slider("Brush width", 4, 60, key=state.STROKE_WIDTH, label_visibility="collapsed",
                             help="Brush width in screen pixels (free hand and line).", format="brush %d px")


def _note_click(drawing: canvas.Drawing, key: str, scale: float, shape: tuple[int, int]) -> None:
    """A new point on the component canvas sets the row/column inputs and redraws the outline."""
    if not drawing.points:
        return
    x, y = drawing.points[-1]
    if state.get(state.LAST_CLICK) == (key, x, y):
        return
    state.put(state.LAST_CLICK, (key, x, y))
    st.session_state[state.CLICK_ROW] = int(min(max(y / scale, 0), shape[0] - 1))
    st.session_state[state.CLICK_COL] = int(min(max(x / scale, 0), shape[1] - 1))
    st.rerun(scope="fragment")  # the canvas above was drawn before the click was known: outline the new component


def _region_for_mode(mode: str, drawing: canvas.Drawing | None, labels: np.ndarray, names: list[str],
                     shape: tuple[int, int], truth: np.ndarray | None = None) -> Marked:
    try:
        if mode == "errors":
            return _error_region(truth, labels, names)
        if mode == "draw":
            if drawing is None or drawing.empty:
                # an open polygon is not sent: nothing counts until it is closed
                polygon = state.get(state.DRAW_TOOL) == "polygon"
                hint = POLYGON_TIP if polygon else "Draw on the image to mark the region to explain."
                return Marked(None, "drawing", hint=hint)
            # the picture is at canvas size: the scale is its size over the prediction's
            rgba = drawing.rgba
            fit = (rgba.shape[1] / shape[1], rgba.shape[0] / shape[0])
            if state.get(state.DRAW_TOOL) == "point":
                mixed = points_on_several_classes(drawing.points, fit, labels, names)
                if mixed:
                    return Marked(None, "points", error=mixed)
            return Marked(regions.from_canvas(rgba, shape, scale=fit), "drawing")
        if mode == "class":
            if st.session_state.get(state.REGION_CLASS) not in range(len(names)):
                st.session_state[state.REGION_CLASS] = region_class(regions.whole_image(labels.shape), labels, names)
            c = st.selectbox("Class to mark", range(len(names)), key=state.REGION_CLASS, format_func=names.__getitem__)
            return Marked(regions.from_class(labels, c), f"whole class '{names[c]}'")
        if mode == "component":
            for key, size in ((state.CLICK_ROW, shape[0]), (state.CLICK_COL, shape[1])):
                if key not in st.session_state or not 0 <= st.session_state[key] < size:
                    st.session_state[key] = size // 2
            row = st.number_input("Row", min_value=0, max_value=shape[0] - 1, step=1, key=state.CLICK_ROW)
            col = st.number_input("Column", min_value=0, max_value=shape[1] - 1, step=1, key=state.CLICK_COL)
            c = int(labels[int(row), int(col)])
            st.caption(f"Pixel ({row}, {col}) is predicted as **{safe_text.md(names[c])}**.")
            return Marked(regions.from_component(labels, int(row), int(col)),
                          f"component of '{names[c]}' at row {row}, column {col}")
        return Marked(regions.whole_image(shape), WHOLE_IMAGE)
    except ExplainerError as error:
        return Marked(None, mode, error=str(error))


def points_on_several_classes(points: list[tuple[float, float]], fit: tuple[float, float], labels: np.ndarray,
                              names: list[str]) -> str | None:
    """Why points placed on more than one predicted class are refused (None when they share one class).

    Points mark one part: mixing two would quietly switch the explained class to whichever covers
    more pixels and explain a region made of both parts."""
    if len(points) < 2:
        return None
    height, width = labels.shape
    classes = []
    for x, y in points:
        row = int(min(max(y / fit[1], 0), height - 1))
        col = int(min(max(x / fit[0], 0), width - 1))
        classes.append(int(labels[row, col]))
    if len(set(classes)) == 1:
        return None
    first, last = names[classes[0]], names[classes[-1]]
    return (f"The points lie on different predicted classes (the first on {first}, the last on {last}): points "
            f"mark one part of one class. Undo the last point (toolbar over the canvas) and place it on {first}, "
            "or use the free-hand or polygon tool for a region across parts.")


def _error_region(truth: np.ndarray | None, labels: np.ndarray, names: list[str]) -> Marked:
    """The "Error region" mode: a preset from the ground truth (its ExplainerError when it is empty)."""
    if truth is None:
        return Marked(None, "error region",
                      hint="This image has no ground truth, so it has no error regions: upload a label PNG under "
                           "“Ground truth and errors” below, pick a sample or a generated scene, or choose "
                           "another region mode.")
    confusion = quality.confusion_matrix(truth, labels, len(names))  # void pixels (255) not counted
    kind = st.selectbox("Error region", state.ERROR_KINDS, key=state.ERROR_KIND,
                        format_func=state.ERROR_KIND_LABELS.get)
    void = int(quality.void_pixels(truth).sum())
    if void:
        st.caption(f"{void} px of the ground truth are void ({quality.VOID}): never an error, never in an error region.")
    if kind in ("fp", "fn"):
        false_pos, false_neg = quality.error_counts(confusion)
        counts = false_pos if kind == "fp" else false_neg
        if st.session_state.get(state.ERROR_CLASS) not in range(len(names)):
            st.session_state[state.ERROR_CLASS] = regions.largest_count(counts, _background(names))
        c = st.selectbox("Class with errors", range(len(names)), key=state.ERROR_CLASS,
                         format_func=lambda k: f"{names[k]} ({counts[k]} px)")
        if kind == "fp":
            return Marked(quality.false_positives(truth, labels, c, names), f"false positives of '{names[c]}'")
        return Marked(quality.false_negatives(truth, labels, c, names), f"false negatives of '{names[c]}'")
    return _confusion_cell(truth, labels, names, confusion)


def _confusion_cell(truth: np.ndarray, labels: np.ndarray, names: list[str], confusion: np.ndarray) -> Marked:
    """Pixels of class a predicted as b: click a cell of the table, or use the two pickers below it.

    A newly clicked cell (row = true class, column = predicted class) sets the pickers; after that the
    pickers can be changed freely until another cell is clicked."""
    table = {"truth ↓": list(names)} | {name: confusion[:, k].tolist() for k, name in enumerate(names)}
    columns = {"truth ↓": st.column_config.TextColumn("truth ↓", width=90, help="true class (ground truth)")}
    columns |= {name: st.column_config.NumberColumn(name, width=50, help=f"predicted as {safe_text.md(name)}") for name in names}
    event = st.dataframe(table, hide_index=True, key=state.CONFUSION_TABLE, on_select="rerun",
                         selection_mode="single-cell", column_config=columns)
    cells = list(((event or {}).get("selection") or {}).get("cells") or [])
    if cells:
        row, column = cells[-1][0], cells[-1][1]
        cell = (row, column)
        if cell != state.get(state.CONFUSION_CELL) and isinstance(row, int) and 0 <= row < len(names) \
                and column in names:
            st.session_state[state.ERROR_TRUE] = row
            st.session_state[state.ERROR_PRED] = names.index(column)
        state.put(state.CONFUSION_CELL, cell)
    if (st.session_state.get(state.ERROR_TRUE) not in range(len(names))
            or st.session_state.get(state.ERROR_PRED) not in range(len(names))):
        default = quality.largest_confusion(confusion, ignore=_background(names)) or (0, 0)
        st.session_state[state.ERROR_TRUE], st.session_state[state.ERROR_PRED] = default
    true_col, pred_col = st.columns(2)
    a = true_col.selectbox("True class", range(len(names)), key=state.ERROR_TRUE, format_func=names.__getitem__)
    b = pred_col.selectbox("Predicted as", range(len(names)), key=state.ERROR_PRED, format_func=names.__getitem__)
    st.caption(f"Pixel counts (rows: ground truth, columns: prediction). Click a cell, or pick the pair: "
               f"{int(confusion[a, b])} px of **{safe_text.md(names[a])}** predicted as **{safe_text.md(names[b])}**.")
    return Marked(quality.confused_pixels(truth, labels, a, b, names),
                  f"pixels of '{names[a]}' predicted as '{names[b]}'")


def region_class(region: np.ndarray, labels: np.ndarray, names: list[str]) -> int:
    """The class a new region explains by default: the one predicted most often inside it (background left
    out when the model has one)."""
    return regions.dominant_class(region, labels, ignore=_background(names))


def _background(names: list[str]) -> tuple[int, ...]:
    """Class 0 when it is the background: defaults prefer the objects over it."""
    return (0,) if names and names[0] == "background" else ()


def _apply_injection(marked: Marked, drawing: canvas.Drawing | None) -> Marked:
    """A region handed in through `state.INJECTED_REGION` (the dataset page, tests) wins until the next new
    drawing replaces it."""
    drawn = None if drawing is None or drawing.empty else compute.digest(drawing.rgba[..., 3] > 0)
    is_new_drawing = drawn is not None and drawn != state.get(state.LAST_DRAWING)
    state.put(state.LAST_DRAWING, drawn)
    if state.INJECTED_REGION in st.session_state:
        if is_new_drawing:
            del st.session_state[state.INJECTED_REGION]
        else:
            injected: Any = st.session_state[state.INJECTED_REGION]
            return Marked(np.asarray(injected), "injected region")
    return marked


def described(how: str, class_name: str) -> str:
    """The region as the caption names it: "the drawing", or "the pixels of cap in the whole image"
    when "Only pixels of the class" keeps part of it."""
    if state.get(state.RESTRICT):
        return f"the pixels of {class_name} in the {how}"
    return f"the {how}"


def finish(marked: Marked, labels: np.ndarray, names: list[str], class_index: int) -> tuple[np.ndarray | None, str | None]:
    """The region to explain: the marked one, optionally restricted to the explained class, checked.

    Returns (region, None), (None, None) while nothing is marked, or (None, message) when it cannot be
    explained (the message comes from `regions.check_region` and says what to change).
    """
    if marked.error is not None:
        return None, marked.error
    if marked.region is None:
        return None, None
    restrict = bool(state.get(state.RESTRICT))
    try:
        chosen = regions.restrict_to_class(marked.region, labels, class_index) if restrict else marked.region
        return regions.check_region(chosen, labels.shape, class_name=names[class_index] if restrict else None), None
    except ExplainerError as error:
        return None, str(error)
