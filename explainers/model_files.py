"""Safe loading of untrusted Keras model files, with every size limit checked before memory is spent.

A model file is hostile until proven otherwise: a 2 MB `.keras` can declare a 2 GB config, a
200,000-member archive, a 20k × 20k Dense layer or a 4096² input. So the order is fixed:

1. the zip's end-of-central-directory record (member count) and its headers (sizes, names), or the
   HDF5 headers of a legacy `.h5`, before any member or dataset is read;
2. the config, read with a byte cap, scanned for serialised code, foreign modules and tricks;
3. a *dry build* of the architecture in a `keras.StatelessScope` that creates no variable values,
   giving the exact parameter count, the input size and every layer's output size for free;
4. the weights file's HDF5 headers (no external links, no external or virtual storage, no dataset
   larger than the largest variable);
5. only then `keras.saving.load_model(compile=False, safe_mode=True)` and `graph.inspect_model`.

Pure Keras / h5py / zipfile: the dashboard and the batch CLI share it. Messages name the file by the
name the user gave it, never by a server path.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import keras

from explainers import stored_names
from explainers.caching import PerModel
from explainers.errors import ExplainerError
from explainers.graph import inspect_model

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
CONFIG_NAME = "config.json"
METADATA_NAME = "metadata.json"
WEIGHTS_NAME = "model.weights.h5"
ASSETS_PREFIX = "assets/"
# Layer classes whose config carries Python code (Keras 3 `Lambda`, its serialised lambdas, and the
# tf.keras-era op wrappers); refused outright whatever Keras' safe mode would do.
CODE_CARRIERS = frozenset({"Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"})
# Python packages a config may name as a `module`: Keras itself and the Keras model libraries.
ALLOWED_PACKAGES = frozenset({"keras", "keras_hub", "keras_nlp", "keras_cv"})
_UNKNOWN_PATTERNS = (
    r"Could not locate (?:class|function) '([^']+)'",
    r"Could not deserialize \w+ '([^']+)'",
    r"Could not deserialize '([^']+)'",
    r"Unknown (?:layer|object|activation)[^'\"]*['\"]([^'\"]+)['\"]",
)
_CHUNK = 1 << 20


class ModelFileError(ExplainerError):
    """A model file that cannot be loaded or explained; the message is one sentence saying what to do."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds checked before anything is allocated; defaults fit real segmentation networks
    (DeepLabV3+-ResNet101 has ~60 M parameters; Cityscapes frames are 1024×2048).

    Each field can be set by the environment variable in `ENV` (e.g. `SEGEXPLAIN_MAX_PARAMETERS`)."""

    archive_members: int = 1_000  # members of a .keras zip (Keras writes 3, plus assets)
    archive_bytes: int = 1_000_000_000  # uncompressed size of all members, or of an .h5 file's datasets
    config_bytes: int = 16_000_000  # config.json / the .h5 `model_config` attribute
    parameters: int = 150_000_000  # declared weights, counted from the architecture before allocation
    asset_bytes: int = 64_000_000  # archive members besides config and weights (Keras extracts them to disk)
    input_pixels: int = 1024 * 2048  # height × width of the model's (or a dynamic model's) input
    activation_elements: int = 64 * 2**20  # per-image elements of the largest layer output (256 MB float32)
    layers: int = 5_000  # layers in the config, nested ones included (big keras-hub backbones have ~1,000)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Defaults overridden by the `SEGEXPLAIN_MAX_*` environment variables (bad values are refused)."""
        environ = os.environ if environ is None else environ
        values = {}
        for item in fields(cls):
            text = environ.get(ENV[item.name])
            if text is None or not text.strip():
                continue
            try:
                value = int(float(text))
            except ValueError:
                raise ModelFileError(f"{ENV[item.name]}={text!r} is not a number: set it to a positive integer.") from None
            if value <= 0:
                raise ModelFileError(f"{ENV[item.name]}={text!r} must be positive: set it to a positive integer.")
            values[item.name] = value
        return cls(**values)


