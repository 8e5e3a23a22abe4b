"""Region masks: canvas pooling checked against a brute-force overlap test, presets on tiny label maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import measure

from explainers import regions
from explainers.errors import ExplainerError

# 0 0 1 1 0
# 0 1 1 0 0
# 2 0 0 0 1
# 2 2 0 1 1
LABELS = np.array([[0, 0, 1, 1, 0], [0, 1, 1, 0, 0], [2, 0, 0, 0, 1], [2, 2, 0, 1, 1]])


def canvas(height: int, width: int, drawn: list[tuple[int, int]]) -> np.ndarray:
    """An RGBA drawing with opaque-ish pixels at (x, y) positions; colour channels left at zero."""
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    for x, y in drawn:
        rgba[y, x, 3] = 7
    return rgba


def brute_force_canvas(rgba, shape, scale, offset) -> np.ndarray:
    """Reference: mark image pixel (r, c) if any drawn canvas square overlaps it with positive area."""
    sx, sy = scale
    ox, oy = offset
    out = np.zeros(shape, dtype=bool)
    for y, x in zip(*np.nonzero(rgba[..., 3]), strict=True):
        x0, x1 = (x - ox) / sx, (x + 1 - ox) / sx
        y0, y1 = (y - oy) / sy, (y + 1 - oy) / sy
        for r in range(shape[0]):
            for c in range(shape[1]):
                if min(y1, r + 1) - max(y0, r) > 1e-6 and min(x1, c + 1) - max(x0, c) > 1e-6:
                    out[r, c] = True
    return out


def test_one_pixel_stroke_on_a_four_times_larger_canvas_still_marks_pixels() -> None:
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[:, 17, 3] = 255  # vertical 1-px line at canvas x=17 -> image column 4
    rgba[22, :, 3] = 255  # horizontal 1-px line at canvas y=22 -> image row 5
    region = regions.from_canvas(rgba, (10, 10), scale=4)
    expected = np.zeros((10, 10), dtype=bool)
    expected[:, 4] = True
    expected[5, :] = True
    np.testing.assert_array_equal(region, expected)
    assert region.dtype == np.bool_


def test_integer_downscale_is_block_max_pooling() -> None:
    rng = np.random.default_rng(0)
    rgba = np.zeros((36, 48, 4), dtype=np.uint8)
    rgba[..., 3] = (rng.random((36, 48)) > 0.97) * 255
    expected = (rgba[..., 3] > 0).reshape(12, 3, 16, 3).any(axis=(1, 3))
    np.testing.assert_array_equal(regions.from_canvas(rgba, (12, 16), scale=3), expected)


def test_smaller_canvas_marks_whole_blocks() -> None:
    rgba = canvas(3, 4, [(1, 2)])
    region = regions.from_canvas(rgba, (6, 8), scale=0.5)
    expected = np.zeros((6, 8), dtype=bool)
    expected[4:6, 2:4] = True
    np.testing.assert_array_equal(region, expected)


def test_offset_shifts_and_drawing_off_the_image_is_ignored() -> None:
    # image shown at canvas position x=10, y=5 at 2x: canvas (10, 5) is image (0, 0)
    rgba = canvas(30, 40, [(10, 5), (11, 6), (2, 2), (39, 29)])
    region = regions.from_canvas(rgba, (8, 8), scale=2, offset=(10, 5))
    assert np.argwhere(region).tolist() == [[0, 0]]


def test_canvas_alpha_decides_not_colour() -> None:
    rgba = np.full((4, 4, 4), 255, dtype=np.uint8)
    rgba[..., 3] = 0
    rgba[2, 1, 3] = 1
    assert np.argwhere(regions.from_canvas(rgba, (4, 4))).tolist() == [[2, 1]]
    assert not regions.from_canvas(None, (4, 4)).any()


@settings(max_examples=40, deadline=None)
@given(
    canvas_h=st.integers(1, 12),
    canvas_w=st.integers(1, 12),
    image_h=st.integers(1, 7),
    image_w=st.integers(1, 7),
    scale=st.tuples(st.sampled_from([0.5, 0.75, 1.0, 1.5, 1.7, 2.0, 3.3]), st.sampled_from([0.6, 1.0, 2.5, 4.0])),
    offset=st.tuples(st.sampled_from([0.0, 1.0, -1.5, 2.25]), st.sampled_from([0.0, 0.5, 3.0])),
    seed=st.integers(0, 10_000),
)
def test_canvas_pooling_matches_brute_force_overlap(canvas_h, canvas_w, image_h, image_w, scale, offset, seed):
    rng = np.random.default_rng(seed)
    rgba = np.zeros((canvas_h, canvas_w, 4), dtype=np.uint8)
    rgba[..., 3] = rng.random((canvas_h, canvas_w)) > 0.8
    got = regions.from_canvas(rgba, (image_h, image_w), scale=scale, offset=offset)
    np.testing.assert_array_equal(got, brute_force_canvas(rgba, (image_h, image_w), scale, offset))


@pytest.mark.parametrize(
    ("rgba", "scale", "words"),
    [
        (np.zeros((4, 4, 3), np.uint8), 1.0, "RGBA"),
        (np.zeros((4, 4), np.uint8), 1.0, "RGBA"),
        (np.zeros((4, 4, 4), np.uint8), 0.0, "scale must be positive"),
        (np.zeros((4, 4, 4), np.uint8), (1.0, -2.0), "scale must be positive"),
        (np.zeros((4, 4, 4), np.uint8), "big", "number"),
    ],
)
def test_bad_canvas_input_is_refused(rgba, scale, words) -> None:
    with pytest.raises(ExplainerError, match=words):
        regions.from_canvas(rgba, (4, 4), scale=scale)


def test_from_pixels_marks_points_and_ignores_points_outside() -> None:
    region = regions.from_pixels([(0, 0), (2.7, 3.2), (-1, 2), (4, 0), (1, 9)], (4, 5))
    assert np.argwhere(region).tolist() == [[0, 0], [2, 3]]
    assert not regions.from_pixels([], (4, 5)).any()


def test_rectangle_is_half_open_clipped_and_order_free() -> None:
    expected = np.zeros((6, 7), dtype=bool)
    expected[1:3, 2:5] = True
    np.testing.assert_array_equal(regions.from_rectangle(1, 2, 3, 5, (6, 7)), expected)
    np.testing.assert_array_equal(regions.from_rectangle(3, 5, 1, 2, (6, 7)), expected)
    clipped = regions.from_rectangle(-4, 5, 99, 99, (6, 7))
    assert clipped[:, 5:].all() and not clipped[:, :5].any()
    assert not regions.from_rectangle(8, 8, 12, 12, (6, 7)).any()
    with pytest.raises(ExplainerError, match="finite"):
        regions.from_rectangle(0, 0, float("nan"), 3, (6, 7))


def test_polygon_fills_interior_and_keeps_degenerate_strokes() -> None:
    square = regions.from_polygon([1, 1, 4, 4], [1, 4, 4, 1], (6, 6))
    assert square[1:5, 1:5].all() and square.sum() == 16
    line = regions.from_polygon([0, 5], [2, 2], (6, 6))  # a two-point "polygon": a vertical line
    assert line[:, 2].all() and line.sum() == 6
    partly_outside = regions.from_polygon([-3, -3, 2, 2], [-3, 2, 2, -3], (6, 6))
    assert partly_outside[:3, :3].all() and partly_outside.sum() == 9
    with pytest.raises(ExplainerError, match="as many row as column"):
        regions.from_polygon([1, 2, 3], [1, 2], (6, 6))


def test_class_and_whole_image_presets() -> None:
    np.testing.assert_array_equal(regions.from_class(LABELS, 2), LABELS == 2)
    assert regions.whole_image((3, 4)).all() and regions.whole_image((3, 4)).shape == (3, 4)
    with pytest.raises(ExplainerError, match="integer"):
        regions.from_class(LABELS.astype(float), 1)


def test_component_is_the_clicked_blob_of_the_clicked_class() -> None:
    reference = measure.label(LABELS == 1, connectivity=2)
    blob = regions.from_component(LABELS, 0, 2)
    np.testing.assert_array_equal(blob, reference == reference[0, 2])
    assert blob.sum() == 4  # the cap blob top-left, not the one at the bottom right
    # (2, 4) joins (3, 3)/(3, 4) by an edge: same blob in both connectivities
    assert regions.from_component(LABELS, 2, 4, connectivity=1).sum() == 3
    # the background blob around (3, 2) reaches row 2 through edges alone
    assert regions.from_component(LABELS, 3, 2, connectivity=1)[2, 1:4].all()


def test_component_connectivity_matters_for_diagonals() -> None:
    diagonal = np.eye(4, dtype=np.int32)
    assert regions.from_component(diagonal, 0, 0, connectivity=2).sum() == 4
    assert regions.from_component(diagonal, 0, 0, connectivity=1).sum() == 1


def test_component_click_outside_is_refused_with_a_hint() -> None:
    with pytest.raises(ExplainerError, match="click inside"):
        regions.from_component(LABELS, 4, 0)


def test_restrict_to_class_is_an_intersection() -> None:
    drawn = regions.from_rectangle(0, 0, 2, 3, LABELS.shape)
    restricted = regions.restrict_to_class(drawn, LABELS, 1)
    np.testing.assert_array_equal(restricted, drawn & (LABELS == 1))
    assert restricted.sum() == 3
    with pytest.raises(ExplainerError, match="predicted mask"):
        regions.restrict_to_class(np.ones((3, 3), bool), LABELS, 1)


def test_check_region_accepts_a_good_mask() -> None:
    region = regions.from_class(LABELS, 2)
    assert regions.check_region(region, (4, 5)) is not None
    np.testing.assert_array_equal(regions.check_region(region, (4, 5)), region)


@pytest.mark.parametrize(
    ("region", "class_name", "words"),
    [
        (np.zeros((4, 5), bool), None, "The region is empty: draw over at least one pixel"),
        (np.zeros((4, 5), bool), "cap", "None of the drawn pixels are predicted as 'cap'"),
        (np.ones((5, 4), bool), None, r"input is 4×5"),
        (np.ones((4, 5, 1), bool), None, "shape"),
        (np.ones((4, 5), np.uint8), None, "boolean mask"),
        (np.ones((4, 5), np.float32), None, "boolean mask"),
    ],
)
def test_check_region_says_what_to_do(region, class_name, words) -> None:
    with pytest.raises(ExplainerError, match=words):
        regions.check_region(region, (4, 5), class_name=class_name)


def test_dominant_class_counts_inside_the_region() -> None:
    region = regions.from_rectangle(0, 0, 4, 2, LABELS.shape)  # 0,0,0,1,2,0,2,2 -> 0 wins
    assert regions.dominant_class(region, LABELS) == 0
    assert regions.dominant_class(region, LABELS, ignore=[0]) == 2
    only_background = regions.from_pixels([(0, 0)], LABELS.shape)
    assert regions.dominant_class(only_background, LABELS, ignore=[0]) == 0
    tie = regions.from_pixels([(0, 2), (2, 0)], LABELS.shape)  # one cap, one gills
    assert regions.dominant_class(tie, LABELS) == 1
    with pytest.raises(ExplainerError, match="empty"):
        regions.dominant_class(np.zeros(LABELS.shape, bool), LABELS)


def test_to_grid_nearest_and_never_loses_a_region() -> None:
    region = np.zeros((8, 8), bool)
    region[2:6, 4:8] = True
    grid, rule = regions.to_grid(region, (4, 4))
    np.testing.assert_array_equal(grid, region[1::2, 1::2])
    assert rule == "nearest"
    np.testing.assert_array_equal(regions.to_grid(region, (16, 16))[0], np.kron(region, np.ones((2, 2), bool)))
    same, rule = regions.to_grid(region, (8, 8))
    assert rule == "" and np.array_equal(same, region)
    line = np.zeros((8, 8), bool)
    line[0, :] = True  # sampling at pixel centres 1, 3, 5, 7 misses row 0: every touched cell is kept
    small, rule = regions.to_grid(line, (4, 4))
    assert rule == "touched"
    np.testing.assert_array_equal(small, np.array([[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], bool))
    assert not regions.to_grid(np.zeros((8, 8), bool), (3, 3))[0].any()


def test_outline_is_the_inner_border() -> None:
    region = regions.from_rectangle(1, 1, 5, 6, (7, 8))
    border = regions.outline(region)
    interior = regions.from_rectangle(2, 2, 4, 5, (7, 8))
    np.testing.assert_array_equal(border, region & ~interior)
    edge = regions.outline(regions.whole_image((3, 3)))
    assert edge.sum() == 8 and not edge[1, 1]  # the image edge bounds the region too


def test_outline_paths_are_closed_loops_around_each_blob() -> None:
    region = regions.from_rectangle(0, 0, 3, 3, (8, 8)) | regions.from_rectangle(5, 5, 7, 8, (8, 8))
    paths = regions.outline_paths(region)
    assert len(paths) == 2
    for path in paths:
        assert path.ndim == 2 and path.shape[1] == 2
        np.testing.assert_allclose(path[0], path[-1])
    first = min(paths, key=lambda p: p[:, 0].min())
    assert first[:, 0].min() == pytest.approx(-0.5) and first[:, 1].max() == pytest.approx(2.5)
    assert regions.outline_paths(np.zeros((4, 4), bool)) == []


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ExplainerError, match="positive"):
        regions.whole_image((0, 4))
    with pytest.raises(ExplainerError, match="height, width"):
        regions.from_rectangle(0, 0, 1, 1, (4,))


def test_largest_count_prefers_classes_outside_ignore() -> None:
    from explainers.regions import largest_count

    assert largest_count(np.array([10, 3, 3])) == 0
    assert largest_count(np.array([10, 3, 4]), ignore=(0,)) == 2
    assert largest_count(np.array([10, 0, 0]), ignore=(0,)) == 0
