"""The sidebar: which model, which image, advanced settings.

The current model and image live in session state (`state.MODEL_CHOICE`, `state.IMAGE_CHOICE`);
the widgets here only propose changes through callbacks. A proposal that fails (a file that is not
an image, a model Keras or the explainers refuse) leaves the current choice untouched and puts a
one-line reason on screen. The handlers `image_from_upload` and `model_from_upload` are plain
functions so tests can call them with bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import choices, class_names_input, compute, state
from explainers import ExplainerError, images
from explainers.images import decode_image
from models import ModelLoadError, scenes
from models.loader import MODEL_SUFFIXES

MODEL_DIR = Path(tempfile.gettempdir()) / "segexplain-uploaded-models"
KEPT_MODELS = 5  # uploaded model folders kept on disk (newest first); the older ones are deleted


# ---------------------------------------------------------------------------------------------
# Handlers (no widgets): bytes in, choice or one-line message out


def image_from_upload(name: str, data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Decode an uploaded file into an image choice, or say in one line why it cannot be used."""
    try:
        pixels = decode_image(data)
    except (ExplainerError, ValueError) as error:
        return None, f"“{name}” was not used: {error}"
    return {"source": "upload", "name": name, "digest": compute.digest(pixels), "pixels": pixels}, None


def image_from_sample(name: str) -> dict[str, Any]:
    pixels = compute.sample(name)
    return {"source": "sample", "name": name, "digest": compute.digest(pixels), "pixels": pixels}