ENV = {
    "archive_members": "SEGEXPLAIN_MAX_ARCHIVE_MEMBERS",
    "archive_bytes": "SEGEXPLAIN_MAX_ARCHIVE_BYTES",
    "config_bytes": "SEGEXPLAIN_MAX_CONFIG_BYTES",
    "asset_bytes": "SEGEXPLAIN_MAX_ASSET_BYTES",
    "parameters": "SEGEXPLAIN_MAX_PARAMETERS",
    "input_pixels": "SEGEXPLAIN_MAX_INPUT_PIXELS",
    "activation_elements": "SEGEXPLAIN_MAX_ACTIVATION_ELEMENTS",
    "layers": "SEGEXPLAIN_MAX_LAYERS",
}
# Keras builds a functional graph recursively, one Python frame per layer of its longest chain: past ~990
# it ends in RecursionError after seconds of work, so longer chains are refused before it starts.
MAX_CHAIN = 900
DIRECTORY_ENTRY_BYTES = 1_024  # zip central-directory bytes allowed per permitted member (names included)


def _limit_error(name: str, what: str, limit_text: str, field: str) -> ModelFileError:
    return ModelFileError(
        f"'{name}' {what}, above the {limit_text} limit (set {ENV[field]} to change it)."
    )


def _mega(count: float) -> str:
    return f"{count / 1e6:.1f} M" if count < 1e9 else f"{count / 1e9:.2f} G"


def _bytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB" if count < 1e9 else f"{count / 1e9:.2f} GB"


# ---------------------------------------------------------------------------------------------
# File kind


def model_suffix(name: str) -> str | None:
    """The model kind of a file name, case-insensitively (`UNET.H5` → ".h5"; a bare `.keras` counts)."""
    lowered = Path(name).name.lower()
    for suffix in MODEL_SUFFIXES:
        if lowered.endswith(suffix):
            return suffix
    return None


def check_image_size(height: int, width: int, limits: Limits | None = None) -> None:
    """Refuse an input of `height × width` pixels above `limits.input_pixels` (for dynamic-size models)."""
    limits = limits or Limits.from_env()
    if height * width > limits.input_pixels:
        raise ModelFileError(
            f"The model would run on {width}×{height} pixels ({height * width / 1e6:.3g} MP), above the "
            f"{limits.input_pixels / 1e6:.3g} MP input limit (set {ENV['input_pixels']} to change it)."
        )


def _outputs_at(model, height: int, width: int) -> tuple[int, str]:
    """(elements, layer) of the largest layer output of one image of `height × width`: a symbolic pass
    over the flattened graph (shapes only, nothing allocated), so a free-size model's `None` dimensions
    become the sizes it will really have (`ZeroPadding2D(4000)` adds 8000, `UpSampling2D(64)` multiplies)."""
    from explainers import graph

    flat = graph.flatten(model)
    names = list(flat.taps)
    probe = keras.Model(flat.input, [*flat.taps.values(), flat.logits])
    channels = flat.input.shape[-1]
    specs = keras.tree.flatten(probe.compute_output_spec(keras.KerasTensor((1, height, width, channels))))
    best = (height * width * int(channels or 3), "the input")
    for name, spec in zip([*names, "the logits"], specs, strict=False):
        count = math.prod(int(d) for d in spec.shape[1:] if d is not None)
        if count > best[0]:
            best = (count, name)
    return best


def check_run_size(model, height: int, width: int, limits: Limits | None = None) -> None:
    """Refuse, before anything runs, an image on which `model` would hold a layer output above
    `limits.activation_elements` values (free-size models: checked at this very size; cached per size)."""
    limits = limits or Limits.from_env()
    try:
        elements, layer = _RUN_SIZES.get(model, (height, width), lambda: _outputs_at(model, height, width))
    except Exception:  # a graph whose shapes cannot be inferred symbolically: the memory budget still applies
        return
    if elements > limits.activation_elements:
        raise ModelFileError(
            f"On a {width}×{height} image layer {layer!r} would hold {_mega(elements)} values per image, above "
            f"the {_mega(limits.activation_elements)}-value limit (set {ENV['activation_elements']} to change it): "
            "use a smaller image or a model that does not enlarge its input this much."
        )


_RUN_SIZES = PerModel()


# ---------------------------------------------------------------------------------------------
# The loader


