"""Session-state keys of the dashboard and their defaults, in one place.

Every `st.session_state` entry the page reads or writes is named by a constant here, so a test can
set up a situation without knowing how the page is built. Keys of widgets are the widget `key=`.

Inputs handed to the page from outside its widgets (read by the page, never written by it except to
drop them): no test hook runs in the page; tests use these public inputs, and AppTest's lack of
looks at the slow maps is made up for on the test side (`tests/conftest.py`, `finish_slow_maps`).

- `INJECTED_REGION` (``"injected_region"``): a boolean H×W NumPy array at the model's input size, the
  way the dataset page hands a batch run's region to the main view (and tests give one). While present
  it is the region to explain, whatever the region mode; the next drawing on the canvas replaces it
  (the page then deletes the key). An all-False array exercises the "empty region" message.
- `LOAD_DRAWING` (``"load_drawing"``): a drawing in streamlit-drawable-canvas's JSON (``{"objects":
  [...]}`` in canvas pixels, `region.CANVAS_SIZE` on the longest side). The next run puts it on the draw
  mode's canvas (which it mounts anew, starting from it) and drops the key: what a shared link or the
  dataset page do, and how tests draw. Not a hook: the same path as a user's drawing from there on.
- `option_key(method, field)`: the key of a method's setting in the "Method settings" expander (e.g.
  XRAI's steps and algorithm); set them before the first run (e.g. 5 steps, "fast") to keep the slow
  methods cheap in `AppTest`. They default to the options class's defaults (XRAI: 100 / "full").

Read back after a run (the page's outputs: it writes them on every run for whoever drives it, the tests or a
script using AppTest; the page itself reads none of them back):

- `RESULTS`: ``{method: explainers.Explanation}`` of the maps on screen (empty when none).
- `RESULT_ERROR`: the message shown instead of the maps (``None`` when the maps were drawn).
- `REQUEST`: the `comparison.Request` of the maps on screen (``None`` when none).
- `FAITHFULNESS`: ``{method: explainers.faithfulness.Faithfulness}`` including ``"random"``, of the maps on
  screen, once the faithfulness section is switched on (empty otherwise).
- `OVERVIEW`: ``{class index: explainers.Explanation}`` of the class overview (empty until switched on).

Each constant below is defined once: the keys by section, then the choices, then `DEFAULTS` and the widgets
whose values are kept while hidden (`_KEEP_WHEN_HIDDEN`).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from explainers import registry

# Model (sidebar)
MODEL_CHOICE = "model_choice"  # {"kind": "default"} or {"kind": "upload", "name", "digest", "path"}
MODEL_UPLOAD = "model_upload"  # file_uploader widget
MODEL_MESSAGE = "model_message"  # one-line reason the last uploaded model was refused, or None

# Image (sidebar)
SAMPLE = "sample"  # gallery selectbox widget (sample name)
IMAGE_CHOICE = "image_choice"  # {"source": "sample"|"upload"|"scene"|"dataset", "name", "digest", "pixels": uint8
#   H×W×3; optional "truth" (ground truth), and for "dataset" "batch_output": (run folder, output name)}
IMAGE_UPLOAD = "image_upload"  # file_uploader widget
IMAGE_MESSAGE = "image_message"  # why the last uploaded file was refused, or None

# Advanced settings (sidebar expander)
TARGET = "target"  # "logits" | "probabilities"
OPTION_PREFIX = "option"  # a method's setting: "option.<method>.<field>" (`option_key`)

# Working size of a free-size model: longest side and fit, shown only for such models
WORKING_LONGEST = "working_longest"  # longest side in px the network works at (never above the image's)
WORKING_FIT = "working_fit"  # one of WORKING_FITS

# Region
REGION_MODE = "region_mode"  # one of REGION_MODES
DRAW_TOOL = "draw_tool"  # one of DRAW_TOOLS
STROKE_WIDTH = "stroke_width"
LAST_DRAWING = "last_drawing"  # digest of the last canvas drawing seen (detects a new drawing)
PAD_SHAPES = "pad_shapes"  # {canvas key: the canvas's last Fabric.js JSON}: a canvas mounted again starts from it
PAD_INITIAL = "pad_initial"  # {canvas key: the `initial_drawing` it was mounted with} (kept while it is shown)
PAD_SHOWN = "pad_shown"  # the component key of the canvas the last run showed (None: no canvas)
PAD_GENERATION = "pad_generation"  # bumped by each loaded drawing: part of the canvas's key (a fresh mount)
OPENED_NOTE = "opened_note"  # what the dataset page opened in the main view: said once on the main page
LOAD_DRAWING = "load_drawing"  # a Fabric.js drawing ({"objects": [...]}) to put on the draw canvas (see above)
LAST_CLICK = "last_click"  # (canvas key, x, y) of the last point used for the component mode
CLICK_ROW = "click_row"
CLICK_COL = "click_col"
REGION_CLASS = "region_class"  # class of the "whole class" preset
RESTRICT = "restrict"  # keep only the region's pixels predicted as the explained class
INJECTED_REGION = "injected_region"  # a region handed to the page (dataset page, tests): see the module docstring

# Segmentation quality: ground truth, error regions (region mode "errors")
LABEL_UPLOAD = "label_upload"  # file_uploader widget of the ground-truth label PNG
LABEL_MESSAGE = "label_message"  # why the last label file was refused, or None
ERROR_VIEW = "error_view"  # colouring of the error overlay: "all" or a class index
ERROR_KIND = "error_kind"  # one of ERROR_KINDS (region mode "errors")
ERROR_CLASS = "error_class"  # class of the false-positive / false-negative preset
ERROR_TRUE = "error_true"  # true class of the "a predicted as b" preset
ERROR_PRED = "error_pred"  # predicted class of the "a predicted as b" preset
CONFUSION_TABLE = "confusion_table"  # dataframe whose cell selection sets ERROR_TRUE / ERROR_PRED
CONFUSION_CELL = "confusion_cell"  # last table cell applied to the pickers (a new click wins over them)

# The tabs under the loop that depend on the image only; only the open one is computed and sent
IMAGE_TAB = "image_tab"  # label of the open tab (one of IMAGE_TABS)
IMAGE_TABS = ("Ground truth and errors", "Class overview", "Sample gallery", "Image browser (worst first)")

# Image browser: generated scenes, or a batch run with labels
BROWSER_ON = "browser_on"  # toggle: compute the browser's table
BROWSER_SOURCE = "browser_source"  # one of BROWSER_SOURCES
BROWSER_FOLDER = "browser_folder"  # text input: the batch results folder (under the dataset page's root)
BROWSER_SEED = "browser_seed"
BROWSER_COUNT = "browser_count"  # one of BROWSER_COUNTS
BROWSER_TABLE = "browser_table"  # dataframe whose row selection loads a scene
BROWSER_PICK = "browser_pick"  # selectbox of the scene to use (index into the batch)

# Explanation
CLASS = "class_index"  # explained class (selectbox of class indices)
CLASS_FOR_REGION = "class_for_region"  # digest of the region the class default was taken from
LAYER = "layer"
METHODS = "methods"
SWEEP = "sweep_on"
SCORE_CHOICE = "score_choice_on"  # measure Grad-CAM++ on the region sum too (one more pass per map set)

# The loop view: display of the maps, the request on screen, export on demand
OPACITY = "map_opacity"  # heat opacity over the image, 0 … 1
MAP_SCALE = "map_scale"  # "own" (each map ÷ its own maximum) | "common" (one scale for maps sharing units)
SHOWN = "shown"  # `loop.Shown` (request, maps, how the region was marked) the sections under the loop draw from
SECTIONS_FRAGMENT = "segexplain-sections"  # key of the fragment of tabs under the loop (agreement … export)
EXPORT_FOR = "export_for"  # the request key the prepared downloads belong to (None until asked)
WAKE_LOOK = "wake_look"  # key of the progress bar whose timer asked for this run (`wake.looked`)
LOOP_FRAGMENT = "segexplain-loop"  # key of the loop's fragment: a finished slow map reruns it (not the app)

# Faithfulness and class overview (sections under the loop)
FAITHFULNESS_ON = "faithfulness_on"  # toggle of the faithfulness section
FAITHFULNESS_TARGET = "faithfulness_target"  # score of the curves: one of FAITHFULNESS_TARGETS
OVERVIEW_ON = "overview_on"  # toggle of the class overview
OVERVIEW_METHOD = "overview_method"

# The page's outputs, read back after a run (see the module docstring)
RESULTS = "results"
RESULT_ERROR = "result_error"
REQUEST = "request"
FAITHFULNESS = "faithfulness"
OVERVIEW = "overview"

# Choices
REGION_MODES = ("draw", "class", "component", "image", "errors")
REGION_MODE_LABELS = {
    "draw": "Draw",
    "class": "Whole class",
    "component": "Component at a pixel",
    "image": "Whole image",
    "errors": "Error region",
}
DRAW_TOOLS = ("freedraw", "rect", "circle", "polygon", "line", "point")
DRAW_TOOL_LABELS = {"freedraw": "Free hand", "rect": "Rectangle", "circle": "Circle", "polygon": "Polygon",
                    "line": "Line", "point": "Points"}
TARGETS = ("logits", "probabilities")
FAITHFULNESS_TARGETS = ("probabilities", "logits")
ERROR_KINDS = ("fp", "fn", "confusion")
ERROR_KIND_LABELS = {"fp": "False positives of", "fn": "False negatives of", "confusion": "Class a predicted as b"}
BROWSER_COUNTS = (24, 48, 96)
BROWSER_SOURCES = ("scenes", "batch")
BROWSER_SOURCE_LABELS = {"scenes": "Generated scenes", "batch": "Batch run with labels"}
WORKING_FITS = ("pad", "stretch", "crop")

DEFAULTS: dict[str, Any] = {
    MODEL_CHOICE: {"kind": "default"},
    MODEL_MESSAGE: None,
    IMAGE_CHOICE: None,
    IMAGE_MESSAGE: None,
    TARGET: "logits",
    WORKING_LONGEST: 512,
    WORKING_FIT: "pad",
    REGION_MODE: "draw",
    DRAW_TOOL: "freedraw",
    STROKE_WIDTH: 18,
    LAST_DRAWING: None,
    PAD_SHAPES: None,
    PAD_INITIAL: None,
    PAD_GENERATION: 0,
    PAD_SHOWN: None,
    LAST_CLICK: None,
    RESTRICT: False,
    LABEL_MESSAGE: None,
    ERROR_VIEW: "all",
    ERROR_KIND: "fp",
    BROWSER_ON: False,
    BROWSER_SOURCE: "scenes",
    BROWSER_SEED: 0,
    BROWSER_COUNT: 48,
    CLASS_FOR_REGION: None,
    SWEEP: False,
    SCORE_CHOICE: False,
    OPACITY: 0.55,
    MAP_SCALE: "own",
    SHOWN: None,
    EXPORT_FOR: None,
    FAITHFULNESS_ON: False,
    FAITHFULNESS_TARGET: "probabilities",
    OVERVIEW_ON: False,
    OVERVIEW_METHOD: registry.DEFAULT_METHODS[0],
    RESULTS: {},
    RESULT_ERROR: None,
    REQUEST: None,
    FAITHFULNESS: {},
    OVERVIEW: {},
}


# Widgets that are hidden in some situations (e.g. the drawing tool outside the "Draw" mode).
# Streamlit forgets the state of a widget that was not drawn in a run; writing the value back at
# the top of each run keeps the user's choice for when the widget comes back.
_KEEP_WHEN_HIDDEN = (DRAW_TOOL, STROKE_WIDTH, REGION_CLASS, CLICK_ROW, CLICK_COL, CLASS, LAYER, METHODS, TARGET,
                     SWEEP, SCORE_CHOICE, SAMPLE, WORKING_LONGEST, WORKING_FIT,
                     ERROR_VIEW, ERROR_KIND, ERROR_CLASS, ERROR_TRUE, ERROR_PRED,
                     BROWSER_ON, BROWSER_SOURCE, BROWSER_FOLDER, BROWSER_SEED, BROWSER_COUNT, BROWSER_PICK,
                     OPACITY, MAP_SCALE, FAITHFULNESS_ON, FAITHFULNESS_TARGET, OVERVIEW_ON, OVERVIEW_METHOD)


def init() -> None:
    """Fill in the defaults that are missing (values set by the user or a test are kept)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value.copy() if isinstance(value, dict) else value
    for key in _KEEP_WHEN_HIDDEN:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    for key, value in _option_defaults().items():  # the methods' settings: shown only for the chosen methods
        st.session_state[key] = st.session_state.get(key, value)


def option_key(method: str, field: str) -> str:
    """The session key of one method's setting (its widget's key): the one place these keys are made."""
    return f"{OPTION_PREFIX}.{method}.{field}"


def get_option(method: str, field: str, default: Any = None) -> Any:
    return st.session_state.get(option_key(method, field), default)


def _option_defaults() -> dict[str, Any]:
    from dashboard import method_settings  # it reads keys from here

    return method_settings.defaults()


def get(key: str) -> Any:
    return st.session_state.get(key, DEFAULTS.get(key))


def put(key: str, value: Any) -> None:
    st.session_state[key] = value