def model_from_upload(name: str, data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Store an uploaded model file, load and validate it; a refusal keeps the previous model.

    A refused file is deleted; an accepted one stays (the cached model may need it), but only the
    newest `KEPT_MODELS` uploads stay on disk."""
    file_digest = compute.digest(data)
    safe_name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(name).name).lstrip(".") or "model"
    folder = MODEL_DIR / file_digest  # one folder per content, the user's file name inside (for messages)
    path = folder / safe_name
    written = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            written = True
            path.write_bytes(data)
        os.utime(folder)  # the newest upload is the last one pruned
    except OSError as error:  # e.g. a full disk: nothing half-written stays behind
        if written:
            _forget(path)
        return None, f"“{name}” could not be stored, the previous model stays active: {_one_line(error)}"
    choice = {"kind": "upload", "name": name, "digest": file_digest, "path": str(path), "key": f"upload:{file_digest}"}
    try:
        compute.uploaded_model(choice["key"], str(path))
    except (ModelLoadError, ExplainerError, OSError) as error:
        _forget(path)
        return None, f"“{name}” was not loaded, the previous model stays active: {_one_line(error)}"
    _prune_uploads(keep=folder)
    return choice, None


def _forget(path: Path) -> None:
    """Delete a refused or half-written model file, and its folder once empty; errors are ignored."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only when empty: an earlier upload of the same bytes may live there


def _prune_uploads(keep: Path) -> None:
    """Delete all but the newest `KEPT_MODELS` upload folders (never `keep`, the one just accepted)."""
    try:
        folders = [f for f in MODEL_DIR.iterdir() if f.is_dir() and f != keep]
        folders.sort(key=lambda f: f.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in folders[max(KEPT_MODELS - 1, 0):]:
        shutil.rmtree(old, ignore_errors=True)


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def active_model() -> tuple[Any, str, str] | None:
    """(model, cache key, display name) of the current choice, or None with an error on screen."""
    choice = state.get(state.MODEL_CHOICE)
    if choice.get("kind") == "upload":
        try:
            return compute.uploaded_model(choice["key"], choice["path"]), choice["key"], choice["name"]
        except (ModelLoadError, ExplainerError, OSError) as error:
            state.put(state.MODEL_CHOICE, {"kind": "default"})
            state.put(state.MODEL_MESSAGE, f"The uploaded model is no longer available: {_one_line(error)}")
    key = compute.default_model_key()
    try:
        return compute.default_model(key), key, "shipped PSPNet (mushroom scenes)"
    except (ModelLoadError, ExplainerError, OSError) as error:
        st.error(f"The default model could not be loaded: {_one_line(error)}")
        return None


def active_image() -> dict[str, Any]:
    choice = state.get(state.IMAGE_CHOICE)
    if choice is None:
        choice = image_from_sample(state.get(state.SAMPLE) or scenes.sample_names()[0])
        state.put(state.IMAGE_CHOICE, choice)
    return choice


# ---------------------------------------------------------------------------------------------
# Callbacks


def _on_upload(widget: str, handler, message_key: str, choice_key: str) -> None:
    """Run an upload handler; a refused file only sets the message, so the previous choice stays."""
    uploaded = st.session_state.get(widget)
    if uploaded is None:
        return
    choice, message = handler(uploaded.name, uploaded.getvalue())
    state.put(message_key, message)
    if choice is not None:
        state.put(choice_key, choice)


def _uploader(label: str, types: list[str], widget: str, handler, message_key: str, choice_key: str,
              help_text: str) -> None:
    """An upload widget whose handler runs on change, and the one-line reason of its last refusal."""
    st.file_uploader(label, type=types, key=widget, on_change=_on_upload,
                     args=(widget, handler, message_key, choice_key), help=help_text)
    message = state.get(message_key)
    if message:
        st.error(message)


def _use_default_model() -> None:
    state.put(state.MODEL_CHOICE, {"kind": "default"})
    state.put(state.MODEL_MESSAGE, None)


def choose_sample(name: str | None = None) -> None:
    """Callback of the gallery: make sample `name` (default: the selectbox's) the current image."""
    if name is None:
        name = st.session_state.get(state.SAMPLE)
    else:
        st.session_state[state.SAMPLE] = name
    state.put(state.IMAGE_CHOICE, image_from_sample(name))
    state.put(state.IMAGE_MESSAGE, None)


# ---------------------------------------------------------------------------------------------
# Sections


def model_section() -> tuple[Any, str, str] | None:
    st.header("Model")
    _uploader("Upload a Keras model (.keras)", [suffix.lstrip(".") for suffix in MODEL_SUFFIXES],
              state.MODEL_UPLOAD, model_from_upload, state.MODEL_MESSAGE, state.MODEL_CHOICE,
              "Loaded in Keras safe mode. One image input, a per-pixel class output "
              "[H, W, classes] and at least one 2-D convolution are required.")
    loaded = active_model()
    if loaded is None:
        return None
    model, key, name = loaded
    class_names_input.show(model, key)
    if key.startswith("upload:"):
        st.caption(f"Active: uploaded **{name}**")
        st.button("Use the shipped model instead", on_click=_use_default_model)
    else:
        st.caption(f"Active: {name}")
    with st.expander("Architecture: explainable layers", expanded=False):
        layers, default = compute.layer_table(key, model)
        kinds = {info.kind for info in layers}
        rows = [{"layer": info.name, "output": choices.shape_text(info.output_shape),
                 **({"kind": info.kind} if len(kinds) > 1 else {})} for info in layers]
        st.dataframe(rows, hide_index=True, height=min(36 * len(rows) + 40, 420))
        st.caption(f"{len(rows)} layers, forward order; default: `{default}`.")
    return loaded


def image_section() -> dict[str, Any]:
    st.header("Image")
    names = scenes.sample_names()
    if state.SAMPLE not in st.session_state:
        st.session_state[state.SAMPLE] = names[0]
    current = st.selectbox("Sample scene", names, key=state.SAMPLE, on_change=choose_sample)
    st.caption(scenes.sample_description(current))
    _uploader("…or upload an image (PNG, JPEG, …)", list(images.EXTENSIONS),
              state.IMAGE_UPLOAD, image_from_upload, state.IMAGE_MESSAGE, state.IMAGE_CHOICE,
              "Any size: it is resized to the model's input size. The previous image stays "
              "if the file cannot be read.")
    choice = active_image()
    height, width = choice["pixels"].shape[:2]
    origin = {"sample": "sample", "scene": "browser:"}.get(choice["source"], "upload")
    truth = " · with ground truth" if choice.get("truth") is not None or choice["source"] == "sample" else ""
    st.caption(f"Active: {origin} **{choice['name']}** ({width}×{height} px){truth}")
    return choice


def advanced_section() -> dict[str, Any]:
    with st.expander("Advanced", expanded=False):
        st.radio("Explain", state.TARGETS, key=state.TARGET, horizontal=True,
                 format_func={"logits": "logits (default)", "probabilities": "probabilities"}.get,
                 help="Gradients of the pre-softmax class logits, or of the class probabilities.")
        st.number_input("XRAI integration steps", min_value=2, max_value=500, step=10, key=state.XRAI_STEPS,
                        help="Integrated-gradient steps per baseline (two baselines). 100 is the usual choice.")
        st.selectbox("XRAI region selection", state.XRAI_ALGORITHMS, key=state.XRAI_ALGORITHM,
                     help="'full' grows regions greedily by attribution density; 'fast' is much cheaper.")
    return {"target": state.get(state.TARGET), "xrai_steps": int(state.get(state.XRAI_STEPS)),
            "xrai_algorithm": state.get(state.XRAI_ALGORITHM)}