def load_model_file(path: str | Path, display_name: str | None = None, limits: Limits | None = None) -> keras.Model:
    """Load a `.keras` (or legacy `.h5`/`.hdf5`) segmentation model safely and check it can be explained
    (PyTorch files: `explainers.model_file_loader.load_any`).

    `display_name` is the name used in messages (the user's file name; default: the file's own name).
    Raises `ModelFileError` with one sentence for every refusal: missing file, wrong extension, damage,
    a limit of `limits` (default `Limits.from_env()`), serialised code or foreign modules, external
    HDF5 storage, unknown custom objects, running out of memory, and models `inspect_model` refuses.
    """
    path = Path(path)
    name = display_name or path.name
    limits = limits or Limits.from_env()
    if not path.is_file():
        raise ModelFileError(f"There is no model file named '{name}': choose a saved .keras file.")
    suffix = model_suffix(name) or model_suffix(path.name)
    if suffix is None:
        shown = Path(name).suffix.lower()
        raise ModelFileError(
            f"'{name}' has the extension {shown or '(none)'!r}: upload a Keras 3 model saved as "
            "`.keras` (or a legacy `.h5` file)."
        )
    if suffix == ".keras":
        config = read_keras_archive(path, name, limits)
    else:
        config = read_h5_config(path, name, limits)
    scan_config(config, name)
    check_layer_counts(config, name, limits)
    _import_model_libraries(config, name)
    built = dry_build(config, name, limits, legacy=suffix != ".keras")
    largest = built[0] if built else None
    if suffix == ".keras":
        check_archive_weights(path, name, built, limits)
    else:
        with _h5_file(path, name) as handle:
            check_h5_datasets(handle, name, limits, largest)
    with _keras_named(path, suffix) as keras_path:
        try:
            model = keras.saving.load_model(keras_path, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises ValueError, TypeError, KeyError, OSError, ... here
            raise explain_keras_error(error, name, limits) from None
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"'{name}' holds a {type(model).__name__}, not a model: save the whole model.")
    try:
        inspect_model(model)
    except ExplainerError as error:
        raise ModelFileError(str(error)) from None
    names = stored_names.read(path, suffix)
    if names:  # the file's own class names travel with the model, as a PyTorch file's `class_names` do
        model.class_names = tuple(names)  # a tuple: Keras would track a list as model state
    return model


@contextlib.contextmanager
def _keras_named(path: Path, suffix: str) -> Iterator[Path]:
    """`path` under a name Keras accepts: Keras picks the format from a lower-case suffix, so
    `MODEL.KERAS` or a bare `.keras` is linked (or copied) into a private temporary folder first."""
    if path.name.endswith(suffix) and path.name != suffix:
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="segexplain-load-"))  # mkdtemp creates it with mode 0700
    try:
        target = folder / f"model{suffix}"
        try:
            os.symlink(path.resolve(), target)
        except OSError:
            shutil.copyfile(path, target)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# .keras archives


