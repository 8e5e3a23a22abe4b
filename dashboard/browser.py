"""Image browser: a batch of generated scenes, or a batch run with labels, ranked by mean IoU, worst first.

A batch run (`explainers.batch --labels`) brings its own numbers: its table comes from the dataset page's
reader and `dashboard.label_view` shows it; "Open" makes the image current with its ground truth.

The scenes come from `models.scenes.generate` (so each has its ground truth), the predictions from
`explainers.predict` and the ranking from `explainers.quality.rank_by_iou`. The batch and its
predictions are cached per (model key, seed, count). Picking a row (or the picker under the table)
makes that scene the current image, ground truth included, the way the gallery's buttons do; every
other setting stays.

`explainers.predict` takes one image; measured on the shipped 144×144 network (2 shared cores), 48
single-image calls of its compiled predictor take about as long as one batched call (~0.7 s), so the
public per-image API is used rather than a private batched path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

import explainers
from dashboard import compute, figures, safe_text, state
from explainers import ExplainerError, registry
from models import CLASS_NAMES

DEFAULT_SIZE = compute.SCENE_SIZE  # size of the generated scenes when the model takes any size


scene_batch = compute.scene_batch  # images and ground truths of a batch of generated scenes (cached there)
scene_size = compute.scene_size
ranked = compute.ranked_scenes  # predictions and rows ranked worst first (cached there)


def unavailable_reason(model: Any) -> str | None:
    """Why the browser cannot rank scenes for this model (None when it can).

    The scenes' ground truth uses the six mushroom classes, so IoU only means something for a model
    whose classes are those: the shipped network, or an upload the user named with the same names.
    """
    try:
        num_classes = explainers.inspect_model(model).num_classes
    except ExplainerError as error:
        return f"The scenes cannot be segmented by this model: {error}"
    names = figures.class_names(num_classes)
    if list(names) != list(CLASS_NAMES):
        return (f"The generated scenes are labelled with the {len(CLASS_NAMES)} mushroom classes "
                f"({', '.join(CLASS_NAMES)}), but this model's {num_classes} classes are "
                f"{', '.join(map(safe_text.md, names[:4]))}{' …' if num_classes > 4 else ''}: their IoU would mean nothing, so the "
                "browser is only available for mushroom models. Upload an image (and its label PNG) instead.")
    return None


def scene_choice(seed: int, count: int, size: int, index: int) -> dict[str, Any]:
    """The image choice of generated scene `index`, with its ground truth."""

    images, truths = scene_batch(seed, count, size)
    pixels = images[index]
    return {"source": "scene", "name": f"generated scene {index} (seed {seed})", "digest": compute.digest(pixels),
            "pixels": pixels, "truth": truths[index]}


def use_scene(seed: int, count: int, size: int, index: int) -> None:
    """Callback: make the scene the current image (settings stay, like the gallery's buttons)."""
    state.put(state.IMAGE_CHOICE, scene_choice(seed, count, size, int(index)))
    state.put(state.IMAGE_MESSAGE, None)
    state.put(state.LABEL_MESSAGE, None)


def _on_row(seed: int, count: int, size: int, order: list[int]) -> None:
    rows = (st.session_state.get(state.BROWSER_TABLE) or {}).get("selection", {}).get("rows", [])
    if rows and 0 <= rows[0] < len(order):
        st.session_state[state.BROWSER_PICK] = order[rows[0]]
        use_scene(seed, count, size, order[rows[0]])


def show(model: Any, model_key: str) -> None:
    """Generated scenes, or the images of a batch run with labels, worst mean IoU first."""
    source = st.radio("Images", state.BROWSER_SOURCES, key=state.BROWSER_SOURCE, horizontal=True,
                      format_func=state.BROWSER_SOURCE_LABELS.get)
    if source == "batch":
        _batch_run()
        return
    _scenes(model, model_key)


def _batch_run() -> None:
    """A batch results folder (under the dataset page's root) ranked by its recorded IoU; opening an image
    keeps this page (the main view is above)."""
    from dashboard import dataset_view, label_view

    result = dataset_view.folder_results(
        "Batch results folder", state.BROWSER_FOLDER,
        f"A folder under {dataset_view.results_root()} holding a batch run made with --labels (or several runs in "
        "subfolders).",
        "Type the folder of a batch run (`python -m explainers.batch … --labels DIR --out FOLDER`) to rank its "
        "images by mean IoU, worst first.")
    if result is None:
        return
    methods = list(result["methods"]) or list(registry.DEFAULT_METHODS[:1])
    label_view.ranking(result["tables"].get("iou") or [], methods[0], dataset_view.open_in_main_view,
                       key="browser-iou", switch=False)
    if st.session_state.get(dataset_view.PROBLEM):
        st.error(safe_text.md(st.session_state[dataset_view.PROBLEM]))


def _scenes(model: Any, model_key: str) -> None:
    seed_col, count_col, toggle_col = st.columns([1, 1, 2], vertical_alignment="bottom")
    seed = int(seed_col.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=state.BROWSER_SEED))
    count = int(count_col.selectbox("Scenes", state.BROWSER_COUNTS, key=state.BROWSER_COUNT))
    on = toggle_col.toggle("Generate, segment and rank the scenes", key=state.BROWSER_ON)
    if not on:
        st.caption("Generated scenes come with their ground truth: the table ranks them by mean IoU, worst "
                   "first, so the failures are easy to find. Turn the switch on to build it.")
        return
    reason = unavailable_reason(model)
    if reason is not None:
        st.info(reason)
        return
    try:
        data = ranked(model_key, seed, count, model)
    except ExplainerError as error:
        st.error(f"The scenes cannot be segmented by this model: {safe_text.md(error)}")
        return
    size, rows = data["size"], data["rows"]
    order = [row["index"] for row in rows]
    table = _table(model_key, seed, count, model)
    columns = {
        "scene": st.column_config.ImageColumn("scene", width="small"),
        "errors": st.column_config.ImageColumn("errors", width="small",
                                               help="Misclassified pixels red, correct objects green."),
        "#": st.column_config.NumberColumn("#", width="small", help="Index of the scene in the batch."),
        "mean IoU": st.column_config.ProgressColumn("mean IoU", min_value=0.0, max_value=1.0, format="%.3f"),
    }
    st.dataframe(table, hide_index=True, key=state.BROWSER_TABLE, column_config=columns, row_height=64,
                 height=min(64 * len(table) + 40, 460), on_select=lambda: _on_row(seed, count, size, order),
                 selection_mode="single-row", placeholder="–")
    if st.session_state.get(state.BROWSER_PICK) not in order:
        st.session_state[state.BROWSER_PICK] = order[0]
    by_index = {row["index"]: row for row in rows}
    pick_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    pick = pick_col.selectbox("Scene", order, key=state.BROWSER_PICK,
                              format_func=lambda k: f"#{k} · mean IoU {by_index[k]['mean_iou']:.3f}")
    current = state.get(state.IMAGE_CHOICE) or {}
    active = current.get("source") == "scene" and current.get("name") == scene_choice(seed, count, size,
                                                                                        pick)["name"]
    button_col.button("✓ In use" if active else "Use this scene", key="browser-use", on_click=use_scene,
                      args=(seed, count, size, pick), disabled=active, width="stretch")
    st.caption(f"{count} scenes from seed {seed}, worst mean IoU first (– = class absent from both maps). Click a "
               "row, or pick a scene and press the button, to explain it; its ground truth comes along.")


def _table(model_key: str, seed: int, count: int, model: Any) -> list[dict[str, Any]]:
    """Rows of the browser table (thumbnails as data URIs), in ranked order (`compute.scene_table`)."""
    return compute.scene_table(model_key, seed, count, lambda: _rows(model_key, seed, count, model))


def _rows(model_key: str, seed: int, count: int, model: Any) -> list[dict[str, Any]]:
    data = ranked(model_key, seed, count, model)
    images, _ = scene_batch(seed, count, data["size"])
    names = figures.class_names(data["num_classes"])
    table = []
    for row in data["rows"]:
        k = row["index"]
        image = images[k] if images[k].shape[:2] == data["truths"][k].shape else None
        errors = (figures.confusion_overlay(image, data["truths"][k], data["predictions"][k])
                  if image is not None else None)
        table.append({
            "scene": figures.thumbnail_uri(images[k]),
            "errors": figures.thumbnail_uri(errors) if errors is not None else None,
            "#": k,
            "mean IoU": round(row["mean_iou"], 3),
            **{name: (None if np.isnan(v) else round(float(v), 3)) for name, v in zip(names, row["class_iou"],
                                                                                      strict=True)},
        })
    return table
