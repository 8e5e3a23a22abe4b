"""The drawing canvas: our sketch pad component (`dashboard/frontend/sketch.js`) and what it sends, read as arrays.

Why our own component: streamlit-drawable-canvas held each stroke back for a fixed 200 ms after
mouse-up and PNG-encoded the canvas for every send (see docs/DESIGN.md). The sketch pad is a
Streamlit components-v2 frontend in plain JavaScript that sends the finished shapes at once, as
geometry in canvas pixels; `read` checks that geometry (the browser side can be tampered with) and
`shapes_rgba` fills it into a picture at canvas size. Turning that into a region is
`explainers.regions`' job.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from dashboard import components

POINT_RADIUS = 4
MAX_SHAPES = 2_000
MAX_COORDINATES = 200_000  # numbers in one send: a long free-hand session stays far below this
KINDS = ("stroke", "rect", "polygon", "point")

MALFORMED = "The canvas sent a drawing this page cannot read; it was ignored. Clear the drawing and draw again."


@dataclass(frozen=True)
class Drawing:
    """What the user drew: `rgba` at canvas size (alpha > 0 = drawn; None before any drawing), the
    centres (x, y) of the points placed in point mode and the corners of each closed polygon, in canvas
    pixels, oldest first. `message` says when what the browser sent was unreadable (then ignored)."""

    rgba: np.ndarray | None
    points: list[tuple[float, float]] = field(default_factory=list)
    polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    message: str | None = None

    @property
    def empty(self) -> bool:
        return self.rgba is None or not bool((self.rgba[..., 3] > 0).any())


@dataclass(frozen=True)
class Shape:
    """One finished shape in canvas pixels: `kind` (one of KINDS), `points` [(x, y), ...] (a rectangle's
    two opposite corners, a point's centre) and `width` (a stroke's width, a point's radius)."""

    kind: str
    points: list[tuple[float, float]]
    width: float = 0.0


def background_url(background: np.ndarray) -> str:
    """`background` (uint8 RGB) as a PNG data URL, encoded once per picture (the page caches it)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(background, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def draw(background: str, size: tuple[int, int], key: str, tool: str, stroke_width: int,
         saved: object = None, restore: bool = False) -> tuple[Drawing, object]:
    """Show the sketch pad (`size` = (width, height)) over `background` (a `background_url`); return the
    current drawing and the pad's raw value (to hand back as `saved` next time).

    The pad has undo, redo and clear; a new `key` gives an empty pad. A pad mounted again under the
    same key (the user left the draw mode and came back) starts from `saved`, so what it shows is
    what the maps explain (`restore`: the caller knows the pad was not on the page in its last run)."""
    width, height = size
    data = {"width": int(width), "height": int(height), "background": background, "tool": tool,
            "strokeWidth": int(stroke_width), "pointRadius": POINT_RADIUS, "resetKey": key,
            "initial": saved if restore else None}
    pad = components.declare("sketch", "sk-root")
    result = pad(data=data, key=key, default={"shapes": saved}, on_shapes_change=lambda: None,
                 width="content", height="content")
    value = result.get("shapes") if hasattr(result, "get") else None
    return read(value, (int(height), int(width))), value


def read(value: object, size: tuple[int, int]) -> Drawing:
    """The drawing from what the pad sent (`{"shapes": [...], "version": n}` or None), at `size`
    (height, width). Anything malformed gives an empty drawing and a message, never an exception."""
    if value is None:
        return Drawing(rgba=None)
    try:
        shapes = parse_shapes(value)
    except (TypeError, ValueError, OverflowError):
        return Drawing(rgba=None, message=MALFORMED)
    return Drawing(rgba=shapes_rgba(shapes, size),
                   points=[s.points[0] for s in shapes if s.kind == "point"],
                   polygons=[s.points for s in shapes if s.kind == "polygon"])


def parse_shapes(value: object) -> list[Shape]:
    """The shapes in what the pad sent; TypeError/ValueError when it is not what the pad sends."""
    if not isinstance(value, dict) or not isinstance(value.get("shapes", []), list):
        raise TypeError("not a sketch pad value")
    raw_shapes = value.get("shapes") or []
    if len(raw_shapes) > MAX_SHAPES:
        raise ValueError("too many shapes")
    shapes, numbers = [], 0
    for raw in raw_shapes:
        if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
            raise TypeError("not a shape")
        kind = raw["kind"]
        if kind == "rect":
            x, y, w, h = (_number(raw.get(k)) for k in ("x", "y", "w", "h"))
            if w < 0 or h < 0:
                raise ValueError("negative rectangle")
            shapes.append(Shape(kind, [(x, y), (x + w, y + h)]))
            continue
        if kind == "point":
            shapes.append(Shape(kind, [(_number(raw.get("x")), _number(raw.get("y")))], _size(raw.get("r"))))
            continue
        flat = raw.get("points")
        if not isinstance(flat, list) or len(flat) % 2 or not flat:
            raise TypeError("points are not a flat list of x, y pairs")
        numbers += len(flat)
        if numbers > MAX_COORDINATES:
            raise ValueError("too many coordinates")
        values = [_number(v) for v in flat]
        points = list(zip(values[0::2], values[1::2], strict=True))
        if kind == "polygon":
            if len(points) < 3:
                raise ValueError("a polygon needs three corners")
            shapes.append(Shape(kind, points))
        else:
            shapes.append(Shape(kind, points, _size(raw.get("width"))))
    return shapes


def shapes_rgba(shapes: list[Shape], size: tuple[int, int]) -> np.ndarray:
    """The shapes filled on a transparent RGBA picture of `size` (height, width), as the pad shows them:
    strokes with round ends and joins, rectangles and closed polygons filled, points as discs."""
    height, width = size
    picture = Image.new("RGBA", (int(width), int(height)), (0, 0, 0, 0))
    pen = ImageDraw.Draw(picture)
    ink = (255, 255, 255, 255)
    for shape in shapes:
        if shape.kind == "rect":
            (x0, y0), (x1, y1) = shape.points
            pen.rectangle((x0, y0, x1, y1), fill=ink)
        elif shape.kind == "polygon":
            pen.polygon(shape.points, fill=ink)
        elif shape.kind == "point":
            _disc(pen, shape.points[0], shape.width, ink)
        else:
            if len(shape.points) > 1:
                pen.line(shape.points, fill=ink, width=max(int(round(shape.width)), 1), joint="curve")
            for end in {shape.points[0], shape.points[-1]}:
                _disc(pen, end, shape.width / 2, ink)  # round caps (a click is a dot)
    return np.asarray(picture)


def _disc(pen: ImageDraw.ImageDraw, centre: tuple[float, float], radius: float, ink: tuple[int, ...]) -> None:
    x, y = centre
    pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    number = float(value)
    if not np.isfinite(number) or abs(number) > 1e6:
        raise ValueError("not a finite canvas coordinate")
    return number


def _size(value: object) -> float:
    number = _number(value)
    if not 0 <= number <= 1_000:
        raise ValueError("not a stroke width")
    return number