def _zip_directory(path: Path) -> tuple[int, int, int] | None:
    """(members claimed, central-directory bytes, its offset) from the end-of-central-directory record
    (zip64 aware), read without parsing the directory; None when there is no such record (not a zip)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        tail_size = min(size, 65_557)
        handle.seek(size - tail_size)
        tail = handle.read(tail_size)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return None
        count, directory_size, directory_offset = struct.unpack_from("<HII", tail, at + 10)
        zip64 = at >= 20 and tail[at - 20 : at - 16] == b"PK\x06\x07"
        if zip64 and (count == 0xFFFF or 0xFFFFFFFF in (directory_size, directory_offset)):
            offset = struct.unpack_from("<Q", tail, at - 20 + 8)[0]
            handle.seek(offset)
            record = handle.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) >= 56:
                count, directory_size, directory_offset = struct.unpack_from("<QQQ", record, 32)
        return count, directory_size, directory_offset


def _zip_member_count(path: Path) -> int | None:
    """Members declared by the end-of-central-directory record; None when the file is not a zip."""
    directory = _zip_directory(path)
    return None if directory is None else directory[0]


def _directory_entries(path: Path, size: int, offset: int) -> int | None:
    """The entries really in a central directory of `size` bytes at `offset` (walked by their length
    fields, a few bytes each, without building anything); None when the walk does not fit the directory."""
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        return None
    count, at = 0, 0
    while at < size:
        if data[at : at + 4] != b"PK\x01\x02" or at + 46 > size:
            return None
        name, extra, comment = struct.unpack_from("<HHH", data, at + 28)
        at += 46 + name + extra + comment
        count += 1
    return count if at == size else None


def check_zip_directory(path: Path, name: str, limits: Limits) -> None:
    """Refuse a zip whose central directory is too big or lies about its size, before `zipfile` parses it:
    `zipfile.ZipFile` reads every entry the directory holds whatever the end record claims, so a 47 MB file
    claiming 3 members but holding a million entries costs hundreds of MB and seconds to open."""
    directory = _zip_directory(path)
    if directory is None:
        return
    claimed, size, offset = directory
    if claimed > limits.archive_members:
        raise _limit_error(name, f"has {claimed:,} archive members", f"{limits.archive_members:,}-member",
                           "archive_members")
    allowed = limits.archive_members * DIRECTORY_ENTRY_BYTES
    if size > allowed:
        raise _limit_error(name, f"has a {_bytes(size)} zip directory", f"{_bytes(allowed)} directory "
                           f"({limits.archive_members:,}-member)", "archive_members")
    real = _directory_entries(path, size, offset)
    if real is None or real != claimed:
        raise ModelFileError(
            f"'{name}' is damaged: its zip directory holds {'other data' if real is None else f'{real:,} entries'} "
            f"where its end record claims {claimed:,}; save the model again."
        )


def _damaged(name: str) -> ModelFileError:
    return ModelFileError(f"'{name}' is damaged (its archive or config cannot be read): save the model again.")


def read_keras_archive(path: Path, name: str, limits: Limits) -> object:
    """The parsed config of a `.keras` zip, after checking members, sizes and checksums from the headers."""
    try:
        count = _zip_member_count(path)
        if count is not None:
            check_zip_directory(path, name, limits)  # before zipfile parses the directory
    except OSError:
        raise _damaged(name) from None
    if count is None or not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"'{name}' is not a .keras archive (a .keras file is a zip): the file is damaged or is "
            "not a Keras 3 model."
        )
    if count > limits.archive_members:
        raise _limit_error(name, f"has {count:,} archive members", f"{limits.archive_members:,}-member",
                           "archive_members")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > limits.archive_members:
                raise _limit_error(name, f"has {len(members):,} archive members",
                                   f"{limits.archive_members:,}-member", "archive_members")
            names = [info.filename for info in members]
            if CONFIG_NAME not in names:
                raise ModelFileError(
                    f"'{name}' is a zip archive but not a Keras model (no config.json inside): save "
                    "the model with `model.save('model.keras')`."
                )
            if len(set(names)) != len(names):
                raise ModelFileError(f"'{name}' holds two archive members with the same name, so it is refused.")
            for info in members:
                parts = Path(info.filename).parts
                if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in info.filename:
                    raise ModelFileError(f"'{name}' contains a file path outside the archive, so it is refused.")
            total = sum(info.file_size for info in members)
            if total > limits.archive_bytes:
                raise _limit_error(name, f"unpacks to {_bytes(total)}", f"{_bytes(limits.archive_bytes)} archive",
                                   "archive_bytes")
            strays = [n for n in names if n not in (CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME)
                      and not n.startswith(ASSETS_PREFIX)]
            if strays:
                raise ModelFileError(
                    f"'{name}' holds files a Keras model archive never has (such as {strays[0]!r}), so it is "
                    "refused: save the model again with `model.save('model.keras')`."
                )
            extra = sum(info.file_size for info in members if info.filename not in (CONFIG_NAME, WEIGHTS_NAME))
            if extra > limits.asset_bytes:
                raise _limit_error(name, f"holds {_bytes(extra)} of metadata and assets",
                                   f"{_bytes(limits.asset_bytes)} asset", "asset_bytes")
            config_info = archive.getinfo(CONFIG_NAME)
            if config_info.file_size > limits.config_bytes:
                raise _limit_error(name, f"has a {_bytes(config_info.file_size)} config",
                                   f"{_bytes(limits.config_bytes)} config", "config_bytes")
            for info in members:  # checksums, reading at most the declared size of each member
                _read_member(archive, info, keep=False)
            raw = _read_member(archive, config_info, keep=True)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError):
        raise _damaged(name) from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _damaged(name) from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, keep: bool) -> bytes:
    """Stream one member, never past its declared size (a lying header is damage), checking its CRC."""
    parts = []
    read = 0
    with archive.open(info) as stream:
        while True:
            chunk = stream.read(min(_CHUNK, info.file_size - read + 1))
            if not chunk:
                break
            read += len(chunk)
            if read > info.file_size:
                raise zipfile.BadZipFile("member larger than declared")
            if keep:
                parts.append(chunk)
    if read != info.file_size:
        raise zipfile.BadZipFile("member shorter than declared")
    return b"".join(parts)


def check_archive_weights(path: Path, name: str, built: tuple[int, int] | None, limits: Limits | None = None) -> None:
    """The weights member of a `.keras` file: its size against the architecture (`built` = largest
    variable and total parameters of the dry build), then its HDF5 headers. Keras reads the whole
    member into memory, so a member far larger than the weights it must hold is refused."""
    import h5py

    largest = built[0] if built else None
    try:
        with zipfile.ZipFile(path) as archive:
            if WEIGHTS_NAME not in archive.namelist():
                return  # Keras itself says which weights file is missing
            size = archive.getinfo(WEIGHTS_NAME).file_size
            if built is not None and size > 8 * built[1] + 16_000_000:  # float64 weights + HDF5 overhead
                raise ModelFileError(
                    f"'{name}' has a {_bytes(size)} weights file for {_mega(built[1])} parameters: the file "
                    "is damaged or padded, save the model again."
                )
            with archive.open(WEIGHTS_NAME) as stream, h5py.File(stream, "r") as handle:
                check_h5_datasets(handle, name, limits, largest, check_total=False)
    except ModelFileError:
        raise
    except Exception:  # h5py raises OSError, KeyError, ValueError... on a damaged weights file
        raise ModelFileError(f"'{name}' has a damaged weights file inside: save the model again.") from None


# ---------------------------------------------------------------------------------------------
# HDF5 (legacy .h5 models and the weights inside .keras files)


@contextlib.contextmanager
def _h5_file(path: Path, name: str):
    import h5py

    if not h5py.is_hdf5(path):
        raise ModelFileError(f"'{name}' is not an HDF5 file: the file is damaged or is not a Keras model.")
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError, KeyError):
        raise ModelFileError(f"'{name}' is a damaged HDF5 file: save the model again.") from None
    try:
        yield handle
    finally:
        handle.close()


def read_h5_config(path: Path, name: str, limits: Limits) -> object:
    """The model config of a legacy HDF5 model file (attribute `model_config`), size checked first."""
    with _h5_file(path, name) as handle:
        try:
            if "model_config" not in handle.attrs:
                raw = None
            else:
                size = handle.attrs.get_id("model_config").get_storage_size()
                if size > limits.config_bytes:
                    raise _limit_error(name, f"has a {_bytes(size)} config", f"{_bytes(limits.config_bytes)} config",
                                       "config_bytes")
                raw = handle.attrs.get("model_config")
                # variable-length strings (what Keras writes) live in a heap the header does not size;
                # the file's own size bounds them, so the check after reading is still cheap
                length = len(raw) if isinstance(raw, bytes | str) else 0
                if length > limits.config_bytes:
                    raise _limit_error(name, f"has a {_bytes(length)} config", f"{_bytes(limits.config_bytes)} config",
                                       "config_bytes")
        except ModelFileError:
            raise
        except (OSError, ValueError, KeyError, TypeError):
            raise ModelFileError(f"'{name}' is a damaged HDF5 file: save the model again.") from None
    if raw is None:
        raise ModelFileError(
            f"'{name}' holds weights only, no architecture: save the whole model with "
            "`model.save('model.keras')`."
        )
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ModelFileError(f"'{name}' has an unreadable model config: save the model again.") from None


def check_h5_datasets(handle, name: str, limits: Limits | None, largest: int | None,
                      check_total: bool = True) -> None:
    """HDF5 headers only: no external links, external or virtual storage, and no dataset bigger than the
    largest variable of the architecture (`largest` elements) or all together above the size limit."""
    import h5py

    problems: list[str] = []
    total = 0
    biggest = (0, "")
    seen = 0
    most = (limits or Limits.from_env()).archive_members * 100  # a 100-layer model has ~1,000 objects

    def visit(path: str, link) -> object:
        nonlocal total, biggest, seen
        seen += 1
        if seen > most:
            return True  # stops the walk: reported below
        if problems:
            return True
        if isinstance(link, h5py.ExternalLink):
            problems.append("external link")
            return True
        if isinstance(link, h5py.SoftLink):
            return None
        obj = handle.get(path)
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual:
                problems.append("virtual dataset")
                return True
            if obj.id.get_create_plist().get_external_count() > 0:
                problems.append("external storage")
                return True
            count = math.prod(obj.shape) if obj.shape else 1
            total += count * obj.dtype.itemsize
            if count > biggest[0]:
                biggest = (count, path)
        return None

    handle.visititems_links(visit)
    if seen > most:
        raise ModelFileError(
            f"'{name}' holds more than {most:,} HDF5 objects, above the limit of 100 per archive member "
            f"(set {ENV['archive_members']} to change it)."
        )
    if problems:
        kind = problems[0]
        raise ModelFileError(
            f"'{name}' stores weights in another file on disk (HDF5 {kind}), which segexplain never reads: "
            "save the model again with all weights inside the file."
        )
    if check_total and limits is not None and total > limits.archive_bytes:
        raise _limit_error(name, f"declares {_bytes(total)} of weights", f"{_bytes(limits.archive_bytes)} size",
                           "archive_bytes")
    if largest is not None and biggest[0] > max(largest, 1):
        raise ModelFileError(
            f"'{name}' holds weights that do not fit its architecture (a weight of {biggest[0]:,} values, where "
            f"its largest layer weight has {largest:,}): the weights belong to another model or the file is "
            "damaged, so save this model again with `model.save('model.keras')`."
        )


# ---------------------------------------------------------------------------------------------
# The config


def _walk(node: object, depth: int = 0) -> Iterator[dict]:
    if depth > 200:
        raise ValueError("config nested too deeply")
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, depth + 1)


def _malformed(name: str, what: str) -> ModelFileError:
    return ModelFileError(f"'{name}' has a malformed model config ({what}): save the model again with Keras 3.")


def scan_config(config: object, name: str) -> None:
    """Refuse configs that carry code, name non-Keras modules, or are malformed, before Keras reads them."""
    if not isinstance(config, dict):
        raise _malformed(name, "the top level is not an object")
    if "class_name" not in config:
        raise ModelFileError(
            f"'{name}' could not be read as a Keras model (its config describes no model): save it again "
            "with Keras 3 as `model.save('model.keras')`."
        )
    try:
        entries = list(_walk(config))
    except (ValueError, RecursionError):
        raise _malformed(name, "nested too deeply") from None
    for entry in entries:
        if "class_name" not in entry:
            continue
        class_name = entry["class_name"]
        if not isinstance(class_name, str):
            raise _malformed(name, f"a class_name that is a {type(class_name).__name__}, not a text")
        module = entry.get("module")
        registered = entry.get("registered_name")
        for key, value in (("module", module), ("registered_name", registered)):
            if value is not None and not isinstance(value, str):
                raise _malformed(name, f"a {key} that is a {type(value).__name__}, not a text")
        if class_name in CODE_CARRIERS:
            raise lambda_error(name)
        if class_name == "TFSMLayer":
            raise ModelFileError(
                f"'{name}' wraps a TensorFlow SavedModel from another file (TFSMLayer), which segexplain "
                "never opens: rebuild the model from built-in Keras layers."
            )
        if class_name == "TorchModuleWrapper":
            raise ModelFileError(
                f"'{name}' contains a pickled PyTorch module (TorchModuleWrapper), which segexplain never "
                "unpickles: rebuild the model from built-in Keras layers."
            )
        package = module.split(".", 1)[0] if module else None
        if package and package not in ALLOWED_PACKAGES and not (registered and ">" in registered):
            raise ModelFileError(
                f"'{name}' refers to the Python module {module!r}, not to Keras, so it is refused: rebuild "
                "the model from built-in Keras layers."
            )
        if registered and class_name not in ("function", "__tuple__", "__numpy__", "__bytes__"):
            tail = registered.rsplit(">", 1)[-1]
            if tail != class_name:
                raise ModelFileError(
                    f"'{name}' names a {class_name!r} object but registers it as {registered!r}, a "
                    "mismatch that could load other code, so it is refused."
                )


def _parents(inbound: object) -> set[str]:
    """Names of the layers a layer's `inbound_nodes` read from (Keras 3 `keras_history`, or the Keras 2
    `[layer, node, tensor, kwargs]` lists of legacy .h5 configs)."""
    found: set[str] = set()
    stack = [inbound]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            history = node.get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                found.add(history[0])
            stack.extend(node.values())
        elif isinstance(node, list):
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
                found.add(node[0])
            else:
                stack.extend(node)
    return found


def _longest_chain(layers: list) -> int:
    """Layers on the longest path through one functional config's `layers` list (iterative, memoised)."""
    inbound: dict[str, set[str]] = {}
    for layer in layers:
        if isinstance(layer, dict):
            label = layer.get("name") or (layer.get("config") or {}).get("name")
            if isinstance(label, str):
                inbound[label] = _parents(layer.get("inbound_nodes"))
    depth: dict[str, int] = {}
    for start in inbound:
        stack = [start]
        while stack:
            node = stack[-1]
            if node in depth:
                stack.pop()
                continue
            waiting = [p for p in inbound.get(node, ()) if p in inbound and p not in depth and p not in stack]
            if waiting:
                stack.extend(waiting)
                continue
            depth[node] = 1 + max((depth.get(p, 0) for p in inbound.get(node, ())), default=0)
            stack.pop()
    return max(depth.values(), default=0)


