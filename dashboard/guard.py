"""Section boundaries of the page: an unexpected error costs one section, never the page or its state.

Why: an exception that escapes the script shows a traceback (with source lines) and drops the rest
of the page. `section(...)` catches it where a part of the page begins, logs the full traceback on
the server, and shows one line. Streamlit's own control flow (`st.stop`, reruns) passes through: its
exceptions are `BaseException`s, not `Exception`s. Expected refusals (`ExplainerError` and friends)
should still be shown by the code that knows the context; this is the last line of defence.

Use::

    with guard.section("Attribution maps"):
        ...

or `guard.call("Attribution maps", fn, *args)` to get fn's result or None.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import streamlit as st

from dashboard import safe_text
from explainers.errors import ExplainerError

LOG = logging.getLogger("segexplain.dashboard")
T = TypeVar("T")


def message(title: str, error: BaseException) -> str:
    """The one line shown for an unexpected error in section `title` (no paths, no source lines)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return (f"{title}: the server ran out of memory for this input, so this part was skipped; "
                "try a smaller model, image or setting.")
    if isinstance(error, ExplainerError):
        text = str(error).strip().splitlines()
        return f"{title}: {text[0] if text else type(error).__name__}"
    return (f"{title} hit an unexpected problem ({type(error).__name__}) and was skipped; the rest of the "
            "page still works and the details are in the server log.")


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    """Run a part of the page; an exception is logged with its traceback and shown as one `st.error` line."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - the boundary: everything unexpected ends here
        LOG.exception("unexpected error in section %r", title)
        st.error(safe_text.md(message(title, error)))


def call(title: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """`fn(*args, **kwargs)` inside `section(title)`: its result, or None after showing the error."""
    with section(title):
        return fn(*args, **kwargs)
    return None
