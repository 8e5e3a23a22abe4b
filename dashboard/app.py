"""segexplain dashboard: `streamlit run dashboard/app.py`.

This file reads top to bottom as the page does: sidebar (model, image, advanced settings), the
gallery, 1 · the region on the predicted mask, 2 · class, layer and methods, 3 · the maps and how
much they agree, 4 · the layer sweep, 5 · export, 6 · faithfulness scores of the maps,
7 · the class overview. The pieces live in the modules beside it; the
numbers all come from `explainers` and `models` (see `compute.py` for what is cached).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import streamlit as st  # noqa: E402

st.set_page_config(page_title="segexplain", page_icon="🍄", layout="wide")

try:
    import explainers  # noqa: E402, F401  (checks the library is installed)
    from dashboard import (  # noqa: E402
        choices,
        comparison,
        compute,
        export,
        faithfulness_view,
        figures,
        gallery,
        overview_view,
        region,
        sidebar,
        state,
    )
    from explainers import ExplainerError  # noqa: E402
except ImportError as missing:  # a half-installed environment: say so instead of a traceback
    st.error(f"segexplain cannot start: {missing}. Install the requirements with "
             "`pip install -r requirements.txt` and run the app from the repository root.")
    st.stop()

state.init()

st.title("segexplain", anchor=False)
st.caption("Why does the network segment this region? Mark a region of the predicted mask, pick a class "
           "and a layer, and compare Grad-CAM, Grad-CAM++, XRAI and Seg-Grad-CAM on one colour scale.")

# ---- Sidebar: model, image, advanced settings -------------------------------------------------
with st.sidebar:
    loaded = sidebar.model_section()
    choice = sidebar.image_section()
    settings = sidebar.advanced_section()
if loaded is None:
    st.stop()
model, model_key, model_name = loaded

with st.expander("Sample gallery (ordinary scenes and failure cases)", expanded=False):
    gallery.show()

# ---- Image browser: generated scenes ranked by IoU, worst first --------------------------------
from dashboard import browser, quality_view  # noqa: E402

with st.expander("Image browser: generated scenes, worst segmentation first", expanded=False):
    browser.show(model, model_key)

# ---- 1 · Image, predicted mask and the region to explain ---------------------------------------
try:
    image = compute.fitted(model_key, choice["digest"], choice["pixels"], model)
    prediction = compute.prediction(model_key, choice["digest"], image, model)
except ExplainerError as error:
    st.error(f"This image cannot be used with this model: {error}")
    st.stop()
labels = prediction.labels
names = figures.class_names(prediction.probs.shape[-1])
colors = figures.class_colors(len(names))

st.subheader("1 · Mark the region to explain")
truth, truth_note = quality_view.ground_truth(choice, labels, len(names))
mode = region.controls()
marked = region.mark(mode, image, labels, names, colors, canvas_id=f"{model_key}-{choice['digest']}",
                     truth=truth)
with st.expander("Ground truth and errors (per-class IoU)", expanded=True):
    quality_view.panel(image, labels, truth, truth_note, names, colors, choice)

# ---- 2 · Class, layer and methods ------------------------------------------------------------
st.subheader("2 · Class, layer and methods")
class_index, layer, methods = choices.show(marked.region if marked.error is None else None, labels, names,
                                           model, model_key)
method_settings = choices.method_settings()

# ---- 3 · The maps, side by side on one colour scale ------------------------------------------
st.subheader("3 · Attribution maps")
state.put(state.RESULTS, {})
explained_region, problem = region.finish(marked, labels, names, class_index)
state.put(state.RESULT_ERROR, problem)
if problem is not None:
    st.error(problem)
    st.stop()
if explained_region is None:
    st.info(marked.hint or "Mark a region to explain.")
    st.stop()
if not methods:
    st.info("Choose at least one method.")
    st.stop()

request = comparison.Request(
    model=model, model_key=model_key, image=image, image_key=choice["digest"], region=explained_region,
    class_index=int(class_index), layer=layer, methods=comparison.ordered(methods),
    target=settings["target"], xrai_steps=settings["xrai_steps"], xrai_algorithm=settings["xrai_algorithm"],
    **method_settings,
)
st.caption(f"Explaining **{names[class_index]}** ({settings['target']}) for the {marked.how} "
           f"({int(explained_region.sum())} px) at layer `{layer}`. Every map uses the colour scale below "
           "(0 = no attribution, 1 = the map's maximum); the white line is the region's outline.")
try:
    results = comparison.maps_row(request)
except ExplainerError as error:
    state.put(state.RESULT_ERROR, str(error))
    st.error(str(error))
    st.stop()
comparison.remember(results)
st.plotly_chart(figures.colorbar_figure(), key="colorbar", config={"displayModeBar": False})

st.markdown("**Agreement between the maps**")
comparison.agreement(results)
comparison.notes(results)

# ---- 4 · Layer sweep -----------------------------------------------------------------------------
with st.expander("4 · Layer sweep: Grad-CAM and Grad-CAM++ at every explainable layer", expanded=False):
    if st.toggle("Compute the sweep for this region and class", key=state.SWEEP):
        try:
            comparison.sweep(request)
        except ExplainerError as error:
            st.error(str(error))

# ---- 5 · Export ----------------------------------------------------------------------------------
st.subheader("5 · Export")
export_slot = st.container()  # filled at the end of the page: the zip includes section 6's scores when computed

# ---- 6 · Which map to believe? (faithfulness) ---------------------------------------------------
st.subheader("6 · Which map to believe?")
try:
    scores = faithfulness_view.show(request, results)
except ExplainerError as error:
    scores = None
    st.error(str(error))

# ---- 7 · Class overview ------------------------------------------------------------------------------
st.subheader("7 · Class overview")
try:
    overview_view.show(request, labels, names, choice["name"])
except ExplainerError as error:
    st.error(str(error))

# ---- 5 · Export (drawn into its place above) -------------------------------------------------------
with export_slot:
    files = export.files(request, results, choice, model_name, names, labels, marked.how,
                         faithfulness=scores.results if scores else None,
                         faithfulness_record=export.faithfulness_settings(scores.results, scores.ranking, scores.target,
                                                                          scores.steps) if scores else None)
    png_col, zip_col, _ = st.columns([1, 1, 2])
    png_col.download_button("Comparison (PNG)", files.png, file_name=f"{files.stem}.png", mime="image/png",
                            on_click="ignore")
    zip_col.download_button("Maps + settings (.zip)", files.zip, file_name=f"{files.stem}.zip",
                            mime="application/zip", on_click="ignore")
    st.caption("The zip holds the PNG, an .npz and a .json. The .npz has each map (`heatmap_<method>`, H×W in "
               "[0, 1]), the layer-resolution maps, the region mask, the image and the predicted labels, and, once "
               "section 6 has scored the maps, their deletion/insertion curves; the .json records model, image hash, "
               "region, class, layer, target, method parameters and the faithfulness ranking.")
