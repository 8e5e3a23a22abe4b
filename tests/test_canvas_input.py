"""What streamlit-drawable-canvas sends (Fabric.js JSON), read by `dashboard.canvas`: each kind of
object, moved or scaled in the edit mode, and tampered data.

The browser side can be modified by anyone, so every malformed value must end in a clear message and
an empty drawing, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dashboard import canvas, components, region

SIZE = (20, 30)  # (height, width) of the canvas in these tests


def _sent(*objects: dict) -> dict:
    return {"version": "7.4.0", "objects": list(objects), "background": ""}


def _obj(kind: str, **fields) -> dict:
    """A Fabric.js object as the library's toObject writes it (the fields the page reads)."""
    return {"type": kind, "originX": "left", "originY": "top", "scaleX": 1, "scaleY": 1, "angle": 0,
            "flipX": False, "flipY": False, "skewX": 0, "skewY": 0, "strokeWidth": 0, "strokeUniform": False,
            "fill": "rgba(255, 255, 255, 0.35)", **fields}


def _filled(value: dict) -> np.ndarray:
    drawing = canvas.read(value, SIZE)
    assert drawing.message is None and drawing.rgba.shape == (20, 30, 4)
    return drawing.rgba[..., 3] > 0


def test_nothing_sent_yet_is_an_empty_drawing_without_a_message() -> None:
    drawing = canvas.read(None, SIZE)
    assert drawing.empty and drawing.message is None


def test_a_rectangle_fills_exactly_its_pixels() -> None:
    filled = _filled(_sent(_obj("Rect", left=4, top=3, width=10, height=5)))
    assert filled[3:9, 4:15].all() and filled.sum() == 6 * 11  # PIL fills the outline pixels too


def test_a_moved_and_scaled_rectangle_is_filled_where_the_canvas_shows_it() -> None:
    # the edit mode moved it to (10, 2) and doubled its width: 20 × 5 px from there
    filled = _filled(_sent(_obj("Rect", left=10, top=2, width=10, height=5, scaleX=2)))
    assert filled[2:8, 10:31].all() and not filled[:, :9].any() and not filled[9:].any()


def test_a_rotated_rectangle_turns_about_its_origin() -> None:
    # 10 × 4 px at (12, 2), turned 90° clockwise about its top-left corner: it now covers x 8…12, y 2…12
    filled = _filled(_sent(_obj("Rect", left=12, top=2, width=10, height=4, angle=90)))
    assert filled[3:12, 9:12].all() and not filled[:, 14:].any() and not filled[14:].any()


def test_points_give_their_centres_and_discs() -> None:
    # the library's point: a circle of radius 4 whose left edge (stroke included) is at `left`
    points = [_obj("Circle", radius=4, left=10 - 5, top=12, originY="center", strokeWidth=2, width=8, height=8),
              _obj("Circle", radius=4, left=25.5 - 5, top=4, originY="center", strokeWidth=2, width=8, height=8)]
    drawing = canvas.read(_sent(*points), SIZE)
    assert drawing.points == [(10.0, 12.0), (25.5, 4.0)]
    filled = drawing.rgba[..., 3] > 0
    assert filled[12, 10] and filled[4, 25] and not filled[12, 17]
    assert 25 <= filled[6:19, 4:17].sum() <= 121  # a disc of radius 4-5, not its square


def test_a_circle_dragged_at_an_angle_is_centred_where_the_canvas_draws_it() -> None:
    # the circle tool: origin left/centre at the drag's start, turned towards its end
    drawing = canvas.read(_sent(_obj("Circle", radius=5, left=5, top=5, originY="center", angle=45, width=10,
                                     height=10)), SIZE)
    (x, y), = drawing.points
    assert abs(x - (5 + 5 / 2 ** 0.5)) < 1e-6 and abs(y - (5 + 5 / 2 ** 0.5)) < 1e-6
    filled = drawing.rgba[..., 3] > 0
    assert filled[int(y), int(x)] and filled.sum() == pytest.approx(np.pi * 25, rel=0.3)


def test_closed_polygons_are_read_and_filled() -> None:
    square = [{"x": 2, "y": 2}, {"x": 12, "y": 2}, {"x": 12, "y": 10}, {"x": 2, "y": 10}]
    filled = _filled(_sent(_obj("Polygon", points=square, left=7, top=6, originX="center", originY="center",
                                width=10, height=8)))
    assert filled[2:11, 2:13].all() and filled.sum() == 9 * 11


def test_a_free_hand_path_covers_its_curve_with_its_width_and_round_ends() -> None:
    path = [["M", 5, 10], ["Q", 10, 10, 15, 10], ["L", 25, 10]]
    filled = _filled(_sent(_obj("Path", path=path, left=15, top=10, originX="center", originY="center", width=20,
                                height=0, strokeWidth=6, fill=None)))
    assert filled[8:13, 5:26].all()  # the band of width 6 along the line
    assert not filled[:6].any() and not filled[15:].any()
    assert filled[10, 2] and not filled[10, 0]  # the round cap reaches 3 px past the end, no further


def test_a_moved_path_is_filled_at_its_new_place() -> None:
    path = [["M", 5, 10], ["L", 25, 10]]
    filled = _filled(_sent(_obj("Path", path=path, left=15, top=15, originX="center", originY="center", width=20,
                                height=0, strokeWidth=2, fill=None)))  # moved 5 px down
    assert filled[15, 10] and not filled[10].any()


def test_a_line_is_as_wide_as_its_stroke() -> None:
    filled = _filled(_sent(_obj("Line", x1=-10, y1=0, x2=10, y2=0, left=15, top=10, originX="center",
                                originY="center", width=20, height=0, strokeWidth=4)))
    assert filled[9:12, 6:24].all() and not filled[:7].any() and not filled[14:].any()


