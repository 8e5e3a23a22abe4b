"""Class names stored inside a model file: read (any loader) and written (`models.export`) in one form.

Why in the library: the batch CLI loads model files and must use their names, and `explainers` does
not import `models`; the writer sits beside the reader so the two cannot drift apart. The form: a
"class_names" list in a `.keras` archive's metadata.json (read also: "classes", "labels", "id2label"
there or in config.json, or as `.h5` attributes). Parsed as JSON only: nothing is executed.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

MAX_LABEL_BYTES = 1_000_000  # a labels file for thousands of classes is far smaller
KEYS = ("class_names", "classes", "labels", "id2label")
WRITE_KEY = "class_names"
METADATA = "metadata.json"


class ClassNamesError(ValueError):
    """Names that cannot be used; the message is one sentence saying what to fix."""


def from_mapping(mapping: dict) -> list[str]:
    """{index: name} → names in index order (indices 0…N-1 without gaps)."""
    try:
        pairs = sorted((int(k), str(v).strip()) for k, v in mapping.items())
    except (TypeError, ValueError):
        raise ClassNamesError(
            "The JSON object's keys are not class indices: use {\"0\": \"background\", \"1\": \"cat\", ...}."
        ) from None
    if [k for k, _ in pairs] != list(range(len(pairs))):
        raise ClassNamesError("The class indices are not 0, 1, 2, … without gaps: give one name for every index.")
    return [name for _, name in pairs]


def from_json_value(value: object) -> list[str] | None:
    """Names from a JSON list, an {index: name} object, or either under one of `KEYS`."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    if isinstance(value, dict):
        for key in KEYS:
            if key in value:
                return from_json_value(value[key])
        if value and all(isinstance(v, str) for v in value.values()):
            return from_mapping(value)
    return None


def checked(names: list[str]) -> list[str]:
    """`names` when non-empty, each non-empty and unique; else ClassNamesError."""
    if not names:
        raise ClassNamesError("No class names were found: give one name per class, in class-index order.")
    if any(not name for name in names):
        raise ClassNamesError("One of the class names is empty: give a name for every class.")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ClassNamesError(f"The class name {duplicates[0]!r} appears twice: give every class its own name.")
    return names


def _top_level_names(value: object) -> list[str] | None:
    """Names under one of the known keys at the top of a config, or of its "config" entry."""
    for node in (value, value.get("config") if isinstance(value, dict) else None):
        if isinstance(node, dict):
            for key in KEYS:
                if key in node:
                    try:
                        names = from_json_value({key: node[key]})
                        return checked(names) if names else None
                    except ClassNamesError:
                        return None
    return None


def read(path: str | Path, suffix: str | None = None) -> list[str] | None:
    """Class names stored in a `.keras` / `.h5` file, if any; never raises. `suffix` (".keras", ".h5") says the
    format when the file's own name does not (an upload kept under another name)."""
    path = Path(path)
    suffix = (suffix or path.suffix).lower()
    try:
        if suffix == ".keras" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in (METADATA, "config.json"):
                    if member in archive.namelist():
                        if archive.getinfo(member).file_size > 50 * MAX_LABEL_BYTES:
                            continue
                        names = _top_level_names(json.loads(archive.read(member)))
                        if names:
                            return names
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as handle:
                for key in KEYS:
                    if key in handle.attrs:
                        raw = handle.attrs[key]
                        raw = raw.decode("utf-8") if isinstance(raw, bytes) else raw
                        names = from_json_value(json.loads(raw) if isinstance(raw, str) else list(map(str, raw)))
                        if names:
                            return checked(names)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, ClassNamesError):
        return None
    return None


def write(path: str | Path, names: Sequence[str]) -> None:
    """Store `names` as metadata.json's "class_names" of the `.keras` archive at `path` (rewritten atomically)."""
    path = Path(path)
    names = checked([str(name).strip() for name in names])
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    handle, temporary = tempfile.mkstemp(prefix=".names-", suffix=".keras", dir=path.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w") as out:
            found = False
            for info, data in members:
                if info.filename == METADATA:
                    meta = json.loads(data)
                    meta[WRITE_KEY] = names
                    data, found = json.dumps(meta).encode("utf-8"), True
                out.writestr(info, data)
            if not found:
                out.writestr(METADATA, json.dumps({WRITE_KEY: names}).encode("utf-8"))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
