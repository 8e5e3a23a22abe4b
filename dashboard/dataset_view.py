"""Dataset view: a batch run's context-reliance matrix, and the images behind each cell.

Open a results folder on the server (a batch output folder, a folder of several runs, e.g. one per
explained class, or an analysis folder written by `python -m explainers.dataset_analysis`). Folders
are only opened under `results_root()` (environment variable `SEGEXPLAIN_RESULTS_ROOT`, default the
directory the app was started from), so a visitor cannot browse the server's disk. The tables come
from `explainers.dataset_analysis`; this module only shows them.

A cell of the heatmap (picked under the chart; a click on the chart sets the pickers when Plotly reports
it as a point selection) lists the images with the largest share in it; "Open in main view" makes that image, its explained region and class the main view's current choice, with
its ground truth when the run had one (through the same session-state keys the sidebar and the
tests use: `state.IMAGE_CHOICE`, `state.INJECTED_REGION`, `state.CLASS`).

A run made with `--labels` also gets its images ranked by mean IoU, worst first (`label_view`), each
openable with its explained region or with its worst error region (region mode "Error region").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import compute, label_view, safe_text, state
from explainers import dataset_analysis, label_scores, registry

ROOT_ENV = "SEGEXPLAIN_RESULTS_ROOT"
FOLDER = "dataset_folder"  # text input: results folder (relative to the root, or absolute under it)
METHOD = "dataset_method"
SOURCE = "dataset_source"
CELL_CLASS = "dataset_explained_class"
CELL_ON = "dataset_on_class"
CHART = "dataset_matrix"
LAST_POINT = "dataset_last_point"  # the chart click already applied to the pickers
SWITCH = "dataset_switch"  # set by "Open in main view": the next run goes to the main page
PROBLEM = "dataset_problem"  # why the last "Open" did not open the image, or None
TOP = 10  # images listed per cell


def results_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or Path.cwd()).expanduser().resolve()


def resolve_folder(text: str) -> tuple[Path | None, str | None]:
    """The folder a typed path names, if it is an existing folder under the root; else why not."""
    root = results_root()
    text = text.strip()
    if not text:
        return None, None
    folder = (root / text).expanduser().resolve()
    if folder != root and not folder.is_relative_to(root):
        return None, f"Only folders under the results root ({root.name}/) can be opened."
    if not folder.is_dir():
        return None, f"“{text}” is not a folder under the results root."
    return folder, None


def _stamp(folder: Path) -> tuple:
    """Changes when any run or analysis file in the folder is rewritten (the cache follows)."""
    files = [folder / "analysis.json", folder / "summary.csv", *(p / "summary.csv" for p in folder.iterdir()
                                                                 if p.is_dir())]
    return tuple((str(f), f.stat().st_mtime_ns) for f in files if f.is_file())


def folder_results(label: str, key: str, help_text: str, hint: str) -> dict[str, Any] | None:
    """The input for a results folder, then its results; None after saying why there are none (no folder
    typed yet: `hint`; a folder outside the root or unreadable: the reason)."""
    st.text_input(label, key=key, placeholder="e.g. results/scenes", help=help_text)
    folder, problem = resolve_folder(st.session_state.get(key) or "")
    if problem:
        st.error(safe_text.md(problem))
        return None
    if folder is None:
        st.caption(hint)
        return None
    try:
        return results(folder)
    except (ValueError, OSError) as error:
        st.error(f"This folder cannot be read as batch results: {safe_text.md(str(error).splitlines()[0])}")
        return None


def results(folder: Path) -> dict[str, Any]:
    """The tables of a results folder, cached until one of its files changes."""
    return compute.batch_results(str(folder), _stamp(folder))


def matrix_figure(matrix: np.ndarray, names: list[str], counts: np.ndarray, title: str) -> go.Figure:
    rows = [i for i in range(len(names)) if not np.isnan(matrix[i]).all()]
    z = matrix[rows]
    text = [[("" if np.isnan(v) else f"{v:.2f}") for v in row] for row in z]
    xs, ys = _axis_labels(names, counts)
    fig = go.Figure(go.Heatmap(
        z=z, x=xs, y=[ys[i] for i in rows], text=text, texttemplate="%{text}",
        colorscale="Viridis", zmin=0, zmax=1, colorbar={"title": "share"},
        hovertemplate="explained %{y}<br>mass on %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=safe_text.html(title), xaxis_title="attribution mass on pixels of class", yaxis_title="explained class",
                      yaxis_autorange="reversed", height=120 + 48 * len(rows), margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def _apply_click(names: list[str], counts: np.ndarray) -> None:
    """A new click on the heatmap sets the cell pickers (before they are drawn)."""
    event = st.session_state.get(CHART) or {}
    points = (event.get("selection") or {}).get("points") or []
    if not points or points[0] == state.get(LAST_POINT):
        return
    st.session_state[LAST_POINT] = points[0]
    x, y = str(points[0].get("x", "")), str(points[0].get("y", ""))
    xs, ys = _axis_labels(names, counts)
    if x in xs and y in ys:
        st.session_state[CELL_ON] = xs.index(x)
        st.session_state[CELL_CLASS] = ys.index(y)


def _axis_labels(names: list[str], counts: np.ndarray) -> tuple[list[str], list[str]]:
    """The matrix's column and row labels: class names from a run's files, so escaped (Plotly renders
    tags such as <a href> in axis labels and hover text)."""
    return ([safe_text.html(n) for n in names],
            [safe_text.html(f"{names[i]} (n={int(counts[i])})") for i in range(len(names))])


def open_in_main_view(run: str, output: str, method: str, errors: bool = False, switch: bool = True) -> None:
    """Callback: the image, region and class of one batch output become the main view's choice.

    `errors`: its ground truth's worst error region instead (region mode "Error region", the class with the
    lowest IoU, its larger error: `explainers.label_scores.worst_error`). `switch`: go to the main page (the
    dataset page); the image browser is on the main page already."""
    folder = Path(run).resolve()
    if not folder.is_relative_to(results_root()) or Path(output).name != output:
        st.session_state[PROBLEM] = "This image lies outside the results root and is not opened."
        return
    try:
        arrays = dataset_analysis.image_arrays(folder, output)
    except (ValueError, OSError) as error:
        st.session_state[PROBLEM] = f"{output} cannot be opened: {str(error).splitlines()[0]}"
        return
    st.session_state[PROBLEM] = None
    pixels = np.asarray(arrays["image"], np.uint8)
    choice = {"source": "dataset", "name": f"{output} ({Path(run).name})", "digest": compute.digest(pixels),
              "pixels": pixels, "batch_output": (run, output)}  # where it came from: the export records it
    truth = arrays["truth"]
    if truth is not None:  # void pixels (255) come along: the main view shows them and scores without them
        truth = np.asarray(truth)
        choice["truth"] = truth.astype(np.uint8) if truth.size and truth.min() >= 0 and truth.max() <= 255 else truth
    state.put(state.IMAGE_CHOICE, choice)
    state.put(state.IMAGE_MESSAGE, None)
    worst = None
    if errors and "truth" in choice and arrays["labels"] is not None:
        worst = label_scores.worst_error(truth, arrays["labels"])
    if worst is not None:
        st.session_state.pop(state.INJECTED_REGION, None)
        st.session_state[state.REGION_MODE] = "errors"
        st.session_state[state.ERROR_KIND], st.session_state[state.ERROR_CLASS] = worst
        state.put(state.CLASS_FOR_REGION, None)  # the explained class follows the error region
    else:
        st.session_state[state.INJECTED_REGION] = arrays["region"]
        if arrays["class_index"] is not None:
            st.session_state[state.CLASS] = arrays["class_index"]
            state.put(state.CLASS_FOR_REGION, compute.digest(arrays["region"]))  # keep this class for this region
    methods = list(st.session_state.get(state.METHODS) or registry.DEFAULT_METHODS)
    if method not in methods:
        methods = [*methods, method]
    st.session_state[state.METHODS] = methods  # the user's methods, and the batch's
    what = ("its largest error region (region mode “Error region”) and its ground truth are set" if worst is not None
            else "its explained region (outlined on the canvas and the maps) and class are set")
    if errors and worst is None:
        what += " (no ground truth, or no error on its non-void pixels, so no error region)"
    st.session_state[state.OPENED_NOTE] = (
        f"Opened {safe_text.md(output)} from the batch results: {what}, with {safe_text.md(method)}, the batch's "
        "method, among your methods. "
        "Draw on the canvas to explain another region of it.")
    if switch:
        st.session_state[SWITCH] = True  # `show` switches to the main page (not allowed inside a callback)


def show() -> None:
    """The whole view: folder input, matrix heatmap, the chosen cell's images. After "Open in main view"
    it goes to the main page itself, which says what was opened."""
    if st.session_state.pop(SWITCH, False):
        st.switch_page("app.py")
    result = folder_results("Results folder", FOLDER,
                            f"A folder under {results_root()} holding a batch run (run.json), several runs in "
                            "subfolders, or an analysis (analysis.json).",
                            "Type the folder of a batch run (`python -m explainers.batch … --out FOLDER`) to see, "
                            "class by class, where the attribution mass lies.")
    if result is None:
        return
    tables, names = result["tables"], list(result["class_names"])
    rows = tables.get("context_matrix") or []
    methods = sorted({r["method"] for r in rows})
    if not methods:
        st.info("The runs in this folder have no explained images yet.")
        return
    sources = [s for s in dataset_analysis.SOURCES if any(r["source"] == s for r in rows)]
    method_col, source_col = st.columns(2)
    method = method_col.selectbox("Method", methods, key=METHOD)
    source = source_col.radio("Classes of the pixels", sources, key=SOURCE, horizontal=True,
                              format_func={"predicted": "predicted labels", "labelled": "ground truth"}.get)
    matrix = dataset_analysis.matrix(rows, method, source, len(names))
    counts = np.zeros(len(names))
    for r in rows:
        if r["method"] == method and r["source"] == source and r["class"] == r["explained_class"]:
            counts[r["explained_class"]] = r["images"]
    st.plotly_chart(matrix_figure(matrix, names, counts, f"Context reliance · {method} · {source} labels"),
                    key=CHART, on_select="rerun", selection_mode="points")
    st.caption("Row c: of the attribution mass of maps explaining class c, the share lying on pixels of each class, "
               "averaged over the images explaining c (rows sum to 1). Pick a cell under the chart to list its images.")
    _apply_click(names, counts)
    explained = [i for i in range(len(names)) if counts[i] > 0]
    if st.session_state.get(CELL_CLASS) not in explained:
        st.session_state[CELL_CLASS] = explained[0]
    if st.session_state.get(CELL_ON) not in range(len(names)):
        st.session_state[CELL_ON] = explained[0]
    c_col, k_col = st.columns(2)
    c = c_col.selectbox("Explained class", explained, key=CELL_CLASS, format_func=names.__getitem__)
    k = k_col.selectbox("Mass on class", list(range(len(names))), key=CELL_ON, format_func=names.__getitem__)
    top = dataset_analysis.top_images(tables.get("image_shares") or [], method, source, c, k, TOP)
    st.markdown(f"**Images where {method}'s map of *{safe_text.md(names[c])}* puts most mass on *{safe_text.md(names[k])}***")
    for i, row in enumerate(top):
        text_col, button_col = st.columns([4, 1], vertical_alignment="center")
        text_col.markdown(f"{safe_text.code(row['image'])} · share {float(row['share']):.3f} · {safe_text.md(Path(row['run']).name)}")
        button_col.button("Open in main view", key=f"dataset-open-{i}", on_click=open_in_main_view,
                          args=(row["run"], row["output"], method))
    if not top:
        st.caption("No image in this cell.")
    if st.session_state.get(PROBLEM):
        st.error(safe_text.md(st.session_state[PROBLEM]))
    label_view.ranking(tables.get("iou") or [], method, open_in_main_view, key="dataset-iou", switch=True)
    _side_tables(tables)


def _side_tables(tables: dict[str, list[dict]]) -> None:
    with st.expander("Deletion and insertion against the random map, per method", expanded=False):
        st.dataframe(tables.get("faithfulness") or [], hide_index=True)
    with st.expander("Images where the methods disagree most", expanded=False):
        st.dataframe((tables.get("disagreement") or [])[:50], hide_index=True)
    with st.expander("Images whose attribution falls mostly outside the explained class", expanded=False):
        st.dataframe([r for r in tables.get("outside") or [] if r.get("mostly_outside") in (True, "True")][:50],
                     hide_index=True)
