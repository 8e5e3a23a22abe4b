"""A view that can be shared: the comparison on screen kept in the page's URL (`st.query_params`).

The loop writes, after each run that shows maps, the image (sample name, or an upload's digest), the
region (its mode and, for a drawing, the canvas's shapes), the class, the layer and the methods into
the address bar (`publish`); a new session opened on such an address (a reload, a shared link) puts
them back before the page is drawn (`restore`). An upload lives only in the session that received
it: a link to one says that the image is gone and shows a sample instead.

Parameters: `image` ("sample:<name>", "upload:<digest>", …), `mode` (a region mode), `region` (the
drawing: the canvas objects' geometry as JSON, zlib-compressed, base64url), `rclass` / `row` and `col`
(whole-class and component modes), `only` ("1": only pixels of the class), `class`, `layer`, `methods`
(comma-separated method keys).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

import streamlit as st

from dashboard import canvas, state
from explainers import registry

MAX_REGION_CHARS = 6_000  # a longer drawing is not put into the URL (browsers and proxies cut long addresses)
GEOMETRY = ("type", "left", "top", "width", "height", "originX", "originY", "scaleX", "scaleY", "angle", "flipX",
            "flipY", "skewX", "skewY", "strokeWidth", "strokeUniform", "radius", "x1", "y1", "x2", "y2", "path",
            "points")
RESTORED = "share_restored"  # set once the URL of the session's first run was applied
MESSAGE = "share_message"  # what could not be restored (an upload that is gone), shown over the loop
MESSAGE_FOR = "share_message_for"  # digest of the image shown instead
PENDING_CLASS = "share_class"  # the link's class, kept until its region is there (a new region resets the class)


def encode_drawing(drawing: dict | None) -> str | None:
    """The geometry of a canvas drawing (the library's JSON) as a short URL-safe string (None: nothing drawn)."""
    objects = (drawing or {}).get("objects") or []
    if not objects:
        return None
    slim = [{k: _rounded(obj[k]) for k in GEOMETRY if k in obj} for obj in objects if isinstance(obj, dict)]
    text = json.dumps(slim, separators=(",", ":"))
    return base64.urlsafe_b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii").rstrip("=")


def decode_drawing(text: str) -> dict | None:
    """The canvas drawing of `encode_drawing`'s string, with the page's colours; None when it is not one
    (anything malformed is refused by `canvas.parse_shapes`, never run or drawn)."""
    try:
        raw = zlib.decompressobj().decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), 1_000_000)
        objects = json.loads(raw.decode("utf-8"))
        drawing = {"version": "7.4.0", "objects": [_coloured(obj) for obj in objects]}
        canvas.parse_shapes(drawing)
    except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError,
            RecursionError):
        return None
    return drawing


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _coloured(obj: dict) -> dict:
    """A geometry-only object made drawable again: the page's ink and fill (paths and lines unfilled)."""
    if not isinstance(obj, dict):
        raise TypeError("not an object")
    stroked = obj.get("type") in ("Path", "Line", "Polyline")
    extra = {"stroke": canvas.INK, "fill": None if stroked else canvas.FILL}
    if obj.get("type") == "Path":
        extra |= {"strokeLineCap": "round", "strokeLineJoin": "round"}
    return {**obj, **extra}


def image_param(choice: dict[str, Any]) -> str:
    if choice.get("source") == "sample":
        return f"sample:{choice['name']}"
    return f"{choice.get('source', 'upload')}:{choice['digest']}"


def publish(choice: dict[str, Any], mode: str, canvas_id: str, class_index: int, layer: str,
            methods: list[str]) -> None:
    """Put the comparison on screen into the URL (only when it changed: each write is a message)."""
    params = {"image": image_param(choice), "mode": mode, "class": str(int(class_index)), "layer": layer,
              "methods": ",".join(methods)}
    if mode == "draw":
        drawing = (state.get(state.PAD_SHAPES) or {}).get(f"canvas-{canvas_id}-draw")
        encoded = encode_drawing(drawing)
        if encoded and len(encoded) <= MAX_REGION_CHARS:
            params["region"] = encoded
    elif mode == "class" and st.session_state.get(state.REGION_CLASS) is not None:
        params["rclass"] = str(int(st.session_state[state.REGION_CLASS]))
    elif mode == "component" and st.session_state.get(state.CLICK_ROW) is not None:
        params["row"], params["col"] = (str(int(st.session_state[k])) for k in (state.CLICK_ROW, state.CLICK_COL))
    if state.get(state.RESTRICT):
        params["only"] = "1"
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)
    # said until the user picks another image
    if MESSAGE in st.session_state and st.session_state.setdefault(MESSAGE_FOR, choice["digest"]) != choice["digest"]:
        del st.session_state[MESSAGE]


def restore(choose_sample: Any) -> None:
    """Apply the URL of the session's first run (a reload or a shared link), once; later runs keep the
    user's choices. `choose_sample(name)` makes a sample the current image (the sidebar's callback)."""
    from models import scenes

    sample_names = scenes.sample_names()
    if st.session_state.get(RESTORED):
        return
    st.session_state[RESTORED] = True
    params = dict(st.query_params)
    if not params:
        return
    image = params.get("image", "")
    source, _, name = image.partition(":")
    if source == "sample" and name in sample_names:
        choose_sample(name)
    elif image:
        what = {"upload": "an uploaded image", "scene": "a generated scene", "dataset": "a dataset image"}.get(
            source, "an image")
        st.session_state[MESSAGE] = (f"The link showed {what} (`{name[:12] or image[:12]}`) that this session does not "
                                     "have: uploads stay with the session that received them. Upload it again to see "
                                     "that comparison; the page shows a sample scene meanwhile.")
    mode = params.get("mode")
    if mode in state.REGION_MODES:
        st.session_state[state.REGION_MODE] = mode
    if mode == "draw" and params.get("region"):
        drawing = decode_drawing(params["region"])
        if drawing is None:
            st.session_state[MESSAGE] = "The link's drawing could not be read; draw the region again."
        else:
            st.session_state[state.LOAD_DRAWING] = drawing
    for key, param in ((state.REGION_CLASS, "rclass"), (state.CLICK_ROW, "row"), (state.CLICK_COL, "col"),
                       (PENDING_CLASS, "class")):
        if params.get(param, "").isdigit():
            st.session_state[key] = int(params[param])
    if PENDING_CLASS in st.session_state:
        st.session_state[state.CLASS] = st.session_state[PENDING_CLASS]
    st.session_state[state.RESTRICT] = params.get("only") == "1"
    if params.get("layer"):
        st.session_state[state.LAYER] = params["layer"]  # an unknown layer falls back to the default
    methods = [m for m in params.get("methods", "").split(",") if m in registry.ALL_METHODS]
    if methods:
        st.session_state[state.METHODS] = methods


def apply_pending_class(region_ready: bool) -> None:
    """The link's class wins over the default a new region sets, once that region is there."""
    if PENDING_CLASS in st.session_state:
        st.session_state[state.CLASS] = st.session_state[PENDING_CLASS]
        if region_ready:
            del st.session_state[PENDING_CLASS]


def message() -> str | None:
    return st.session_state.get(MESSAGE)
