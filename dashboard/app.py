"""segexplain dashboard: `streamlit run dashboard/app.py`.

This file reads top to bottom as the page does: the sidebar (model, image, advanced settings),
then the loop view (`loop.py`: the region on the left, the maps of that region on the right, the
agreement, layer sweep, faithfulness and export in tabs under them), then the sections that depend
on the image only (ground truth, class overview, gallery, image browser). The pieces live in the
modules beside it; the numbers all come from `explainers` and `models` (see `compute.py`).
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
        browser,
        compute,
        figures,
        gallery,
        guard,
        layout,
        loop,
        overview_view,
        quality_view,
        runtime,
        safe_text,
        share,
        sidebar,
        state,
    )
    from explainers import ExplainerError  # noqa: E402
except ImportError as missing:  # a half-installed environment: say so instead of a traceback
    st.error(f"segexplain cannot start: {missing}. Install the requirements with "
             "`pip install -r requirements.txt` and run the app from the repository root.")
    st.stop()

runtime.keep_keras_session()  # no TensorFlow kernel-cache reset after every run (see runtime.py)
compute.keep_layer_inputs()  # a new region runs only the layers after the explained one
state.init()
share.restore(sidebar.choose_sample)  # a reload or a shared link: the comparison in the URL (share.py)
st.markdown(layout.CSS, unsafe_allow_html=True)

# ---- Sidebar: model, image, advanced settings -------------------------------------------------
with st.sidebar:
    st.markdown("### segexplain")
    st.caption("Why does the network segment this region? Mark a region, pick a class and a layer, and compare "
               "the attribution maps side by side.")
    # One block per section: a section that gains or loses a line (a message, the class-names expander,
    # a resize note) does not move the ones below it, which Streamlit would redraw (an open expander closed).
    with st.container():
        loaded = sidebar.model_section()
    with st.container():
        choice = sidebar.image_section()
    settings = sidebar.advanced_section()
if loaded is None:
    st.stop()
model, model_key, model_name = loaded
compute.warm_worker(model_key)  # the slow maps' process loads the model while the user draws
runtime.freeze_long_lived(f"model {model_key}")

try:
    image = compute.fitted(model_key, choice["digest"], choice["pixels"], model)
    prediction = compute.prediction(model_key, choice["digest"], image, model)
except ExplainerError as error:
    st.error(f"This image cannot be used with this model: {safe_text.md(error)}")
    st.stop()
labels = prediction.labels
working_note = sidebar.working_size_note(model, image.shape)
if working_note:
    st.sidebar.caption(working_note)
names = figures.class_names(prediction.probs.shape[-1])
colors = figures.class_colors(len(names))
truth, truth_note = quality_view.ground_truth(choice, labels, len(names))

if share.message():
    st.warning(share.message())
if st.session_state.get(state.OPENED_NOTE):  # the dataset page opened an image here: said once
    st.success(st.session_state.pop(state.OPENED_NOTE))

# ---- The loop: region | maps, side by side, in a fragment --------------------------------------
# A stroke, class, layer or method change reruns only this fragment (not the sidebar, the gallery,
# the browser, the ground truth or the overview).
loop_context = loop.Context(model=model, model_key=model_key, model_name=model_name, choice=choice,
                            settings=settings, image=image, labels=labels, names=names, colors=colors, truth=truth)
loop.show(loop_context)
loop.sections(loop_context)  # agreement, sweep, faithfulness, trust, export: after the maps are painted

# ---- Sections that depend on the image, not on the region --------------------------------------
# Only the open tab runs and reaches the browser (a tab change reruns the page): the browser re-renders
# every element on the page for each message of a stroke's run, so hidden tabs would slow the loop
# (the gallery alone is ten pictures, buttons and captions; measured in `benchmarks/ui_latency.py`).
truth_tab, overview_tab, gallery_tab, browser_tab = st.tabs(list(state.IMAGE_TABS), key=state.IMAGE_TAB,
                                                            on_change="rerun")
if truth_tab.open:
    with truth_tab, guard.section("Ground truth and errors"):
        quality_view.panel(image, labels, truth, truth_note, names, colors, choice)
if overview_tab.open:
    with overview_tab:
        overview_view.section(model, model_key, image, choice["digest"], settings["target"], labels, names,
                              choice["name"])
if gallery_tab.open:
    with gallery_tab, guard.section("Sample gallery"):
        gallery.show()
if browser_tab.open:
    with browser_tab, guard.section("Image browser"):
        browser.show(model, model_key)
