"""Options objects: each method's settings as a frozen dataclass whose defaults and checks live once.

A method's options class is declared next to its maths (e.g. `xrai.XRAIOptions`); the registry names
it. Building one validates it, so a bad setting fails before any work with one sentence that says
what to change. `from_value` accepts an options object, a plain dict of its fields, or None.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from explainers.errors import ExplainerError


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """For methods without settings (most gradient CAMs)."""


def whole(value: Any, name: str, minimum: int, method: str) -> int:
    """`value` if it is an integer ≥ `minimum` (booleans refused), else an ExplainerError."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if not ok and hasattr(value, "__index__") and not isinstance(value, bool):  # numpy integers
        ok = int(value) >= minimum
    if not ok:
        raise ExplainerError(f"{method}: `{name}` must be an integer of at least {minimum}, got {value!r}.")
    return int(value)


def batch(value: Any, name: str, method: str) -> int | None:
    """A batch size: None (chosen from the memory budget) or an integer ≥ 1."""
    return None if value is None else whole(value, name, 1, method)


def number(value: Any, name: str, method: str, low: float, high: float | None = None,
           open_low: bool = False) -> float:
    """A finite real in [low, high] (or (low, high] with `open_low`)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok:
        span = f"{'(' if open_low else '['}{low:g}, {'∞' if high is None else format(high, 'g')}]"
        raise ExplainerError(f"{method}: `{name}` must be a finite number in {span}, got {value!r}.")
    return float(value)


def choice(value: Any, name: str, method: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ExplainerError(f"{method}: `{name}` must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    return value


def set_field(obj: Any, name: str, value: Any) -> None:
    """Store a normalised value on a frozen dataclass from its `__post_init__`."""
    object.__setattr__(obj, name, value)


def from_value(cls: type, value: Any, method: str) -> Any:
    """An instance of `cls` from an instance, a mapping of its fields, or None (the defaults)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            known = ", ".join(sorted(names)) or "none"
            raise ExplainerError(f"{method}: unknown option(s) {', '.join(unknown)}; its options are: {known}.")
        return cls(**dict(value))
    raise ExplainerError(
        f"{method}: options must be a {cls.__name__} or a dict of its fields, got {type(value).__name__}."
    )


def as_dict(options: Any) -> dict[str, Any]:
    """The fields of an options object as a plain dict (for records and cache keys)."""
    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else {}


# ------------------------------------------------------------------ interface metadata of option fields
# Each options field carries how a person sets it (label, range, step, help) in `dataclasses.field(metadata=)`,
# so the dashboard's widgets and the batch CLI's `--option METHOD.FIELD=VALUE` come from the field itself.

_META = "segexplain"


@dataclasses.dataclass(frozen=True)
class Spec:
    """How one option is shown and parsed: `kind` is "int", "float" or "choice"; `page` False keeps it off
    the dashboard (batch sizes chosen from memory, seeds); `optional` allows None ("auto" on the CLI)."""

    name: str
    default: Any
    label: str
    help: str
    kind: str = "int"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    page: bool = True
    optional: bool = False


def option(default: Any, label: str, help: str, *, kind: str = "int", low: float | None = None,
           high: float | None = None, step: float | None = None, choices: tuple[str, ...] = (),
           page: bool = True, optional: bool = False) -> Any:
    """A dataclass field with its interface metadata (the `Spec` without its name and default)."""
    info = {"label": label, "help": help, "kind": kind, "low": low, "high": high, "step": step,
            "choices": tuple(choices), "page": page, "optional": optional}
    return dataclasses.field(default=default, metadata={_META: info})


def specs(cls: type) -> tuple[Spec, ...]:
    """The `Spec` of every field of an options class, in declaration order (a field without metadata
    gets a plain one, so a method written without it still works on the CLI)."""
    out = []
    for f in dataclasses.fields(cls):
        info = dict(f.metadata.get(_META, {"label": f.name, "help": "", "page": False}))
        out.append(Spec(name=f.name, default=f.default, **info))
    return tuple(out)


def parse(cls: type, name: str, text: str, method: str) -> Any:
    """One option's value from text (the CLI), by its Spec's kind; the options class checks the range."""
    by_name = {s.name: s for s in specs(cls)}
    if name not in by_name:
        known = ", ".join(by_name) or "none"
        raise ExplainerError(f"{method}: unknown option {name!r}; its options are: {known}.")
    spec = by_name[name]
    if spec.optional and text.strip().lower() in ("none", "auto", ""):
        return None
    try:
        if spec.kind == "int":
            return int(text)
        if spec.kind == "float":
            return float(text)
    except ValueError:
        raise ExplainerError(f"{method}: `{name}` must be a{'n integer' if spec.kind == 'int' else ' number'}"
                             f", got {text!r}.") from None
    return text