def check_layer_counts(config: object, name: str, limits: Limits) -> None:
    """Refuse, before Keras builds anything, a config with more layers than `limits.layers` or a chain of
    layers longer than Keras can build (`MAX_CHAIN`): a 10,000-layer config used to end in a
    RecursionError after seconds of work."""
    total, chain = 0, 0
    for entry in _walk(config):
        inner = entry.get("config")
        layers = inner.get("layers") if isinstance(inner, dict) else None
        if not isinstance(layers, list):
            continue
        total += len(layers)
        sequential = entry.get("class_name") == "Sequential" or not any(
            isinstance(layer, dict) and layer.get("inbound_nodes") for layer in layers)
        chain = max(chain, len(layers) if sequential else _longest_chain(layers))
    if total > limits.layers:
        raise _limit_error(name, f"has {total:,} layers", f"{limits.layers:,}-layer", "layers")
    if chain > MAX_CHAIN:
        raise ModelFileError(
            f"'{name}' chains {chain:,} layers one after another, more than Keras can load (at most "
            f"{MAX_CHAIN:,} in a row): use a shallower model."
        )


def _import_model_libraries(config: object, name: str) -> None:
    """Register keras_hub's serialisable classes when the config names them (safe mode still applies).

    keras-hub is an optional extra: without it such a file gets a message naming the package.
    """
    for entry in _walk(config):
        module = entry.get("module")
        registered = entry.get("registered_name")
        if (isinstance(module, str) and module.split(".", 1)[0] == "keras_hub") or (
            isinstance(registered, str) and registered.startswith("keras_hub>")
        ):
            try:
                import keras_hub  # noqa: F401
            except ImportError:
                raise ModelFileError(
                    f"'{name}' is a keras-hub model: install the optional package keras-hub "
                    "(`pip install keras-hub`) to load it."
                ) from None
            return


