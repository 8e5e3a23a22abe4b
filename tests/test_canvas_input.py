"""What the sketch pad sends, read by `dashboard.canvas`: each kind of shape, and tampered data.

The browser side can be modified by anyone, so every malformed value must end in a clear message and
an empty drawing, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import canvas, components, region

SIZE = (20, 30)  # (height, width) of the pad in these tests


def _sent(*shapes: dict) -> dict:
    return {"shapes": list(shapes), "version": len(shapes)}


def test_nothing_sent_yet_is_an_empty_drawing_without_a_message() -> None:
    drawing = canvas.read(None, SIZE)
    assert drawing.empty and drawing.message is None


def test_a_rectangle_fills_exactly_its_pixels() -> None:
    drawing = canvas.read(_sent({"kind": "rect", "x": 4, "y": 3, "w": 10, "h": 5}), SIZE)
    filled = drawing.rgba[..., 3] > 0
    assert drawing.rgba.shape == (20, 30, 4) and drawing.message is None
    assert filled[3:9, 4:15].all() and filled.sum() == 6 * 11  # PIL fills the outline pixels too


def test_points_give_their_centres_and_discs() -> None:
    drawing = canvas.read(_sent({"kind": "point", "x": 10, "y": 12, "r": 3}, {"kind": "point", "x": 25.5, "y": 4, "r": 2}),
                          SIZE)
    assert drawing.points == [(10.0, 12.0), (25.5, 4.0)]
    filled = drawing.rgba[..., 3] > 0
    assert filled[12, 10] and filled[4, 25] and not filled[12, 16]
    assert 9 <= filled[9:16, 7:14].sum() <= 49  # a disc of radius 3, not its square


def test_closed_polygons_are_read_and_filled() -> None:
    square = [2, 2, 12, 2, 12, 10, 2, 10]
    drawing = canvas.read(_sent({"kind": "polygon", "points": square}), SIZE)
    assert drawing.polygons == [[(2.0, 2.0), (12.0, 2.0), (12.0, 10.0), (2.0, 10.0)]]
    filled = drawing.rgba[..., 3] > 0
    assert filled[2:11, 2:13].all() and filled.sum() == 9 * 11


def test_a_stroke_covers_its_path_with_its_width_and_round_ends() -> None:
    drawing = canvas.read(_sent({"kind": "stroke", "width": 6, "points": [5, 10, 25, 10]}), SIZE)
    filled = drawing.rgba[..., 3] > 0
    assert filled[8:13, 5:26].all()  # the band of width 6 along the line
    assert not filled[:6].any() and not filled[15:].any()
    assert filled[10, 2] and not filled[10, 0]  # the round cap reaches 3 px past the end, no further


def test_a_click_with_the_brush_is_a_dot() -> None:
    drawing = canvas.read(_sent({"kind": "stroke", "width": 8, "points": [15, 10]}), SIZE)
    filled = drawing.rgba[..., 3] > 0
    assert filled[10, 15] and filled[10, 12] and not filled[10, 9]


def test_shapes_add_up_and_an_empty_list_is_an_empty_drawing() -> None:
    both = canvas.read(_sent({"kind": "rect", "x": 0, "y": 0, "w": 4, "h": 4},
                             {"kind": "rect", "x": 20, "y": 10, "w": 4, "h": 4}), SIZE)
    assert (both.rgba[..., 3] > 0).sum() == 2 * 25
    cleared = canvas.read(_sent(), SIZE)
    assert cleared.empty and cleared.message is None


@pytest.mark.parametrize("value", [
    "shapes",  # not an object
    {"shapes": "rect"},  # not a list
    {"shapes": [{"kind": "ellipse", "x": 1}]},  # not a kind the pad sends
    {"shapes": [{"kind": "rect", "x": "1", "y": 1, "w": 2, "h": 2}]},  # a string for a number
    {"shapes": [{"kind": "rect", "x": 1, "y": 1, "w": -2, "h": 2}]},  # a negative size
    {"shapes": [{"kind": "point", "x": float("inf"), "y": 1, "r": 3}]},  # not finite
    {"shapes": [{"kind": "point", "x": 1, "y": 1, "r": True}]},  # a bool for a number
    {"shapes": [{"kind": "point", "x": 1, "y": 1, "r": 1e9}]},  # an absurd radius
    {"shapes": [{"kind": "stroke", "width": 5, "points": [1, 2, 3]}]},  # odd number of coordinates
    {"shapes": [{"kind": "stroke", "width": 5, "points": []}]},
    {"shapes": [{"kind": "stroke", "width": 5, "points": [[1, 2]]}]},  # nested, not flat
    {"shapes": [{"kind": "polygon", "points": [1, 1, 3, 3]}]},  # two corners
    {"shapes": [{"kind": "stroke", "width": 5, "points": [1.0, 2.0] * 150_000}]},  # too many coordinates
    {"shapes": [{"kind": "point", "x": 1, "y": 1, "r": 1}] * 5_000},  # too many shapes
])
def test_tampered_values_give_a_message_and_an_empty_drawing(value) -> None:
    drawing = canvas.read(value, SIZE)
    assert drawing.message == canvas.MALFORMED
    assert drawing.empty and drawing.points == [] and drawing.polygons == []


def test_the_pad_frontend_sends_the_shapes_python_reads() -> None:
    """The JavaScript and `parse_shapes` name the same kinds and fields (a rename on one side breaks this)."""
    source = (components.FRONTEND / "sketch.js").read_text(encoding="utf-8")
    for kind in canvas.KINDS:
        assert f'kind: "{kind}"' in source
    assert "setTimeout" not in source  # nothing is held back before it is sent
    assert 'pad.send("shapes"' in source


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
