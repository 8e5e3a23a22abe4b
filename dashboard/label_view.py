"""A batch run's images ranked by mean IoU against their labels, worst first, with "open" buttons.

Why: with `--labels` the batch records each image's IoU per class (`explainers.label_scores`); the
failures are found by sorting on it, then looked at in the main view with their ground truth and error
region. Shared by the dataset page and the image browser; the rows come from
`explainers.dataset_analysis` (table "iou"), and this module only shows them. Image and class names come
from files, so they reach the page as dataframe cells, select-box options and escaped markdown only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import safe_text

LIMIT = 200  # rows shown in the table (the worst ones)


def display_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows for the page: image, run folder, mean IoU and `IoU <class>` (None: class in neither map)."""
    shown = []
    for row in rows[:LIMIT]:
        item = {"image": row["image"], "run": Path(row["run"]).name, "mean IoU": _cell(row["mean_iou"])}
        item.update({f"IoU {k[4:]}": _cell(v) for k, v in row.items() if k.startswith("iou_")})
        shown.append(item)
    return shown


def _cell(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else round(number, 3)


def ranking(rows: Sequence[dict[str, Any]], method: str, opener: Callable[..., None], *, key: str,
            switch: bool) -> None:
    """The ranked table, an image picker and two buttons: open with its explained region, or with its
    worst error region (`opener` is `dataset_view.open_in_main_view`)."""
    st.markdown("**Images ranked by mean IoU against their labels, worst first**")
    if not rows:
        st.caption("No image of these results has a mean IoU: run the batch with `--labels DIR` (label PNGs named "
                   "like the images) to rank them.")
        return
    st.dataframe(display_rows(rows), hide_index=True, key=f"{key}-table",
                 column_config={"mean IoU": st.column_config.ProgressColumn("mean IoU", min_value=0.0, max_value=1.0,
                                                                            format="%.3f")})
    count = min(len(rows), LIMIT)
    pick_col, open_col, error_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    pick = pick_col.selectbox("Image", range(count), key=f"{key}-pick",
                              format_func=lambda i: f"{rows[i]['image']} · mean IoU {float(rows[i]['mean_iou']):.3f}")
    args = (rows[pick]["run"], rows[pick]["output"], method)
    open_col.button("Open in main view", key=f"{key}-open", on_click=opener, args=args,
                    kwargs={"switch": switch}, width="stretch")
    error_col.button("Open its error region", key=f"{key}-errors", on_click=opener, args=args,
                     kwargs={"errors": True, "switch": switch}, width="stretch",
                     help="The main view with this image's ground truth and, as the region, the larger error "
                          "(false positives or negatives) of its class with the lowest IoU.")
    st.caption(f"{len(rows)} images, worst first (empty cell: the class is in neither the prediction nor the labels; "
               f"label value 255 is void and not counted). The buttons open {safe_text.md(rows[pick]['image'])} "
               f"with {safe_text.md(method)}.")
