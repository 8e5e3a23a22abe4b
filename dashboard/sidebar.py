"""The sidebar: which model, which image, advanced settings.

The current model and image live in session state (`state.MODEL_CHOICE`, `state.IMAGE_CHOICE`).
Uploads are handled in the script body, keyed by the upload's file id, not in an `on_change`
callback: a callback that loads a model for seconds is lost when the user clicks another widget
meanwhile. The body marks a model load as pending before it starts, so a rerun that interrupted it
resumes it (or says it was interrupted); the result is written to session state before the next
Streamlit call. A refused proposal leaves the current choice untouched and puts one line on screen;
the other section's stale message is cleared. The session's model and its bytes are private to the
session (see `uploads`). The handlers `image_from_upload` and `model_from_upload` are plain
functions so tests can call them with bytes.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from dashboard import (
    choices,
    class_names_input,
    compute,
    guard,
    normalisation_input,
    safe_text,
    state,
    uploads,
    warmup,
)
from explainers import ExplainerError, images
from explainers.images import decode_image
from explainers.model_files import Limits, check_image_size
from explainers.torch_files import TORCH_SUFFIXES, torch_suffix
from models import ModelLoadError, scenes
from models.loader import MODEL_SUFFIXES, load_user_model, model_suffix

# Base folder of the private per-process upload folders (see `uploads`); tests point it elsewhere.
MODEL_DIR = Path(tempfile.gettempdir())
MODEL_INPUT = "model_input_size"  # session state: (height, width) of the active model's input (None: any)
WORKING_PIXELS = 2048 * 2048  # uploads above this are reduced once, in uint8, right after decoding
RETRY_MODEL = "retry_model_upload"  # session state: a failed or interrupted upload can be retried
LOG = logging.getLogger("segexplain.dashboard")


# ---------------------------------------------------------------------------------------------
# Handlers (no widgets): bytes in, choice or one-line message out


def image_from_upload(name: str, data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Decode an uploaded file into an image choice, or say in one line why it cannot be used.

    Images above `WORKING_PIXELS` are reduced here, in uint8 (a box filter), so no later step makes a
    float copy of a 40 MP photo; the choice records the original size under "original_size"."""
    try:
        pixels = decode_image(data)
    except (ExplainerError, ValueError) as error:
        return None, f"“{name}” was not used: {error}"
    except MemoryError:
        return None, f"“{name}” was not used: the server ran out of memory decoding it, downscale it first."
    height, width = pixels.shape[:2]
    choice = {"source": "upload", "name": name}
    if height * width > WORKING_PIXELS:
        scale = (WORKING_PIXELS / (height * width)) ** 0.5
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))
        choice["original_size"] = (width, height)
    return {**choice, "digest": compute.digest(pixels), "pixels": pixels}, None


def image_from_sample(name: str) -> dict[str, Any]:
    pixels = compute.sample(name)
    return {"source": "sample", "name": name, "digest": compute.digest(pixels), "pixels": pixels}


