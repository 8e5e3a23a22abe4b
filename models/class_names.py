"""Class names of a user's model: parsed from a labels file or typed text, or read from the model file.

Why here (pure functions, no UI): the dashboard, the batch tools and tests need the same rules.
Where names come from, first match wins (see `resolve`):

1. names the user gives with the model: a `.txt` file (one name per line; `index name`,
   `index: name` or `index,name` lines are fine too), a `.json` file (a list of names, an
   {index: name} object, or such a list/object under "class_names", "classes", "labels" or
   "id2label"), or typed text (one name per line, or comma-separated);
2. names stored in the model file itself: keys "class_names", "classes", "labels" or "id2label" in
   the `.keras` archive's config.json / metadata.json or the `.h5` file's attributes (Keras itself
   writes none; keras-hub segmenters do not either, so this only finds names someone put there);
3. the shipped network's mushroom names, for the shipped network only;
4. "class 0" … "class N-1".

Files are parsed as text/JSON only: nothing is executed.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

MAX_LABEL_BYTES = 1_000_000  # a labels file for thousands of classes is far smaller
_KEYS = ("class_names", "classes", "labels", "id2label")
_INDEXED = re.compile(r"^\s*(\d+)\s*[:,\t ]\s*(.+?)\s*$")


class ClassNamesError(ValueError):
    """Names that cannot be used; the message is one sentence saying what to fix."""


def fallback_names(num_classes: int) -> list[str]:
    return [f"class {k}" for k in range(num_classes)]


def _from_mapping(mapping: dict) -> list[str]:
    try:
        pairs = sorted((int(k), str(v).strip()) for k, v in mapping.items())
    except (TypeError, ValueError):
        raise ClassNamesError(
            "The JSON object's keys are not class indices: use {\"0\": \"background\", \"1\": \"cat\", ...}."
        ) from None
    if [k for k, _ in pairs] != list(range(len(pairs))):
        raise ClassNamesError("The class indices are not 0, 1, 2, … without gaps: give one name for every index.")
    return [name for _, name in pairs]


def _from_json_value(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    if isinstance(value, dict):
        for key in _KEYS:
            if key in value:
                return _from_json_value(value[key])
        if value and all(isinstance(v, str) for v in value.values()):
            return _from_mapping(value)
    return None


def _from_lines(lines: Sequence[str]) -> list[str]:
    lines = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    indexed = [_INDEXED.match(line) for line in lines]
    if lines and all(indexed):
        return _from_mapping({m.group(1): m.group(2) for m in indexed})
    return lines


def _checked(names: list[str]) -> list[str]:
    if not names:
        raise ClassNamesError("No class names were found: give one name per class, in class-index order.")
    if any(not name for name in names):
        raise ClassNamesError("One of the class names is empty: give a name for every class.")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ClassNamesError(f"The class name {duplicates[0]!r} appears twice: give every class its own name.")
    return names


def parse_labels(data: bytes | str, filename: str = "labels.txt") -> list[str]:
    """Names from a labels file's content; `.json` files are read as JSON, anything else as text lines."""
    if isinstance(data, bytes):
        if len(data) > MAX_LABEL_BYTES:
            raise ClassNamesError(f"The labels file is larger than {MAX_LABEL_BYTES // 1000} kB: it cannot be a list of names.")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ClassNamesError("The labels file is not UTF-8 text: save it as plain text or JSON.") from None
    data = data.lstrip("\ufeff")
    if Path(filename).suffix.lower() == ".json":
        try:
            value = json.loads(data)
        except ValueError:
            raise ClassNamesError("The labels file is not valid JSON: give a list of names such as [\"background\", \"cat\"].") from None
        names = _from_json_value(value)
        if names is None:
            raise ClassNamesError("The JSON holds no list of names: give a list of strings or an {index: name} object.")
        return _checked(names)
    return _checked(_from_lines(data.splitlines()))


def parse_typed(text: str) -> list[str]:
    """Names typed by the user: one per line, or separated by commas on one line."""
    text = text.strip()
    if "\n" not in text and "," in text:
        return _checked([part.strip() for part in text.split(",")])
    return _checked(_from_lines(text.splitlines()))


def names_from_model_file(path: str | Path) -> list[str] | None:
    """Class names stored in a `.keras` / `.h5` file, if any (see the module docstring); never raises."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".keras" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in ("metadata.json", "config.json"):
                    if member in archive.namelist():
                        info = archive.getinfo(member)
                        if info.file_size > 50 * MAX_LABEL_BYTES:
                            continue
                        names = _top_level_names(json.loads(archive.read(member)))
                        if names:
                            return names
        elif path.suffix.lower() in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as handle:
                for key in _KEYS:
                    if key in handle.attrs:
                        raw = handle.attrs[key]
                        raw = raw.decode("utf-8") if isinstance(raw, bytes) else raw
                        names = _from_json_value(json.loads(raw) if isinstance(raw, str) else list(map(str, raw)))
                        if names:
                            return _checked(names)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, ClassNamesError):
        return None
    return None


def _top_level_names(value: object) -> list[str] | None:
    """Names under one of the known keys at the top of a config, or of its "config" entry."""
    for node in (value, value.get("config") if isinstance(value, dict) else None):
        if isinstance(node, dict):
            for key in _KEYS:
                if key in node:
                    try:
                        names = _from_json_value({key: node[key]})
                        return _checked(names) if names else None
                    except ClassNamesError:
                        return None
    return None


def resolve(num_classes: int, given: Sequence[str] | None = None, stored: Sequence[str] | None = None,
            shipped: Sequence[str] | None = None) -> tuple[list[str], str]:
    """(names, where they came from) for a model with `num_classes` classes.

    `given`: the user's names; `stored`: names from the model file; `shipped`: the shipped network's
    names (pass them only for the shipped network). A list of the wrong length is skipped and the
    source text says so.
    """
    notes = []
    for names, source in ((given, "given by you"), (stored, "stored in the model file"),
                          (shipped, "the shipped network's classes")):
        if not names:
            continue
        if len(names) == num_classes:
            text = source if not notes else f"{source} ({'; '.join(notes)})"
            return list(names), text
        notes.append(f"the {len(names)} names {source} do not match the model's {num_classes} classes")
    text = "numbered" + (f" ({'; '.join(notes)})" if notes else "")
    return fallback_names(num_classes), text
