"""Load the shipped network or a user's uploaded model, refusing anything unsafe or unusable up front.

An uploaded model file is untrusted input. It is only ever read by Keras' own loader in safe mode
(never unpickled, never `eval`-ed), and before Keras sees it we look at the archive and the config
ourselves: that gives one-sentence reasons for the common failures and a second, independent guard
against serialised Python code (`Lambda` layers). After loading, `explainers.graph.inspect_model`
decides whether the network is a segmentation model we can explain.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import keras

from explainers.errors import ExplainerError
from explainers.graph import LayerInfo, inspect_model

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
MAX_ARCHIVE_BYTES = 2_000_000_000  # uncompressed size of a .keras archive's members: refuses zip bombs
# Layer classes whose config carries Python code (Keras 3 `Lambda`, its serialised lambdas, and the
# tf.keras-era op wrappers); refused outright whatever Keras' safe mode would do.
_CODE_CARRIERS = {"Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"}
_UNKNOWN_PATTERNS = (
    r"Could not locate (?:class|function) '([^']+)'",
    r"Could not deserialize \w+ '([^']+)'",
    r"Could not deserialize '([^']+)'",
    r"Unknown (?:layer|object|activation)[^'\"]*['\"]([^'\"]+)['\"]",
)


class ModelLoadError(ValueError):
    """A model that cannot be loaded or explained; the message is one sentence saying what to do."""


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


def load_user_model(path: str | Path) -> keras.Model:
    """Load a `.keras` (or legacy `.h5`) segmentation model in Keras safe mode and check it can be explained.

    Raises `ModelLoadError` with one sentence for a missing file or wrong extension, a damaged file, a
    zip or HDF5 file that holds no model, `Lambda` layers (serialised code), unknown custom objects,
    and models `inspect_model` refuses (classifiers, several inputs or outputs, no convolution).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"There is no model file at {str(path)!r}: choose a saved .keras file.")
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ModelLoadError(
            f"'{path.name}' has the extension {suffix or '(none)'!r}: upload a Keras 3 model saved as "
            "`.keras` (or a legacy `.h5` file)."
        )
    config = _read_keras_config(path) if suffix == ".keras" else _read_h5_config(path)
    _refuse_code(config, path.name)
    _import_keras_hub_if_needed(config, path.name)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, KeyError, OSError, ... here
        raise _explain_keras_error(error, path.name) from None
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"'{path.name}' holds a {type(model).__name__}, not a model: save the whole model.")
    try:
        inspect_model(model)
    except ExplainerError as error:
        raise ModelLoadError(str(error)) from None
    return model


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


def _read_keras_config(path: Path) -> object:
    """The model config inside a `.keras` zip, after checking the archive is whole and harmless."""
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"'{path.name}' is not a .keras archive (a .keras file is a zip): the file is damaged or is "
            "not a Keras 3 model."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = {info.filename for info in members}
            if "config.json" not in names:
                raise ModelLoadError(
                    f"'{path.name}' is a zip archive but not a Keras model (no config.json inside): save "
                    "the model with `model.save('model.keras')`."
                )
            for info in members:
                parts = Path(info.filename).parts
                if info.filename.startswith(("/", "\\")) or ".." in parts:
                    raise ModelLoadError(f"'{path.name}' contains a file path outside the archive, so it is refused.")
            if sum(info.file_size for info in members) > MAX_ARCHIVE_BYTES:
                raise ModelLoadError(
                    f"'{path.name}' unpacks to more than {MAX_ARCHIVE_BYTES / 1e9:g} GB, more than any model "
                    "segexplain can explain interactively."
                )
            if archive.testzip() is not None:
                raise zipfile.BadZipFile("checksum mismatch")
            return json.loads(archive.read("config.json"))
    except ModelLoadError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError):  # ValueError: bad JSON
        raise ModelLoadError(
            f"'{path.name}' is damaged (its archive or config cannot be read): save the model again."
        ) from None


def _read_h5_config(path: Path) -> object:
    """The model config stored in a legacy HDF5 model file (attribute `model_config`)."""
    import h5py

    if not h5py.is_hdf5(path):
        raise ModelLoadError(f"'{path.name}' is not an HDF5 file: the file is damaged or is not a Keras model.")
    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except (OSError, ValueError, KeyError):
        raise ModelLoadError(f"'{path.name}' is a damaged HDF5 file: save the model again.") from None
    if raw is None:
        raise ModelLoadError(
            f"'{path.name}' holds weights only, no architecture: save the whole model with "
            "`model.save('model.keras')`."
        )
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
    except ValueError:
        raise ModelLoadError(f"'{path.name}' has an unreadable model config: save the model again.") from None


def _walk(node: object) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _refuse_code(config: object, name: str) -> None:
    """Refuse configs that carry Python code before Keras deserialises anything."""
    for entry in _walk(config):
        if entry.get("class_name") in _CODE_CARRIERS:
            raise _lambda_error(name)


def _import_keras_hub_if_needed(config: object, name: str) -> None:
    """keras-hub models (DeepLabV3, SegFormer, ...) load only once `keras_hub` has registered its classes."""
    uses_hub = any(
        str(entry.get("module", "")).startswith("keras_hub") or str(entry.get("registered_name", "")).startswith("keras_hub>")
        for entry in _walk(config)
    )
    if not uses_hub:
        return
    try:
        import keras_hub  # noqa: F401  (registers the keras-hub layers and models with Keras)
    except ImportError:
        raise ModelLoadError(
            f"'{name}' is a keras-hub model: install the optional package keras-hub "
            "(`pip install keras-hub`) to load it."
        ) from None


def _lambda_error(name: str) -> ModelLoadError:
    return ModelLoadError(
        f"'{name}' contains a Lambda layer (serialised Python code), which segexplain never runs: rebuild "
        "the model from built-in Keras layers."
    )


def _explain_keras_error(error: Exception, name: str) -> ModelLoadError:
    """Translate Keras' (long, nested) loading errors into one sentence."""
    text = str(error)
    lowered = text.lower()
    if "lambda" in lowered and ("safe_mode" in lowered or "arbitrary code" in lowered):
        return _lambda_error(name)
    for pattern in _UNKNOWN_PATTERNS:
        match = re.search(pattern, text)
        if match:
            return ModelLoadError(
                f"'{name}' uses a custom object Keras does not know ({match.group(1)!r}): rebuild the model "
                "from built-in Keras layers."
            )
    if "non-modeling api" in lowered:
        return ModelLoadError(f"'{name}' refers to Keras functions that are not model parts, so it is refused.")
    return ModelLoadError(
        f"'{name}' could not be read as a Keras model ({type(error).__name__}): save it again with Keras 3 "
        "as `model.save('model.keras')`."
    )