def test_shapes_add_up_and_an_empty_list_is_an_empty_drawing() -> None:
    both = _filled(_sent(_obj("Rect", left=0, top=0, width=4, height=4), _obj("Rect", left=20, top=10, width=4,
                                                                               height=4)))
    assert both.sum() == 2 * 25
    cleared = canvas.read(_sent(), SIZE)
    assert cleared.empty and cleared.message is None


@pytest.mark.parametrize("value", [
    "objects",  # not an object
    {"objects": "Rect"},  # not a list
    _sent({"type": "Image", "src": "x"}),  # not a kind the page draws
    _sent(_obj("Rect", left="1", top=1, width=2, height=2)),  # a string for a number
    _sent(_obj("Rect", left=1, top=1, width=-2, height=2)),  # a negative size
    _sent(_obj("Circle", left=float("inf"), top=1, radius=3)),  # not finite
    _sent(_obj("Circle", left=1, top=1, radius=True)),  # a bool for a number
    _sent(_obj("Path", path=[["M", 1, 1]], strokeWidth=1e9)),  # an absurd stroke
    _sent(_obj("Rect", left=1, top=1, width=2, height=2, originX="middle")),  # an unknown origin
    _sent(_obj("Path", path=[["M", 1, 2, 3]])),  # odd number of coordinates
    _sent(_obj("Path", path=[])),
    _sent(_obj("Path", path=[["A", 1, 1, 0, 0, 1, 5, 5]])),  # a command the canvas does not write
    _sent(_obj("Path", path=[["Q", 1, 1, 2, 2]])),  # a curve with no start
    _sent(_obj("Polygon", points=[{"x": 1, "y": 1}, {"x": 3, "y": 3}])),  # two corners
    _sent(_obj("Polygon", points=[[1, 1], [3, 3], [4, 1]])),  # corners not as {x, y}
    _sent(_obj("Path", path=[["M", 1.0, 2.0]] + [["L", 1.0, 2.0]] * 150_000)),  # too many coordinates
    _sent(*[_obj("Circle", left=1, top=1, radius=1)] * 5_000),  # too many shapes
])
def test_tampered_values_give_a_message_and_an_empty_drawing(value) -> None:
    drawing = canvas.read(value, SIZE)
    assert drawing.message == canvas.MALFORMED
    assert drawing.empty and drawing.points == []


def test_the_canvas_is_the_library_and_our_own_pad_is_gone() -> None:
    """The design card's canvas package draws (issue 32): no sketch pad of our own is declared."""
    assert not (components.FRONTEND / "sketch.js").exists()
    source = Path(canvas.__file__).read_text(encoding="utf-8")
    assert "from streamlit_drawable_canvas import st_canvas" in source and "return_image_data=False" in source
    requirements = (Path(__file__).resolve().parents[1] / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^streamlit-drawable-canvas==0\.13", requirements, re.M)


def test_component_outline_is_drawn_on_the_canvas_background() -> None:
    overlay = np.full((12, 12, 3), 40, np.uint8)
    picked = np.zeros((12, 12), bool)
    picked[3:7, 4:9] = True
    plain = region.canvas_background(overlay, (36, 36), None)
    outlined = region.canvas_background(overlay, (36, 36), picked)
    assert plain.shape == outlined.shape == (36, 36, 3)
    assert (plain == 40).all()
    white = (outlined == 255).all(axis=-1)
    assert white.any()  # the outline is there
    rows, cols = np.nonzero(white)
    # and it runs around the component (rows 3…6, cols 4…8 → canvas pixels 9…21, 12…27), not elsewhere
    assert rows.min() >= 6 and rows.max() <= 24 and cols.min() >= 9 and cols.max() <= 30


def _painted_together(shapes: list[canvas.Shape], size: tuple[int, int]) -> np.ndarray:
    """Every shape on one RGBA picture, in order (how the page painted a drawing before shapes were kept)."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGBA", (size[1], size[0]), (0, 0, 0, 0))
    pen = ImageDraw.Draw(picture)
    ink = (255, 255, 255, 255)
    for shape in shapes:
        width = max(int(round(shape.width)), 1)
        if shape.closed:
            pen.polygon(shape.outline, fill=ink)
            if shape.width >= 1:
                pen.line([*shape.outline, shape.outline[0]], fill=ink, width=width, joint="curve")
            continue
        if len(shape.outline) > 1:
            pen.line(shape.outline, fill=ink, width=width, joint="curve" if shape.round else None)
        if shape.round or len(shape.outline) == 1:
            for x, y in {shape.outline[0], shape.outline[-1]}:
                r = shape.width / 2
                pen.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    return np.asarray(picture)


def test_a_drawing_painted_shape_by_shape_is_the_drawing_painted_at_once() -> None:
    """Shapes are painted one by one and kept (a stroke adds one shape); their union must be the picture
    of all of them painted together, and a drawing with one shape more paints only that one."""
    rng = np.random.default_rng(7)
    size = (96, 128)
    shapes = []
    for k in range(12):
        points = [(float(x), float(y)) for x, y in rng.uniform(-10, 140, size=(int(rng.integers(1, 9)), 2))]
        closed = bool(k % 3 == 0) and len(points) >= 3
        shapes.append(canvas.Shape(points, closed, float(rng.uniform(0, 14)), round=bool(k % 2)))
    np.testing.assert_array_equal(canvas.shapes_rgba(shapes, size), _painted_together(shapes, size))
    canvas._painted.cache_clear()
    canvas.shapes_rgba(shapes[:-1], size)
    before = canvas._painted.cache_info()
    np.testing.assert_array_equal(canvas.shapes_rgba(shapes, size), _painted_together(shapes, size))
    after = canvas._painted.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, len(shapes) - 1)
