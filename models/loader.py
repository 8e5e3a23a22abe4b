"""Load the shipped network or a user's uploaded model, refusing anything unsafe or unusable up front.

An uploaded model file is untrusted input. The checks live in `explainers.model_files` (shared with
the batch CLI): archive and HDF5 headers and every size limit before anything is allocated, the
config scanned for serialised code (`Lambda`) and foreign modules, a dry build that allocates no
weight, then Keras' own loader in safe mode (never unpickled, never `eval`-ed) and
`explainers.graph.inspect_model`. This module adds the shipped network and the architecture table.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import keras

from explainers.graph import LayerInfo
from explainers.model_file_loader import load_any
from explainers.model_files import MODEL_SUFFIXES, Limits, ModelFileError, model_suffix

__all__ = ["MODEL_SUFFIXES", "Limits", "ModelLoadError", "describe_model", "load_default", "load_user_model",
           "model_suffix"]

# One error type for every refusal, whichever module found it.
ModelLoadError = ModelFileError


def load_default() -> keras.Model:
    """The shipped PSPNet with its trained weights (built in code, so no config is deserialised)."""
    from models import pspnet

    path = Path(pspnet.WEIGHTS_PATH)
    if not path.is_file():
        raise ModelLoadError(
            f"The default model's weights are missing ({path}): run `python -m models.train` to create them."
        )
    model = pspnet.build_pspnet()
    mismatch = ModelLoadError(
        f"The default model's weights ({path.name}) do not fit the network in models/pspnet.py: "
        "run `python -m models.train` to retrain them."
    )
    # Keras only warns (and keeps random weights) for some mismatches, so its warnings count as errors.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception:
            raise mismatch from None
    if any(issubclass(w.category, UserWarning) and "saving" in w.filename for w in caught):
        raise mismatch
    return model


def load_user_model(path: str | Path, display_name: str | None = None, limits: Limits | None = None,
                    preprocessing: Mapping[str, object] | None = None) -> keras.Model:
    """Load a `.keras` (or legacy `.h5`) segmentation model safely; see `explainers.model_files`.

    Raises `ModelLoadError` with one sentence naming the real reason (a limit and how to change it,
    damage, serialised code, external storage, unknown custom objects, unexplainable models).
    """
    return load_any(path, display_name=display_name, limits=limits, preprocessing=preprocessing)


def describe_model(model: keras.Model) -> list[LayerInfo]:
    """Every layer in declared order with its output shape and class name, nested sub-models expanded
    (their layers named as inside the sub-model, like `explainers.graph`): the architecture panel."""
    rows: list[LayerInfo] = []

    def walk(container: keras.Model) -> None:
        for layer in container.layers:
            rows.append(LayerInfo(layer.name, _output_shape(layer), type(layer).__name__))
            if isinstance(layer, keras.Model):
                walk(layer)

    walk(model)
    return rows


def _output_shape(layer) -> tuple[int | None, ...]:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):  # shared layers and unbuilt ones have no single output
        return ()
