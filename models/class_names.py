"""Class names of a user's model: parsed from a labels file or typed text, or read from the model file.

Why here (pure functions, no UI): the dashboard, the batch tools and tests need the same rules.
Where names come from, first match wins (see `resolve`):

1. names the user gives with the model: a `.txt` file (one name per line; `index name`,
   `index: name` or `index,name` lines are fine too), a `.json` file (a list of names, an
   {index: name} object, or such a list/object under "class_names", "classes", "labels" or
   "id2label"), or typed text (one name per line, or comma-separated);
2. names stored in the model file itself: keys "class_names", "classes", "labels" or "id2label" in
   the `.keras` archive's config.json / metadata.json or the `.h5` file's attributes (Keras itself
   writes none; `python -m models.export` writes "class_names" in metadata.json: `explainers.stored_names`);
3. the shipped network's mushroom names, for the shipped network only;
4. "class 0" … "class N-1".

Files are parsed as text/JSON only: nothing is executed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from explainers import stored_names
from explainers.stored_names import MAX_LABEL_BYTES, ClassNamesError

__all__ = ["MAX_LABEL_BYTES", "ClassNamesError", "fallback_names", "names_from_model_file", "parse_labels",
           "parse_typed", "resolve"]

_INDEXED = re.compile(r"^\s*(\d+)\s*[:,\t ]\s*(.+?)\s*$")
_from_mapping, _from_json_value, _checked = stored_names.from_mapping, stored_names.from_json_value, stored_names.checked


def fallback_names(num_classes: int) -> list[str]:
    return [f"class {k}" for k in range(num_classes)]


def _from_lines(lines: Sequence[str]) -> list[str]:
    lines = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    indexed = [_INDEXED.match(line) for line in lines]
    if lines and all(indexed):
        return _from_mapping({m.group(1): m.group(2) for m in indexed})
    return lines


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
    return stored_names.read(path)


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