def lambda_error(name: str) -> ModelFileError:
    return ModelFileError(
        f"'{name}' contains a Lambda layer (serialised Python code), which segexplain never runs: rebuild "
        "the model from built-in Keras layers."
    )


def _deserialize(config: object, legacy: bool):
    """The architecture of `config` as Keras' own loader builds it (legacy `.h5` configs differ)."""
    if not legacy:
        return keras.saving.deserialize_keras_object(config, safe_mode=True)
    from keras.src.legacy.saving import json_utils, saving_options, saving_utils
    from keras.src.saving import serialization_lib

    fresh = json_utils.decode(json.dumps(config))  # model_from_config edits its argument
    with saving_options.keras_option_scope(use_legacy_config=True), serialization_lib.SafeModeScope(True):
        return saving_utils.model_from_config(fresh)


def dry_build(config: object, name: str, limits: Limits, legacy: bool = False) -> tuple[int, int] | None:
    """Build the architecture without allocating any weight (a `keras.StatelessScope` defers every
    variable's value) and check parameters, input size and layer output sizes against `limits`.

    Returns (elements of the largest variable, total parameters), or None when the dry build was not possible
    (some layers create non-deferrable variables): then Keras' own load is the only check left."""
    from keras.src.backend.common import global_state

    try:
        with keras.StatelessScope(initialize_variables=False):
            model = _deserialize(config, legacy)
    except Exception as error:
        if "stateless scope" in str(error):
            return None
        raise explain_keras_error(error, name, limits) from None
    finally:
        global_state.set_global_attribute("uninitialized_variables", [])
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"'{name}' holds a {type(model).__name__}, not a model: save the whole model.")
    sizes = [math.prod(variable.shape) for variable in model.variables]
    total = sum(sizes)
    if total > limits.parameters:
        raise _limit_error(name, f"declares {_mega(total)} parameters", f"{_mega(limits.parameters)} parameter",
                           "parameters")
    for tensor in getattr(model, "inputs", None) or ():
        shape = tuple(tensor.shape)
        if len(shape) == 4 and shape[1] and shape[2] and shape[1] * shape[2] > limits.input_pixels:
            raise _limit_error(
                name, f"takes {shape[2]}×{shape[1]} pixel inputs ({shape[1] * shape[2] / 1e6:.3g} MP)",
                f"{limits.input_pixels / 1e6:.3g} MP input", "input_pixels")
    largest_output = _largest_output(model)
    if largest_output[0] > limits.activation_elements:
        raise _limit_error(
            name, f"has a layer output of {_mega(largest_output[0])} values per image ({largest_output[1]!r})",
            f"{_mega(limits.activation_elements)}-value layer output", "activation_elements")
    return max(sizes, default=0), total


