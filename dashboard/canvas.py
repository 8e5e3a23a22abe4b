"""The drawing canvas: streamlit-drawable-canvas, read through its Fabric.js JSON as arrays.

The canvas (`st_canvas`) is asked for its `json_data` only (`return_image_data=False`: nothing is
PNG-encoded in the browser); `read` checks that JSON (the browser side can be tampered with) and
`shapes_rgba` fills each object's geometry into a picture at canvas size, applying the object's own
transform (moved, scaled or rotated in the library's edit mode) the way Fabric.js does. Turning that
picture into a region is `explainers.regions`' job.

The library registers its component when it is imported, which only works inside a running app (or
AppTest): `draw` imports it, this module's other functions are plain NumPy/PIL.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

POINT_RADIUS = 4  # radius of a point in point mode (canvas pixels)
SHAPE_STROKE = 2  # outline width of rectangles, circles, polygons and points
INK = "rgba(255, 255, 255, 0.85)"
FILL = "rgba(255, 255, 255, 0.35)"
MAX_SHAPES = 2_000
MAX_COORDINATES = 200_000  # numbers in one send: a long free-hand session stays far below this
KINDS = ("Path", "Rect", "Circle", "Line", "Polygon", "Polyline")  # Fabric.js types the page's modes draw
CURVE_STEPS = 8  # points per quadratic/cubic segment of a free-hand path

MALFORMED = "The canvas sent a drawing this page cannot read; it was ignored. Clear the drawing and draw again."


@dataclass(frozen=True)
class Drawing:
    """What the user drew: `rgba` at canvas size (alpha > 0 = drawn; None before any drawing) and the
    centres (x, y) of the circles (points of the point mode) in canvas pixels, oldest first.
    `message` says when what the browser sent was unreadable (then ignored)."""

    rgba: np.ndarray | None
    points: list[tuple[float, float]] = field(default_factory=list)
    message: str | None = None

    @property
    def empty(self) -> bool:
        return self.rgba is None or not bool((self.rgba[..., 3] > 0).any())


@dataclass(frozen=True)
class Shape:
    """One object in canvas pixels: `outline` [(x, y), ...] after the object's transform, `closed`
    (filled inside: rectangles, circles, polygons, closed paths), `width` (the painted stroke's width)
    and `round` (round caps: free-hand strokes). `centre` is a circle's centre (None otherwise)."""

    outline: list[tuple[float, float]]
    closed: bool
    width: float
    round: bool = False
    centre: tuple[float, float] | None = None


def background_url(background: np.ndarray) -> str:
    """`background` (uint8 RGB) as a PNG data URL, encoded once per picture (the page caches it)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(background, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def draw(background: str, size: tuple[int, int], key: str, tool: str, stroke_width: int,
         initial: dict | None = None) -> tuple[Drawing, dict | None]:
    """Show the canvas (`size` = (width, height)) over `background` (a `background_url`) in drawing
    mode `tool`; return the current drawing and the library's JSON of it.

    `initial` is the library's `initial_drawing`: the shapes it starts from when mounted. The caller
    passes the same value for as long as the canvas stays on the page (a changed value reloads it)."""
    from streamlit_drawable_canvas import st_canvas  # registers the component: only inside a running app

    width, height = size
    shape_tool = tool in ("rect", "circle", "polygon", "point")
    result = st_canvas(fill_color=FILL, stroke_color=INK, stroke_width=SHAPE_STROKE if shape_tool else int(stroke_width),
                       background_image=background, update_streamlit=True, width=int(width), height=int(height),
                       drawing_mode=tool, initial_drawing=initial, point_display_radius=POINT_RADIUS,
                       return_image_data=False, key=key)
    value = result.json_data
    return read(value, (int(height), int(width))), value


def read(value: object, size: tuple[int, int]) -> Drawing:
    """The drawing from the canvas's JSON (`{"objects": [...]}` or None), at `size` (height, width).
    Anything malformed gives an empty drawing and a message, never an exception."""
    if value is None:
        return Drawing(rgba=None)
    try:
        shapes = parse_shapes(value)
    except (TypeError, ValueError, OverflowError, KeyError):
        return Drawing(rgba=None, message=MALFORMED)
    return Drawing(rgba=shapes_rgba(shapes, size), points=[s.centre for s in shapes if s.centre is not None])


def parse_shapes(value: object) -> list[Shape]:
    """The shapes of a Fabric.js canvas JSON; TypeError/ValueError when it is not what the canvas sends."""
    if not isinstance(value, dict) or not isinstance(value.get("objects", []), list):
        raise TypeError("not a canvas drawing")
    objects = value.get("objects") or []
    if len(objects) > MAX_SHAPES:
        raise ValueError("too many shapes")
    shapes, budget = [], [MAX_COORDINATES]
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("type") not in KINDS:
            raise TypeError("not an object the page's drawing modes make")
        shapes.append(_shape(obj, budget))
    return shapes


_ORIGIN = {"left": -0.5, "top": -0.5, "center": 0.0, "right": 0.5, "bottom": 0.5}


def _shape(obj: dict, budget: list[int]) -> Shape:
    """One Fabric object as a Shape: its own points mapped through its transform (Fabric's order:
    centre + rotation · scale/flip · skew applied to the point relative to the object's centre)."""
    kind = obj["type"]
    stroke = _size(obj.get("strokeWidth", 0))
    sx, sy = _number(obj.get("scaleX", 1)), _number(obj.get("scaleY", 1))
    if obj.get("flipX"):
        sx = -sx
    if obj.get("flipY"):
        sy = -sy
    angle = math.radians(_number(obj.get("angle", 0)))
    cos, sin = math.cos(angle), math.sin(angle)
    kx, ky = (math.tan(math.radians(_number(obj.get(k, 0)))) for k in ("skewX", "skewY"))
    # M = R · S · skewX · skewY
    a, b, c, d = sx * (1 + kx * ky), sx * kx, sy * ky, sy
    m = (cos * a - sin * c, cos * b - sin * d, sin * a + cos * c, sin * b + cos * d)
    width, height = _size(obj.get("width", 0), 1e6), _size(obj.get("height", 0), 1e6)
    uniform = bool(obj.get("strokeUniform"))
    pre, post = (0.0, stroke) if uniform else (stroke, 0.0)
    dim = ((width + pre) * abs(sx) + post, (height + pre) * abs(sy) + post)
    ox, oy = (_ORIGIN.get(obj.get(k, default)) for k, default in (("originX", "left"), ("originY", "top")))
    if ox is None or oy is None:
        raise ValueError("unknown origin")
    left, top = _number(obj.get("left", 0)), _number(obj.get("top", 0))
    cx = left - (cos * ox * dim[0] - sin * oy * dim[1])
    cy = top - (sin * ox * dim[0] + cos * oy * dim[1])

    def place(points: list[tuple[float, float]], offset: tuple[float, float] = (0.0, 0.0)) -> list[tuple[float, float]]:
        return [(cx + m[0] * (x - offset[0]) + m[1] * (y - offset[1]),
                 cy + m[2] * (x - offset[0]) + m[3] * (y - offset[1])) for x, y in points]

    painted = stroke if uniform else stroke * (abs(sx) + abs(sy)) / 2
    if kind == "Rect":
        w, h = width / 2, height / 2
        return Shape(place([(-w, -h), (w, -h), (w, h), (-w, h)]), True, painted)
    if kind == "Circle":
        r = _size(obj.get("radius", 0), 1e6)
        ring = [(r * math.cos(2 * math.pi * k / 48), r * math.sin(2 * math.pi * k / 48)) for k in range(48)]
        return Shape(place(ring), True, painted, centre=(cx, cy))
    if kind == "Line":
        ends = [(_number(obj.get("x1")), _number(obj.get("y1"))), (_number(obj.get("x2")), _number(obj.get("y2")))]
        return Shape(place(ends), False, painted)
    if kind in ("Polygon", "Polyline"):
        raw = obj.get("points")
        if not isinstance(raw, list) or not raw:
            raise TypeError("points are not a list")
        _spend(budget, 2 * len(raw))
        points = [(_number(p["x"]), _number(p["y"])) for p in raw if isinstance(p, dict)]
        if len(points) != len(raw) or (kind == "Polygon" and len(points) < 3):
            raise ValueError("a polygon needs three corners given as {x, y}")
        return Shape(place(points, _centre(points)), kind == "Polygon", painted)
    points, closed = _path_points(obj.get("path"), budget)
    filled = closed or obj.get("fill") not in (None, "", "transparent")
    return Shape(place(points, _centre(points)), filled and len(points) >= 3, painted, round=not filled)


def _path_points(path: object, budget: list[int]) -> tuple[list[tuple[float, float]], bool]:
    """The points along an SVG-style path of absolute M/L/Q/C/Z commands (Fabric's free-hand brush
    writes M, Q…, L); curves sampled with CURVE_STEPS points each. (points, closed)."""
    if not isinstance(path, list) or not path:
        raise TypeError("a path is a list of commands")
    points: list[tuple[float, float]] = []
    closed = False
    for command in path:
        if not isinstance(command, list) or not command or not isinstance(command[0], str):
            raise TypeError("not a path command")
        letter, args = command[0], [_number(v) for v in command[1:]]
        _spend(budget, len(args))
        if letter in ("M", "L") and len(args) == 2:
            points.append((args[0], args[1]))
        elif letter == "Q" and len(args) == 4 and points:
            (x0, y0), (x1, y1, x2, y2) = points[-1], args
            points += [((1 - t) ** 2 * x0 + 2 * (1 - t) * t * x1 + t * t * x2,
                        (1 - t) ** 2 * y0 + 2 * (1 - t) * t * y1 + t * t * y2)
                       for t in (k / CURVE_STEPS for k in range(1, CURVE_STEPS + 1))]
        elif letter == "C" and len(args) == 6 and points:
            (x0, y0), (x1, y1, x2, y2, x3, y3) = points[-1], args
            points += [((1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * x1 + 3 * (1 - t) * t * t * x2 + t ** 3 * x3,
                        (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * y1 + 3 * (1 - t) * t * t * y2 + t ** 3 * y3)
                       for t in (k / CURVE_STEPS for k in range(1, CURVE_STEPS + 1))]
        elif letter in ("Z", "z") and not args:
            closed = True
        else:
            raise ValueError(f"unsupported path command {letter!r}")
    if not points:
        raise ValueError("an empty path")
    return points, closed


def _centre(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Fabric's `pathOffset`: the centre of the points' bounding box (their own frame's origin)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2


def shapes_rgba(shapes: list[Shape], size: tuple[int, int]) -> np.ndarray:
    """The shapes painted on a transparent RGBA picture of `size` (height, width) as the canvas shows
    them: closed shapes filled with their outline, strokes with their width (free-hand ones with round
    ends and joins).

    Every shape is painted alone and kept (`_painted`): a stroke adds one shape to the drawing, and
    repainting all earlier ones with round joins took longer than the rest of the region's work. One ink
    and no anti-aliasing make the union of the shapes the same picture as painting them together."""
    height, width = int(size[0]), int(size[1])
    drawn = np.zeros((height, width), bool)
    for shape in shapes:
        drawn |= _painted(tuple(shape.outline), shape.closed, float(shape.width), shape.round, (height, width))
    picture = np.zeros((height, width, 4), np.uint8)
    picture[drawn] = 255
    return picture


@functools.lru_cache(maxsize=64)
def _painted(outline: tuple[tuple[float, float], ...], closed: bool, width: float, round_ends: bool,
             size: tuple[int, int]) -> np.ndarray:
    """One shape's pixels (read-only boolean mask of `size`)."""
    height, width_px = size
    picture = Image.new("L", (width_px, height), 0)
    pen = ImageDraw.Draw(picture)
    ink = 255
    line_width = max(int(round(width)), 1)
    if closed:
        pen.polygon(list(outline), fill=ink)
        if width >= 1:
            pen.line([*outline, outline[0]], fill=ink, width=line_width, joint="curve")
    else:
        if len(outline) > 1:
            pen.line(list(outline), fill=ink, width=line_width, joint="curve" if round_ends else None)
        if round_ends or len(outline) == 1:
            for end in {outline[0], outline[-1]}:
                _disc(pen, end, width / 2, ink)  # round caps (a click is a dot)
    mask = np.asarray(picture) > 0
    mask.flags.writeable = False
    return mask


def _disc(pen: ImageDraw.ImageDraw, centre: tuple[float, float], radius: float, ink: int | tuple[int, ...]) -> None:
    x, y = centre
    pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)


def _spend(budget: list[int], numbers: int) -> None:
    budget[0] -= numbers
    if budget[0] < 0:
        raise ValueError("too many coordinates")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    number = float(value)
    if not np.isfinite(number) or abs(number) > 1e6:
        raise ValueError("not a finite canvas coordinate")
    return number


def _size(value: object, limit: float = 1_000) -> float:
    number = _number(value)
    if not 0 <= number <= limit:
        raise ValueError("not a stroke width or size")
    return number
