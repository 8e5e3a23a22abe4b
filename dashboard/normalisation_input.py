"""Sidebar widget: mean and std for an uploaded PyTorch file that does not carry its own.

ONNX files hold no normalisation, and a wrong mean/std gives maps of a network seeing a washed-out
image, so the page says which values are in force (`torch_files.Preprocessing.describe`) and lets the
user give the ones the network was trained with. The values travel in the model choice: its cache key
and the slow-map worker's model source include them, so no map of the old setting is shown for the new.
The rules (file wins, then the user, then ImageNet's) live in `explainers.torch_files`.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import safe_text, state
from explainers import ExplainerError
from explainers.torch_files import parse_triple

MEAN = "normalisation_mean"  # text inputs, per model digest
STD = "normalisation_std"
PROBLEM = "normalisation_problem"  # why the last values were not used, or None


def model_key(digest: str, preprocessing: dict[str, tuple[float, ...]] | None) -> str:
    """The cache identity of an upload under a given mean/std (maps of one setting never serve another)."""
    if not preprocessing:
        return f"upload:{digest}"
    values = ";".join(f"{k}={','.join(f'{v:g}' for v in preprocessing[k])}" for k in sorted(preprocessing))
    return f"upload:{digest}:{values}"


def _triple_text(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def show(model: Any, reload: Any) -> None:
    """The normalisation line of an uploaded PyTorch file and, where the file has no mean or std, fields
    to set them. `reload(preprocessing)` loads the stored file again with them and returns an error
    sentence or None."""
    preprocessing = getattr(model, "file_preprocessing", None)
    if preprocessing is None:  # a Keras model normalises inside itself
        return
    st.caption(f"Input: {safe_text.md(preprocessing.describe())}.")
    open_keys = [k for k in ("mean", "std") if _user_may_set(preprocessing.sources.get(k, ""))]
    if not open_keys:
        return
    digest = (state.get(state.MODEL_CHOICE) or {}).get("digest", "")
    with st.expander("Normalisation (the file has none)", expanded=False):
        st.caption("The network sees (image / 255 − mean) / std, per channel R, G, B on the 0–1 scale, as in "
                   "`transforms.Normalize`: give the values it was trained with.")
        st.text_input("Mean R, G, B", value=_triple_text(preprocessing.mean), key=f"{MEAN}_{digest}",
                      disabled="mean" not in open_keys)
        st.text_input("Std R, G, B", value=_triple_text(preprocessing.std), key=f"{STD}_{digest}",
                      disabled="std" not in open_keys)
        st.button("Apply", key=f"normalisation_apply_{digest}", on_click=_apply,
                  args=(digest, tuple(open_keys), reload))
        if st.session_state.get(PROBLEM):
            st.error(safe_text.md(st.session_state[PROBLEM]))


def _user_may_set(source: str) -> bool:
    """A value the file did not give (ImageNet's default, or the user's own): the user may change it."""
    return source == "your setting" or "not in the file" in source


def _apply(digest: str, open_keys: tuple[str, ...], reload: Any) -> None:
    """Callback: parse the fields; a bad value leaves the model as it was and says why."""
    wanted: dict[str, tuple[float, ...]] = {}
    try:
        for key, field in (("mean", MEAN), ("std", STD)):
            if key in open_keys:
                wanted[key] = parse_triple(st.session_state.get(f"{field}_{digest}", ""), key)
    except ExplainerError as error:
        st.session_state[PROBLEM] = str(error)
        return
    st.session_state[PROBLEM] = reload(wanted)
