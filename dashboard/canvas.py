"""The drawing canvas: the only module that touches `streamlit_drawable_canvas`.

The component can only be imported inside a running app (or AppTest), so the import happens inside
`draw`. What the page needs from a drawing is returned as plain arrays and numbers; turning them into
a region is `explainers.regions`' job.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

STROKE_COLOR = "#ffffff"
FILL_COLOR = "rgba(255, 255, 255, 0.35)"
POINT_RADIUS = 4


MALFORMED = "The canvas sent a drawing this page cannot read; it was ignored. Clear the drawing and draw again."


@dataclass(frozen=True)
class Drawing:
    """What the user drew: `rgba` at canvas size (alpha > 0 = drawn; None before any drawing), the
    centres (x, y) of the points placed in point mode and the corners of each closed polygon, in canvas
    pixels, oldest first. `message` says when part of what the browser sent was unreadable (ignored)."""

    rgba: np.ndarray | None
    points: list[tuple[float, float]] = field(default_factory=list)
    polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    message: str | None = None

    @property
    def empty(self) -> bool:
        return self.rgba is None or not bool((self.rgba[..., 3] > 0).any())


def background_url(background: np.ndarray) -> str:
    """`background` (uint8 RGB) as a PNG data URL, the form the component takes without re-encoding it.

    Handing the component a PIL image makes it PNG-encode the picture on every rerun (a stroke's
    rerun included); the page encodes it once per picture and caches the URL."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(background, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def draw(background: str, size: tuple[int, int], key: str, tool: str, stroke_width: int) -> Drawing:
    """Show the canvas (`size` = (width, height)) over `background` (a `background_url`) and return the
    current drawing.

    The toolbar of the component gives undo, redo and clear; a new `key` gives an empty canvas.
    """
    from streamlit_drawable_canvas import st_canvas  # only importable inside a running app

    width, height = size
    result = st_canvas(
        fill_color=FILL_COLOR,
        stroke_width=stroke_width,
        stroke_color=STROKE_COLOR,
        background_image=background,
        update_streamlit=True,
        height=height,
        width=width,
        drawing_mode=tool,
        point_display_radius=POINT_RADIUS,
        return_image_data=True,
        key=key,
    )
    return read(getattr(result, "image_data", None), getattr(result, "json_data", None))


def read(image_data: object, json_data: object) -> Drawing:
    """The drawing from what the component returned; anything malformed is dropped with a message.

    The browser side can be tampered with, so nothing here trusts the shapes or types it sends."""
    message = None
    rgba = None
    if image_data is not None:
        try:
            rgba = np.asarray(image_data)
            if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype.kind not in "uif" or rgba.size > 64_000_000:
                rgba, message = None, MALFORMED
        except (TypeError, ValueError):
            rgba, message = None, MALFORMED
    try:
        points = point_centres(json_data)
        polygons = closed_polygons(json_data)
    except (TypeError, ValueError, AttributeError, OverflowError):
        points, polygons, message = [], [], MALFORMED
    return Drawing(rgba=rgba, points=points, polygons=polygons, message=message)


def _objects(json_data: object) -> list[dict]:
    if json_data is None:
        return []
    if not isinstance(json_data, dict):
        raise TypeError("canvas JSON is not an object")
    objects = json_data.get("objects", []) or []
    if not isinstance(objects, list):
        raise TypeError("canvas objects are not a list")
    return [obj for obj in objects if isinstance(obj, dict)]


def _number(value: object, default: float = 0.0) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError("not a number")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError("not a finite number")
    return number


def point_centres(json_data: dict | None) -> list[tuple[float, float]]:
    """Centres (x, y) of the circles the point tool placed, from the canvas' Fabric.js JSON.

    Fabric reports `left`/`top` of the bounding box (stroke included) for the origin it names, so the
    centre is the origin plus half the box when the origin is "left"/"top". Malformed JSON raises
    TypeError or ValueError (see `read`).
    """
    centres: list[tuple[float, float]] = []
    for obj in _objects(json_data):
        if str(obj.get("type", "")).lower() != "circle":
            continue
        centres.append((_centre(obj, "left", "originX", "width", "scaleX"),
                        _centre(obj, "top", "originY", "height", "scaleY")))
    return centres


def closed_polygons(json_data: dict | None) -> list[list[tuple[float, float]]]:
    """Corners (x, y) of each closed polygon in the canvas JSON (open ones are not in it)."""
    polygons = []
    for obj in _objects(json_data):
        if str(obj.get("type", "")).lower() != "polygon":
            continue
        corners = obj.get("points") or []
        if not isinstance(corners, list):
            raise TypeError("polygon points are not a list")
        points = [(_number(p.get("x")), _number(p.get("y"))) for p in corners if isinstance(p, dict)]
        if len(points) >= 3:
            polygons.append(points)
    return polygons


def polygons_rgba(polygons: list[list[tuple[float, float]]], size: tuple[int, int]) -> np.ndarray:
    """The closed polygons filled on a transparent RGBA canvas of `size` (height, width)."""
    height, width = size
    picture = Image.new("RGBA", (int(width), int(height)), (0, 0, 0, 0))
    pen = ImageDraw.Draw(picture)
    for points in polygons:
        pen.polygon(points, fill=(255, 255, 255, 255))
    return np.asarray(picture)


def _centre(obj: dict, pos: str, origin: str, size: str, scale: str) -> float:
    extent = (_number(obj.get(size, 0)) + (_number(obj.get("strokeWidth", 0)) or 0.0)) * (
        _number(obj.get(scale, 1), 1.0) or 1.0)
    shift = {"left": 0.5, "top": 0.5, "center": 0.0, "right": -0.5, "bottom": -0.5}.get(str(obj.get(origin, "left")),
                                                                                            0.5)
    return _number(obj.get(pos, 0)) + shift * extent
