"""Regions to explain: boolean H×W masks at the model's input resolution.

Every builder returns a fresh `bool` array of the requested shape, so the adapter can multiply the
network's output by it without further checks. Builders clip to the image instead of failing (a
drag that leaves the canvas still means "up to the edge"; only `from_component` refuses a click off
the image, since it has no blob to return); `check_region` decides whether a region is usable, so
that one place words the user-facing errors.

Coordinates are (row, col) in image pixels throughout, except `from_canvas`, which follows the
canvas' (x, y) convention because that is what the drawing widget reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage
from skimage import draw, measure, segmentation

from explainers.errors import ExplainerError

_EPS = 1e-6  # overlaps thinner than this (float round-off of the scale) do not count

_EMPTY_HINT = (
    "The region is empty: draw over at least one pixel of the image, or choose a preset "
    "(a predicted class or a clicked component)."
)


def _shape2(shape: Sequence[int]) -> tuple[int, int]:
    """Validate an (H, W) shape: a region must have at least one pixel to exist at all."""
    try:
        height, width = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ExplainerError(f"A region shape must be (height, width), got {shape!r}.") from None
    if height <= 0 or width <= 0:
        raise ExplainerError(f"A region shape must be positive, got {height}×{width} (height×width).")
    return height, width


def _labels2(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ExplainerError(
            f"Predicted labels must be a 2-D integer array (one class index per pixel), got "
            f"{labels.ndim}-D {labels.dtype}."
        )
    return labels


def _same_shape(region: np.ndarray, labels: np.ndarray) -> None:
    if region.shape != labels.shape:
        raise ExplainerError(
            f"The region is {region.shape[0]}×{region.shape[1]} but the predicted mask is "
            f"{labels.shape[0]}×{labels.shape[1]}: build both at the model's input resolution."
        )


def _pair(value: float | Sequence[float], what: str) -> tuple[float, float]:
    """(x, y) from a scalar or a pair."""
    try:
        vx, vy = (float(value),) * 2 if np.ndim(value) == 0 else (float(v) for v in value)  # type: ignore
    except (TypeError, ValueError):
        raise ExplainerError(f"The canvas {what} must be a number or an (x, y) pair, got {value!r}.") from None
    if not (np.isfinite(vx) and np.isfinite(vy)):
        raise ExplainerError(f"The canvas {what} must be finite, got {value!r}.")
    return vx, vy


def _covering(n_image: int, n_canvas: int, scale: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """For each image index i, the half-open canvas index range [lo, hi) whose cells overlap cell i.

    Canvas cell k spans [k, k+1) in canvas units, i.e. [(k - offset)/scale, (k + 1 - offset)/scale)
    in image units; it overlaps image cell [i, i+1) when k < (i+1)·scale + offset and
    k + 1 > i·scale + offset.
    """
    i = np.arange(n_image, dtype=np.float64)
    lo = np.floor(i * scale + offset - 1 + _EPS).astype(np.int64) + 1
    hi = np.ceil((i + 1) * scale + offset - _EPS).astype(np.int64)
    return np.clip(lo, 0, n_canvas), np.clip(hi, 0, n_canvas)


def _any_in_ranges(drawn: np.ndarray, lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
    """Max-pool `drawn` along `axis` over the ranges [lo, hi) with a cumulative sum (one pass)."""
    counts = np.cumsum(drawn, axis=axis, dtype=np.int64)
    pad = [(0, 0), (0, 0)]
    pad[axis] = (1, 0)
    counts = np.pad(counts, pad)
    return (np.take(counts, hi, axis=axis) - np.take(counts, lo, axis=axis)) > 0


def from_canvas(
    rgba: np.ndarray | None,
    image_shape: tuple[int, int],
    scale: float | tuple[float, float] = 1.0,
    offset: tuple[float, float] = (0, 0),
) -> np.ndarray:
    """Mask of the image pixels touched by a drawing (the canvas' `image_data`, alpha > 0 = drawn).

    Convention: canvas pixel (x, y) is the unit square with top-left corner (x, y); it lands on the
    image square with corner ((x - offset_x) / scale_x, (y - offset_y) / scale_y) and side 1/scale.
    An image pixel is in the region when any drawn canvas square overlaps it with positive area
    (max pooling, never nearest sampling), so a 1-px stroke on a canvas 4× larger than the image
    still marks a line of image pixels, and an upsampled canvas marks whole blocks. `scale` is
    canvas pixels per image pixel (one number or (scale_x, scale_y)). Drawing outside the image is
    ignored. `None` (no drawing returned yet) gives an empty region.
    """
    height, width = _shape2(image_shape)
    if rgba is None:
        return np.zeros((height, width), dtype=bool)
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ExplainerError(
            f"The canvas drawing must be an RGBA array (height×width×4), got shape {rgba.shape}."
        )
    scale_x, scale_y = _pair(scale, "scale")
    if not (scale_x > 0 and scale_y > 0 and np.isfinite(scale_x) and np.isfinite(scale_y)):
        raise ExplainerError(f"The canvas scale must be positive, got {scale!r}.")
    offset_x, offset_y = _pair(offset, "offset")
    drawn = rgba[..., 3] > 0
    rows_lo, rows_hi = _covering(height, drawn.shape[0], scale_y, offset_y)
    cols_lo, cols_hi = _covering(width, drawn.shape[1], scale_x, offset_x)
    by_row = _any_in_ranges(drawn, rows_lo, rows_hi, axis=0)  # height × canvas width
    return _any_in_ranges(by_row, cols_lo, cols_hi, axis=1)


def from_pixels(points: Iterable[Sequence[float]], shape: tuple[int, int]) -> np.ndarray:
    """Mask of single (row, col) points, e.g. clicks; fractional points mark the pixel containing
    them and points outside the image are ignored (as a drawing off the canvas is)."""
    height, width = _shape2(shape)
    region = np.zeros((height, width), dtype=bool)
    coords = np.asarray(list(points), dtype=np.float64).reshape(-1, 2)
    if coords.size:
        rows, cols = np.floor(coords[:, 0]), np.floor(coords[:, 1])
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        region[rows[inside].astype(np.int64), cols[inside].astype(np.int64)] = True
    return region


def from_rectangle(top: float, left: float, bottom: float, right: float, shape: tuple[int, int]) -> np.ndarray:
    """Mask of the rows [top, bottom) and columns [left, right) (Python slice convention), clipped.

    Corners may come in any order (a drag from bottom-right to top-left); fractional edges take
    every pixel the rectangle touches (floor of the start, ceil of the end).
    """
    height, width = _shape2(shape)
    if not np.isfinite([top, left, bottom, right]).all():
        raise ExplainerError(f"Rectangle edges must be finite numbers, got {(top, left, bottom, right)}.")
    top, bottom = sorted((float(top), float(bottom)))
    left, right = sorted((float(left), float(right)))
    r0, r1 = int(np.clip(np.floor(top), 0, height)), int(np.clip(np.ceil(bottom), 0, height))
    c0, c1 = int(np.clip(np.floor(left), 0, width)), int(np.clip(np.ceil(right), 0, width))
    region = np.zeros((height, width), dtype=bool)
    region[r0:r1, c0:c1] = True
    return region


def from_polygon(rows: Sequence[float], cols: Sequence[float], shape: tuple[int, int]) -> np.ndarray:
    """Mask of a polygon's interior plus its outline, clipped to the image.

    The outline is added so that thin or degenerate polygons (a line, a single click) still mark the
    pixels they pass through; skimage's fill alone would leave them empty.
    """
    height, width = _shape2(shape)
    rows = np.asarray(rows, dtype=np.float64).ravel()
    cols = np.asarray(cols, dtype=np.float64).ravel()
    if rows.shape != cols.shape:
        raise ExplainerError(
            f"A polygon needs as many row as column coordinates, got {rows.size} and {cols.size}."
        )
    region = np.zeros((height, width), dtype=bool)
    if rows.size == 0:
        return region
    fill_r, fill_c = draw.polygon(rows, cols, shape=(height, width))
    region[fill_r, fill_c] = True
    vertices = np.round(np.stack([rows, cols], axis=1)).astype(np.int64)
    for (r0, c0), (r1, c1) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        edge_r, edge_c = draw.line(int(r0), int(c0), int(r1), int(c1))
        inside = (edge_r >= 0) & (edge_r < height) & (edge_c >= 0) & (edge_c < width)
        region[edge_r[inside], edge_c[inside]] = True
    return region


def from_class(labels: np.ndarray, class_index: int) -> np.ndarray:
    """Every pixel predicted as `class_index` (the "explain the whole class" preset)."""
    return _labels2(labels) == int(class_index)


def from_component(labels: np.ndarray, row: int, col: int, connectivity: int = 2) -> np.ndarray:
    """The connected blob of the predicted mask containing the clicked pixel (same predicted class).

    `connectivity=2` (8-neighbourhood, the default) keeps thin diagonal structures such as a ring in
    one piece; use 1 for 4-neighbourhood.
    """
    labels = _labels2(labels)
    height, width = labels.shape
    r, c = int(np.floor(row)), int(np.floor(col))
    if not (0 <= r < height and 0 <= c < width):
        raise ExplainerError(
            f"The clicked pixel (row {r}, column {c}) is outside the {width}×{height} image: click inside it."
        )
    if connectivity not in (1, 2):
        raise ExplainerError(f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), got {connectivity}.")
    return segmentation.flood(labels, (r, c), connectivity=connectivity)


def whole_image(shape: tuple[int, int]) -> np.ndarray:
    """All pixels: explains the class over the whole image, like a classifier's Grad-CAM."""
    return np.ones(_shape2(shape), dtype=bool)


def restrict_to_class(region: np.ndarray, labels: np.ndarray, class_index: int) -> np.ndarray:
    """The drawn pixels that are also predicted as `class_index` (a loose scribble over a part)."""
    region = np.asarray(region, dtype=bool)
    labels = _labels2(labels)
    _same_shape(region, labels)
    return region & (labels == int(class_index))


def check_region(region: np.ndarray, shape: tuple[int, int], class_name: str | None = None) -> np.ndarray:
    """Return `region` as a bool array if it can be explained, else raise `ExplainerError` saying why.

    Pass `class_name` when `region` is the result of `restrict_to_class`: an empty result then means
    the drawing missed that class, and the message says so instead of "the region is empty".
    """
    height, width = _shape2(shape)
    region = np.asarray(region)
    if region.dtype != np.bool_:
        raise ExplainerError(
            f"The region must be a boolean mask, got dtype {region.dtype}: pass e.g. `mask > 0`."
        )
    if region.shape != (height, width):
        raise ExplainerError(
            f"The region has shape {region.shape} but the model input is {height}×{width}: build it at the "
            "input resolution (regions.resample_nearest converts masks)."
        )
    if not region.any():
        if class_name is not None:
            raise ExplainerError(
                f"None of the drawn pixels are predicted as '{class_name}': draw over the '{class_name}' "
                "part of the mask, choose another class, or stop restricting the region to the class."
            )
        raise ExplainerError(_EMPTY_HINT)
    return region


def dominant_class(region: np.ndarray, labels: np.ndarray, ignore: Iterable[int] = ()) -> int:
    """The class predicted most often inside the region (ties: lowest index), the default to explain.

    Classes in `ignore` (e.g. background) are chosen only when the region holds nothing else, so a
    scribble that strays over the background still defaults to the object it was meant for.
    """
    region = np.asarray(region, dtype=bool)
    labels = _labels2(labels)
    _same_shape(region, labels)
    inside = labels[region]
    if inside.size == 0:
        raise ExplainerError(_EMPTY_HINT)
    if inside.min() < 0:
        raise ExplainerError("Predicted labels must be class indices (0 or more), found negative values.")
    return largest_count(np.bincount(inside.astype(np.int64)), ignore)


def largest_count(counts: np.ndarray, ignore: Iterable[int] = ()) -> int:
    """Index of the largest count (ties: lowest index); indices in `ignore` win only if all others are 0."""
    counts = np.asarray(counts)
    preferred = counts.copy()
    for index in ignore:
        if 0 <= int(index) < preferred.size:
            preferred[int(index)] = 0
    return int(preferred.argmax() if preferred.any() else counts.argmax())


def resample_nearest(array: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of the first two axes, sampling at pixel centres.

    The one resampling of masks and label maps in the project (regions to an output grid, label
    maps and predictions to the image grid), so they all line up with each other and with the
    image's own bilinear resize, which is centre-aligned too.
    """
    array = np.asarray(array)
    (in_h, in_w), (out_h, out_w) = array.shape[:2], out_shape
    rows = np.minimum(((np.arange(out_h) + 0.5) * in_h / out_h).astype(np.int64), in_h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * in_w / out_w).astype(np.int64), in_w - 1)
    return array[np.ix_(rows, cols)]


def to_grid(region: np.ndarray, out_shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """The region on another grid (e.g. a model's smaller output) and the rule that was applied.

    The one region-to-grid rule of the project: nearest neighbour at pixel centres (`"nearest"`), and
    when a thin region falls between the sample points, every output cell it touches (`"touched"`);
    `""` when the grids already agree. A non-empty region therefore never vanishes.
    """
    region = np.asarray(region, dtype=bool)
    if region.ndim != 2:
        raise ExplainerError(f"The region must be a 2-D mask, got {region.ndim}-D.")
    out_h, out_w = _shape2(out_shape)
    in_h, in_w = region.shape
    if (out_h, out_w) == (in_h, in_w):
        return region, ""
    out = resample_nearest(region, (out_h, out_w))
    if out.any() or not region.any():
        return out, "nearest"
    out = np.zeros((out_h, out_w), dtype=bool)
    rows, cols = np.nonzero(region)
    out[rows * out_h // in_h, cols * out_w // in_w] = True
    return out, "touched"


def outline(region: np.ndarray) -> np.ndarray:
    """Region pixels with a 4-neighbour outside the region or off the image (a 1-px inner border)."""
    region = np.asarray(region, dtype=bool)
    return region & ~ndimage.binary_erosion(region, structure=ndimage.generate_binary_structure(2, 1))


def outline_paths(region: np.ndarray) -> list[np.ndarray]:
    """Closed contour polylines around the region, each an (N, 2) float array of (row, col).

    The contours run half-way between region and non-region pixel centres; the mask is padded first so
    regions touching the image edge still give closed loops. For Plotly use x = col, y = row.
    """
    region = np.asarray(region, dtype=bool)
    if not region.any():
        return []
    padded = np.pad(region, 1).astype(np.float64)
    return [contour - 1.0 for contour in measure.find_contours(padded, 0.5)]