def _largest_output(model) -> tuple[int, str]:
    best = (0, "")
    for layer in _all_layers(model):
        try:
            outputs = layer.output
        except (AttributeError, ValueError, RuntimeError):
            continue
        for tensor in keras.tree.flatten(outputs):
            shape = getattr(tensor, "shape", None)
            if shape is None or any(dim is None for dim in shape[1:]):
                continue
            count = math.prod(shape[1:])
            if count > best[0]:
                best = (count, layer.name)
    return best


def _all_layers(model) -> Iterator:
    for layer in getattr(model, "layers", ()):
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


# ---------------------------------------------------------------------------------------------
# Keras' errors


def _weights_mismatch(text: str, name: str) -> ModelFileError | None:
    """Keras' messages for weights that do not fit the architecture (another model's weights file, or a
    config with more or other layers than its weights), as one sentence naming the first layer."""
    layer = re.search(r"object <\w+ name=([^,>]+)", text) or re.search(r"[Ll]ayer '([^']+)'", text)
    where = f"layer '{layer.group(1)}'" if layer else "a layer"
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    if shapes:
        detail = f"{where} has a {shapes.group(1)} weight, the file stores {shapes.group(2)}"
    else:
        counts = re.search(r"expected (\d+) variables, but received (\d+)", text)
        if not counts:
            return None
        detail = f"{where} has {counts.group(1)} weights, the file stores {counts.group(2)}"
    return ModelFileError(
        f"'{name}' holds weights that do not fit its architecture ({detail}): the weights belong to another "
        "model or the config has more or other layers than they do, so save this model again with "
        "`model.save('model.keras')`."
    )