def model_from_upload(name: str, data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Store an uploaded model file in the session's private folder, load and validate it.

    The accepted choice carries the loaded model under "model" (the caller keeps it in the session's
    state); a refused file is deleted and the previous model stays."""
    file_digest = compute.digest(data)
    suffix = model_suffix(name) or torch_suffix(name) or ""
    try:
        path = uploads.store(MODEL_DIR, file_digest, suffix, data)
    except OSError as error:  # e.g. a full disk: nothing half-written stays behind
        return None, f"“{name}” could not be stored, the previous model stays active: {_reason(error)}"
    try:
        model = load_user_model(path, display_name=name)
    except (ModelLoadError, ExplainerError) as error:
        uploads.forget(path, MODEL_DIR)
        return None, f"“{name}” was not loaded, the previous model stays active: {_one_line(error)}"
    except MemoryError:
        uploads.forget(path, MODEL_DIR)
        return None, f"“{name}” was not loaded, the previous model stays active: the server ran out of memory."
    except Exception as error:  # an unexpected failure inside Keras: logged, one line, the file kept for a retry
        LOG.exception("loading an uploaded model failed")
        return None, (f"“{name}” was not loaded, the previous model stays active: loading failed unexpectedly "
                      f"({type(error).__name__}), retry or save the model again.")
    uploads.keep_only(MODEL_DIR, file_digest)
    choice = {"kind": "upload", "name": name, "digest": file_digest, "key": f"upload:{file_digest}", "model": model}
    return choice, None


def _reason(error: OSError) -> str:
    """An OS error without the server path it names."""
    return error.strerror or type(error).__name__


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def active_model() -> tuple[Any, str, str] | None:
    """(model, cache key, display name) of the current choice, or None with an error on screen.

    The uploaded model comes from the session's own state; if it is not there it is reloaded from the
    session's own bytes; if those are gone too the session is told at once, in this run."""
    choice = state.get(state.MODEL_CHOICE)
    if choice.get("kind") == "upload":
        model = uploads.kept_model(choice["digest"])
        problem = None
        if model is None:
            path = uploads.session_file(MODEL_DIR, choice["digest"])
            if path is None:
                problem = "its file is no longer stored for this session"
            else:
                try:
                    with st.spinner(f"Reloading “{safe_text.md(choice['name'])}”…"):
                        model = load_user_model(path, display_name=choice["name"],
                                                preprocessing=choice.get("preprocessing"))
                    uploads.keep_model(choice["digest"], model)
                except (ModelLoadError, ExplainerError, OSError, MemoryError) as error:
                    problem = _one_line(error)
        if model is not None:
            stored = uploads.session_file(MODEL_DIR, choice["digest"])
            if stored is not None:
                compute.note_upload_source(choice["key"], stored, choice.get("preprocessing"))
            return model, choice["key"], choice["name"]
        state.put(state.MODEL_CHOICE, {"kind": "default"})
        state.put(state.MODEL_MESSAGE, f"The uploaded model “{choice['name']}” is no longer available ({problem}), "
                                       "so the shipped model is active again: upload it again to use it.")
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
# Uploads, handled in the script body


def handle_model_upload(uploaded: Any) -> None:
    """Load a new model upload once (keyed by its file id); resume a load a rerun interrupted."""
    pending = st.session_state.get(uploads.PENDING_MODEL)
    if uploaded is None:
        if pending:  # the file left the uploader while its load was running
            st.session_state[uploads.PENDING_MODEL] = None
            state.put(state.MODEL_MESSAGE, f"Loading “{pending['name']}” was interrupted, the previous model stays "
                                           "active: upload it again.")
        return
    file_id = uploads.upload_id(uploaded)
    if st.session_state.get(uploads.DONE_MODEL) == file_id:
        return
    resumed = bool(pending) and pending.get("file") == file_id
    st.session_state[uploads.PENDING_MODEL] = {"file": file_id, "name": uploaded.name}
    verb = "Resuming the interrupted load of" if resumed else "Loading"
    with st.spinner(f"{verb} “{safe_text.md(uploaded.name)}”…"):
        choice, message = model_from_upload(uploaded.name, uploaded.getvalue())
        # written before any further Streamlit call, so a rerun requested meanwhile cannot lose it
        if choice is not None:
            model = choice.pop("model")
            uploads.keep_model(choice["digest"], model)
            state.put(state.MODEL_CHOICE, choice)
            # the CAM pass is traced while the page predicts and the user looks: the first stroke finds it ready
            warmup.start_on_load(choice["key"], model, state.get(state.METHODS), state.get(state.TARGET))
        state.put(state.MODEL_MESSAGE, message)
        state.put(state.IMAGE_MESSAGE, None)
        st.session_state[RETRY_MODEL] = bool(message and "unexpectedly" in message)
        st.session_state[uploads.DONE_MODEL] = file_id
        st.session_state[uploads.PENDING_MODEL] = None


def _reload_with(preprocessing: dict[str, tuple[float, ...]]) -> str | None:
    """Load the session's stored upload again under a new mean/std; the model stays as it was on failure."""
    choice = state.get(state.MODEL_CHOICE) or {}
    path = uploads.session_file(MODEL_DIR, choice.get("digest", ""))
    if choice.get("kind") != "upload" or path is None:
        return "The uploaded file is no longer stored for this session: upload it again."
    try:
        model = load_user_model(path, display_name=choice["name"], preprocessing=preprocessing)
    except (ModelLoadError, ExplainerError, OSError, MemoryError) as error:
        return f"The values were not used, the model stays as it was: {_one_line(error)}"
    uploads.keep_model(choice["digest"], model)
    state.put(state.MODEL_CHOICE, {**choice, "preprocessing": preprocessing,
                                   "key": normalisation_input.model_key(choice["digest"], preprocessing)})
    return None


def _retry_model() -> None:
    st.session_state[uploads.DONE_MODEL] = None
    st.session_state[RETRY_MODEL] = False


def handle_image_upload(uploaded: Any) -> None:
    """Decode a new image upload once (keyed by its file id)."""
    if uploaded is None:
        return
    file_id = uploads.upload_id(uploaded)
    if st.session_state.get(uploads.DONE_IMAGE) == file_id:
        return
    choice, message = image_from_upload(uploaded.name, uploaded.getvalue())
    if choice is not None:
        state.put(state.IMAGE_CHOICE, choice)
    state.put(state.IMAGE_MESSAGE, message)
    state.put(state.MODEL_MESSAGE, None)
    st.session_state[uploads.DONE_IMAGE] = file_id


def _use_default_model() -> None:
    uploads.drop_model()  # the session's upload no longer holds memory
    state.put(state.MODEL_CHOICE, {"kind": "default"})
    state.put(state.MODEL_MESSAGE, None)
    state.put(state.IMAGE_MESSAGE, None)


def choose_sample(name: str | None = None) -> None:
    """Callback of the gallery: make sample `name` (default: the selectbox's) the current image."""
    if name is None:
        name = st.session_state.get(state.SAMPLE)
    else:
        st.session_state[state.SAMPLE] = name
    state.put(state.IMAGE_CHOICE, image_from_sample(name))
    state.put(state.IMAGE_MESSAGE, None)
    state.put(state.MODEL_MESSAGE, None)


# ---------------------------------------------------------------------------------------------
# Sections


def model_section() -> tuple[Any, str, str] | None:
    st.header("Model")
    uploaded = st.file_uploader(
        "Upload a model (.keras, .onnx, or a transformers / smp folder as .zip)",
        type=[suffix.lstrip(".") for suffix in MODEL_SUFFIXES + TORCH_SUFFIXES],
        key=state.MODEL_UPLOAD,
        help="Loaded in Keras safe mode. One image input, a per-pixel class output [H, W, classes] and at "
             "least one 2-D convolution are required.")
    # The load's spinner and the lines that come and go (messages, class names, the active model) each in
    # a block of their own, so the expander below keeps its place and stays open if the user opened it.
    with st.container():
        handle_model_upload(uploaded)
    with st.container():
        loaded = _model_status(uploaded)
    if loaded is None:
        return None
    model, key, name = loaded
    with st.container():
        loaded = (model, working_size_section(model, key), name)  # free-size models: the key follows the size
    with st.expander("Architecture: explainable layers", expanded=False), guard.section("The architecture table"):
        layers, default = compute.layer_table(key, model)
        kinds = {info.kind for info in layers}
        rows = [{"layer": info.name, "output": choices.shape_text(info.output_shape),
                 **({"kind": info.kind} if len(kinds) > 1 else {})} for info in layers]
        st.dataframe(rows, hide_index=True, height=min(36 * len(rows) + 40, 420))
        st.caption(f"{len(rows)} layers, forward order; default: {safe_text.code(default)}.")
    return loaded


def _model_status(uploaded: Any) -> tuple[Any, str, str] | None:
    """The model section's messages, class names and active-model line; the loaded model or None."""
    message = state.get(state.MODEL_MESSAGE)
    if message:
        st.error(safe_text.md(message))
        if st.session_state.get(RETRY_MODEL) and uploaded is not None:
            st.button(f"Retry loading “{safe_text.md(uploaded.name)}”", on_click=_retry_model)
    loaded = active_model()
    if loaded is None:
        return None
    model, key, name = loaded
    message_now = state.get(state.MODEL_MESSAGE)
    if message_now and message_now != message:  # the session's model went away during this run
        st.error(safe_text.md(message_now))
    st.session_state[MODEL_INPUT] = _input_size(model)
    choice = state.get(state.MODEL_CHOICE) or {}
    uploaded_now = key.startswith("upload:") and "digest" in choice
    # class names belong to the file, not to a mean/std setting: their widgets keep one key per file
    class_names_input.show(model, normalisation_input.model_key(choice["digest"], None) if uploaded_now else key)
    if key.startswith("upload:"):
        st.caption(f"Active: uploaded **{safe_text.md(name)}**")
        normalisation_input.show(model, _reload_with)
        st.button("Use the shipped model instead", on_click=_use_default_model)
    else:
        st.caption(f"Active: {safe_text.md(name)}")
    return loaded


def working_size_section(model: Any, model_key: str) -> str:
    """For a model that takes any input size only: the longest side it works at and the fit (the library
    chooses sides that are multiples of the network's output stride). Returns the model's cache key at
    that working size (the same key for fixed-size models)."""
    size = st.session_state.get(MODEL_INPUT)
    if size is None or (size[0] and size[1]):
        return model_key
    with st.expander("Working size (this model takes any size)", expanded=False):
        st.number_input("Longest side (px)", min_value=32, max_value=4096, step=32, key=state.WORKING_LONGEST,
                        help="The network works at this longest side (never above the image's own), with each "
                             "side a multiple of its output stride; the maps are resized back to the image.")
        st.radio("Fit", state.WORKING_FITS, key=state.WORKING_FIT, horizontal=True,
                 help="pad: the whole image, aspect kept, padded to the stride; stretch: resized to the "
                      "stride multiples; crop: the middle, aspect kept (the rest gets no map).")
    return compute.with_working_size(model_key, model, int(state.get(state.WORKING_LONGEST)),
                                     state.get(state.WORKING_FIT))


def working_size_note(model: Any, image_shape: tuple[int, ...]) -> str | None:
    """The size the network works at for this image, for free-size models (None otherwise)."""
    import explainers
    from explainers import working_size

    try:
        plan = working_size.plan(model, tuple(image_shape[:2]), explainers.inspect_model(model).input_size)
    except ExplainerError:
        return None
    return None if plan is None or plan.identity else f"The network {plan.describe()}."


def _input_size(model: Any) -> tuple[int | None, int | None] | None:
    try:
        shape = tuple(model.inputs[0].shape)
        return (shape[1], shape[2]) if len(shape) == 4 else None
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def image_section() -> dict[str, Any]:
    st.header("Image")
    names = scenes.sample_names()
    if state.SAMPLE not in st.session_state:
        st.session_state[state.SAMPLE] = names[0]
    top = st.container()  # the sample picker or the note on the active upload, drawn after the upload is handled
    uploaded = st.file_uploader(
        "…or upload an image (PNG, JPEG, …)", type=list(images.EXTENSIONS), key=state.IMAGE_UPLOAD,
        help="Any size: it is resized to the model's input size. The previous image stays if the file "
             "cannot be read.")
    handle_image_upload(uploaded)
    message = state.get(state.IMAGE_MESSAGE)
    if message:
        st.error(safe_text.md(message))
    choice = active_image()
    with top:
        if choice["source"] == "sample":
            current = st.selectbox("Sample scene", names, key=state.SAMPLE, on_change=choose_sample)
            st.caption(scenes.sample_description(current))
        else:
            st.caption("The sample scenes are not in use while this image is active.")
            st.button("Use the sample scenes again", on_click=choose_sample, key="back_to_samples")
    choice = _fit_dynamic_limit(choice)
    height, width = choice["pixels"].shape[:2]
    origin = {"sample": "sample", "scene": "browser:", "dataset": "dataset:"}.get(choice["source"], "upload")
    truth = " · with ground truth" if choice.get("truth") is not None or choice["source"] == "sample" else ""
    original = choice.get("original_size")
    used = f", reduced from {original[0]}×{original[1]} px" if original else ""
    st.caption(f"Active: {origin} **{safe_text.md(choice['name'])}** ({width}×{height} px{used}){truth}")
    note = resize_note(height, width, st.session_state.get(MODEL_INPUT))
    if note:
        st.caption(note)
    return choice


def resize_note(height: int, width: int, model_input: tuple[int | None, int | None] | None) -> str | None:
    """What happens to an image of `height × width` on a model taking `model_input` (None: any size)."""
    if not model_input or not model_input[0] or not model_input[1]:
        return None
    model_h, model_w = model_input
    if (height, width) == (model_h, model_w):
        return None
    if abs(width / height - model_w / model_h) <= 0.01 * (model_w / model_h):
        return f"Resized to the model's {model_w}×{model_h} px input (same proportions)."
    return (f"⚠️ Stretched to the model's {model_w}×{model_h} px input, so its proportions change "
            f"({width}×{height} → {model_w}×{model_h}): crop it to {_proportions(model_w, model_h)} first "
            "to keep shapes undistorted.")


def _proportions(width: int, height: int) -> str:
    """'a square', or 'a 4:3 shape' (the ratio in lowest terms)."""
    if width == height:
        return "a square"
    common = math.gcd(width, height)
    return f"a {width // common}:{height // common} shape (width:height)"


def _fit_dynamic_limit(choice: dict[str, Any]) -> dict[str, Any]:
    """A model that takes any size runs on the image itself: above the input-pixel limit it gets a
    proportionally downscaled copy instead (said on screen), never a 40 MP forward pass."""
    size = st.session_state.get(MODEL_INPUT)
    if size is None or (size[0] and size[1]):
        return choice
    height, width = choice["pixels"].shape[:2]
    limits = Limits.from_env()
    try:
        check_image_size(height, width, limits)
        return choice
    except ExplainerError:
        pass
    scale = (limits.input_pixels / (height * width)) ** 0.5
    new_h, new_w = max(1, int(height * scale)), max(1, int(width * scale))
    pixels = np.asarray(Image.fromarray(choice["pixels"]).resize((new_w, new_h), Image.Resampling.BILINEAR))
    st.caption(f"⚠️ This model takes any size, and {width}×{height} px is above the "
               f"{limits.input_pixels / 1e6:.3g} MP input limit, so it runs on a {new_w}×{new_h} px copy.")
    return {**choice, "pixels": pixels, "digest": compute.digest(pixels), "truth": None}


def advanced_section() -> dict[str, Any]:
    with st.expander("Advanced", expanded=False):
        st.radio("Explain", state.TARGETS, key=state.TARGET, horizontal=True,
                 format_func={"logits": "logits (default)", "probabilities": "probabilities"}.get,
                 help="Gradients of the pre-softmax class logits, or of the class probabilities.")
    return {"target": state.get(state.TARGET)}
