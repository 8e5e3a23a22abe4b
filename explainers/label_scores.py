"""Per-image segmentation quality against a user's label PNGs (batch `--labels`): IoU per class.

Why a module of its own: the batch run writes these numbers into each image's record and summary.csv,
and the dashboard's dataset page and image browser rank images by them; both read the same rules here.
Rules: a pixel whose label is `VOID` (255, as in Pascal VOC) is ignored (in neither prediction nor truth);
a class absent from both the prediction and the truth has no IoU (NaN here, empty in the CSV, null in
JSON), never 0 or 1; the mean IoU is the mean over the classes that have one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

FORMAT = "iou/1"  # in a labelled batch run's settings: a record scored otherwise (or not at all) is redone
VOID = 255  # label value of pixels that count for no class (Pascal VOC's border / "void")
MEAN_COLUMN = "mean_iou"
NOTE_COLUMN = "truth_note"


def label_problem(truth: np.ndarray, image_shape: tuple[int, int], num_classes: int) -> str:
    """One sentence saying why a label map cannot score this image ("" when it can)."""
    truth = np.asarray(truth)
    if truth.ndim != 2:
        return "ground truth ignored: the label PNG is not a single-channel label map (use an index or palette PNG)."
    if truth.shape != tuple(image_shape[:2]):
        return (f"ground truth ignored: the label PNG is {truth.shape[1]}×{truth.shape[0]} pixels but the image is "
                f"{image_shape[1]}×{image_shape[0]}; use the label map made for this image.")
    values = truth[truth != VOID]
    if values.size and (int(values.min()) < 0 or int(values.max()) >= num_classes):
        bad = int(values.max()) if int(values.max()) >= num_classes else int(values.min())
        return (f"ground truth ignored: the label PNG holds class {bad} but the model has {num_classes} classes "
                f"(0 to {num_classes - 1}, and {VOID} for void pixels).")
    return ""


def iou_per_class(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """IoU of each class over the non-void pixels; NaN for a class in neither map."""
    truth, predicted = np.asarray(truth, np.int64), np.asarray(predicted, np.int64)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth {truth.shape} and prediction {predicted.shape} differ in shape")
    kept = truth != VOID
    t, p = truth[kept], predicted[kept]
    confusion = np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - intersection
    out = np.full(num_classes, np.nan)
    np.divide(intersection, union, out=out, where=union > 0)
    return out


def mean_iou(per_class: np.ndarray) -> float:
    """Mean over the classes that have an IoU (NaN when none has: e.g. an all-void label map)."""
    values = np.asarray(per_class, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def column_names(class_names: Sequence[str]) -> list[str]:
    """summary.csv columns of the per-class IoU, `iou_<name>`: line breaks and tabs become spaces, and a
    name that is empty or repeats another gets its index, so every class has its own column."""
    columns: list[str] = []
    for index, name in enumerate(class_names):
        clean = " ".join(str(name).split())
        column = f"iou_{clean}" if clean else f"iou_{index}"
        if column in columns or column == MEAN_COLUMN:
            column = f"iou_{index}_{clean}"
        columns.append(column)
    return columns


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def image_scores(truth: np.ndarray, predicted: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """The record's IoU fields: `mean_iou` and `class_iou` ({column: IoU or None}, in class order)."""
    ious = iou_per_class(truth, predicted, len(class_names))
    return {MEAN_COLUMN: _json_number(mean_iou(ious)),
            "class_iou": {c: _json_number(v) for c, v in zip(column_names(class_names), ious, strict=True)}}


def summary_columns(records: Iterable[dict]) -> list[str]:
    """The IoU columns summary.csv needs for these records ([] when no record has a ground-truth entry)."""
    columns: dict[str, None] = {}
    for record in records:
        if "class_iou" in record or NOTE_COLUMN in record:
            columns.setdefault(MEAN_COLUMN)
            columns.update(dict.fromkeys(record.get("class_iou") or {}))
            columns.setdefault(NOTE_COLUMN)
    if NOTE_COLUMN in columns:  # the note last
        del columns[NOTE_COLUMN]
        columns[NOTE_COLUMN] = None
    return list(columns)


def summary_cells(record: dict) -> dict[str, Any]:
    """An image's IoU cells for each of its summary rows (None: empty cell)."""
    if "class_iou" not in record and NOTE_COLUMN not in record:
        return {}
    return {MEAN_COLUMN: record.get(MEAN_COLUMN), **(record.get("class_iou") or {}),
            NOTE_COLUMN: record.get(NOTE_COLUMN)}


def ranking(records: Iterable[dict], run: str = "") -> list[dict[str, Any]]:
    """Images with a mean IoU, worst first (ties by image name), as table rows: run, image, output,
    mean_iou and one `iou_<name>` entry per class (NaN where undefined)."""
    rows = []
    for record in records:
        mean = record.get(MEAN_COLUMN)
        if mean is None or "class_iou" not in record:
            continue
        rows.append({"run": run, "image": str(record.get("image", "")), "output": str(record.get("output", "")),
                     MEAN_COLUMN: float(mean),
                     **{k: (math.nan if v is None else float(v)) for k, v in record["class_iou"].items()}})
    return sorted(rows, key=lambda r: (r[MEAN_COLUMN], r["image"]))


def worst_error(truth: np.ndarray, predicted: np.ndarray, num_classes: int | None = None) -> tuple[str, int] | None:
    """The error region to show first: ("fp" or "fn", class) of the class with the lowest IoU that has errors,
    the kind with more pixels; None when the prediction has no error on non-void pixels. Without
    `num_classes`, the classes are those up to the largest index in either map."""
    truth, predicted = np.asarray(truth, np.int64), np.asarray(predicted, np.int64)
    kept = truth != VOID
    if num_classes is None:
        num_classes = int(max(truth[kept].max(initial=0), predicted.max(initial=0))) + 1
    ious = iou_per_class(truth, predicted, num_classes)
    best: tuple[float, int] | None = None
    for c in range(num_classes):
        fp = int(((predicted == c) & (truth != c) & kept).sum())
        fn = int(((truth == c) & (predicted != c)).sum())
        if fp + fn and (best is None or ious[c] < best[0]):
            best = (float(ious[c]), c)
    if best is None:
        return None
    c = best[1]
    fp = int(((predicted == c) & (truth != c) & kept).sum())
    fn = int(((truth == c) & (predicted != c)).sum())
    return ("fp" if fp >= fn else "fn"), c
