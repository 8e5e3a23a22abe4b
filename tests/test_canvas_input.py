"""What the canvas sends, read by `dashboard.canvas`: points, closed polygons, and tampered data.

The browser side can be modified by anyone, so every malformed value must end in a clear message and
an empty drawing, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import canvas, region


def _rgba(height: int = 20, width: int = 30) -> np.ndarray:
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[5:8, 5:8, 3] = 255
    return rgba


def test_point_centres_follow_the_origin_and_the_box() -> None:
    data = {"objects": [{"type": "circle", "left": 10, "top": 20, "width": 8, "height": 8, "strokeWidth": 2,
                         "originX": "left", "originY": "top"},
                        {"type": "circle", "left": 4, "top": 6, "width": 8, "height": 8, "originX": "center",
                         "originY": "center"},
                        {"type": "path"}]}
    assert canvas.point_centres(data) == [(15.0, 25.0), (4.0, 6.0)]


def test_closed_polygons_are_read_and_filled_and_open_ones_are_not_there() -> None:
    data = {"objects": [{"type": "polygon", "points": [{"x": 2, "y": 2}, {"x": 12, "y": 2}, {"x": 12, "y": 10},
                                                       {"x": 2, "y": 10}]},
                        {"type": "polygon", "points": [{"x": 1, "y": 1}, {"x": 3, "y": 3}]}]}  # two corners: no area
    polygons = canvas.closed_polygons(data)
    assert polygons == [[(2.0, 2.0), (12.0, 2.0), (12.0, 10.0), (2.0, 10.0)]]
    rgba = canvas.polygons_rgba(polygons, (20, 30))
    filled = rgba[..., 3] > 0
    assert filled[2:11, 2:13].all() and filled.sum() == 9 * 11  # PIL fills the outline pixels too


@pytest.mark.parametrize("json_data", [
    "objects",  # not an object
    {"objects": "circle"},  # not a list
    {"objects": [{"type": "circle", "left": "x", "top": 1}]},  # not a number
    {"objects": [{"type": "circle", "left": float("inf"), "top": 1}]},  # not finite
    {"objects": [{"type": "circle", "left": [1], "top": 1}]},  # a list for a number
    {"objects": [{"type": "polygon", "points": "1,2"}]},
    {"objects": [{"type": "polygon", "points": [{"x": None, "y": {"a": 1}}] * 3}]},
])
def test_tampered_json_gives_a_message_and_no_points(json_data) -> None:
    drawing = canvas.read(_rgba(), json_data)
    assert drawing.message == canvas.MALFORMED
    assert drawing.points == [] and drawing.polygons == []
    assert not drawing.empty  # the bitmap itself was fine and is kept


@pytest.mark.parametrize("image_data", [np.zeros((4, 4)), np.zeros((4, 4, 3)), np.array(["a", "b"]), [[1, [2]]]])
def test_tampered_image_data_gives_a_message_and_an_empty_drawing(image_data) -> None:
    drawing = canvas.read(image_data, None)
    assert drawing.message == canvas.MALFORMED
    assert drawing.empty


def test_a_good_drawing_has_no_message() -> None:
    drawing = canvas.read(_rgba(), {"objects": []})
    assert drawing.message is None and not drawing.empty


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