def explain_keras_error(error: BaseException, name: str, limits: Limits | None = None) -> ModelFileError:
    """Translate Keras' (long, nested) loading errors into one sentence with the real reason."""
    text = str(error)
    lowered = text.lower()
    kind = type(error).__name__
    if isinstance(error, MemoryError) or kind == "ResourceExhaustedError" or "resource exhausted" in lowered \
            or "out of memory" in lowered:
        limit = f" (raise the limits only on a bigger server: {ENV['parameters']})" if limits else ""
        return ModelFileError(
            f"The server ran out of memory while loading '{name}'{limit}: upload a smaller model."
        )
    if "lambda" in lowered and ("safe_mode" in lowered or "arbitrary code" in lowered):
        return lambda_error(name)
    if "tfsmlayer" in lowered:
        return ModelFileError(
            f"'{name}' wraps a TensorFlow SavedModel from another file (TFSMLayer), which segexplain never "
            "opens: rebuild the model from built-in Keras layers."
        )
    for pattern in _UNKNOWN_PATTERNS:
        match = re.search(pattern, text)
        if match:
            return ModelFileError(
                f"'{name}' uses a custom object Keras does not know ({match.group(1)!r}): rebuild the model "
                "from built-in Keras layers."
            )
    mismatch = _weights_mismatch(text, name)
    if mismatch is not None:
        return mismatch
    if isinstance(error, RecursionError):
        return ModelFileError(
            f"'{name}' nests or chains its layers more deeply than Keras can load: use a shallower model."
        )
    if "non-modeling api" in lowered:
        return ModelFileError(f"'{name}' refers to Keras functions that are not model parts, so it is refused.")
    if isinstance(error, TypeError) and "unhashable" in lowered:
        return _malformed(name, "an entry of the wrong type")
    return ModelFileError(
        f"'{name}' could not be read as a Keras model ({kind}): save it again with Keras 3 "
        "as `model.save('model.keras')`."
    )
