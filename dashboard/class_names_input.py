"""Sidebar widget: the class names of an uploaded model (labels file, typed, or from the model file).

The rules (which source wins, file formats) live in `models.class_names`; this module only shows
the widgets and keeps the result in session state for the current model, where
`figures.class_names` reads it. The shipped network keeps its mushroom names and shows no widget.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import safe_text, state
from models import CLASS_NAMES
from models import class_names as names_rules

CURRENT = "class_names"  # {"model_key", "names", "source"} of the model on screen
MESSAGE = "class_names_message"  # why the last labels file or text was not used, or None


def _given(model_key: str) -> tuple[list[str] | None, str | None]:
    """The user's names for this model (typed text wins over a file), or a one-line reason."""
    text = st.session_state.get(f"{CURRENT}_text_{model_key}") or ""
    upload = st.session_state.get(f"{CURRENT}_file_{model_key}")
    try:
        if text.strip():
            return names_rules.parse_typed(text), None
        if upload is not None:
            return names_rules.parse_labels(upload.getvalue(), upload.name), None
    except names_rules.ClassNamesError as error:
        return None, f"The class names were not used: {error}"
    return None, None


def show(model: Any, model_key: str) -> None:
    """The class-names widgets for an uploaded model; stores the names `figures.class_names` returns."""
    import explainers

    num_classes = explainers.inspect_model(model).num_classes
    choice = state.get(state.MODEL_CHOICE) or {}
    if choice.get("kind") != "upload":
        names, source = names_rules.resolve(num_classes, shipped=CLASS_NAMES)
        st.session_state[CURRENT] = {"model_key": model_key, "names": names, "source": source}
        return
    with st.expander(f"Class names ({num_classes} classes)", expanded=False):
        st.file_uploader("Labels file (.txt or .json)", type=["txt", "json"], key=f"{CURRENT}_file_{model_key}",
                         help="One name per line in class-index order (`index name` lines work too), or JSON: a "
                              "list of names or an {index: name} object.")
        st.text_area("…or type them", key=f"{CURRENT}_text_{model_key}", height=80,
                     placeholder="background, road, car, …",
                     help="One name per line, or comma-separated, in class-index order. Typed names win over "
                          "the file.")
        given, problem = _given(model_key)
        # the file's own names, kept on the model by its loader (.keras metadata, transformers id2label)
        stored = list(getattr(model, "class_names", None) or []) or None
        names, source = names_rules.resolve(num_classes, given=given, stored=stored)
        if problem:
            st.error(safe_text.md(problem))
        st.caption(f"Names: {source}. " + ", ".join(map(safe_text.md, names[:8])) + (" …" if len(names) > 8 else ""))
    st.session_state[CURRENT] = {"model_key": model_key, "names": names, "source": source}


def current_names(num_classes: int) -> list[str]:
    """The names of the model on screen when they fit `num_classes`; the shipped network's names for it."""
    try:
        current = st.session_state.get(CURRENT)
        choice = st.session_state.get(state.MODEL_CHOICE)
    except Exception:  # outside a Streamlit run: behave as for the shipped network
        current, choice = None, None
    if current and len(current["names"]) == num_classes:
        return list(current["names"])
    shipped = not choice or choice.get("kind") != "upload"
    return names_rules.resolve(num_classes, shipped=CLASS_NAMES if shipped else None)[0]


def is_shipped_model() -> bool:
    """True when the shipped network is on screen (its mushroom classes and colours apply)."""
    try:
        choice = st.session_state.get(state.MODEL_CHOICE)
    except Exception:
        choice = None
    return not choice or choice.get("kind") != "upload"
