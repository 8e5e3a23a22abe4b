"""Two process-wide costs of a Streamlit server with TensorFlow in it, removed once per process.

- After every script run (a fragment's included) Streamlit calls `keras.backend.clear_session()`,
  which empties TensorFlow's kernel cache and runs a full garbage collection: the next `explain` then
  rebuilds its kernels (about 240 ms measured on the shipped model, much more on a loaded machine).
  This page keeps its models in `st.cache_resource` and no per-run Keras state, so the cleanup buys
  nothing here; `keep_keras_session` skips it and keeps Streamlit's other cleanup (matplotlib).
- Streamlit also runs `gc.collect(2)` after each run. With TensorFlow and a model loaded, that walks
  millions of long-lived objects every time; `freeze_long_lived` moves the objects alive after the
  model load and the first maps into the permanent generation (`gc.freeze`), so later collections only
  look at what the runs themselves create.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from typing import Any

_FROZEN: set[str] = set()


def keep_keras_session() -> bool:
    """Replace Streamlit's after-run module cleanup by one that leaves Keras alone; True when done."""
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:
        return False
    original = getattr(script_runner, "_clean_problem_modules", None)
    if original is None or getattr(original, "keeps_keras", False):
        return original is not None

    def clean_without_keras() -> None:
        plt: Any = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            with contextlib.suppress(Exception):  # as Streamlit's own cleanup: never crash the app here
                plt.close("all")

    clean_without_keras.keeps_keras = True  # type: ignore[attr-defined]
    clean_without_keras.original = original  # type: ignore[attr-defined]
    script_runner._clean_problem_modules = clean_without_keras
    return True


def freeze_long_lived(stage: str) -> None:
    """`gc.freeze()` once per `stage` (e.g. "model", "maps"): what is alive now is never collected."""
    if stage in _FROZEN:
        return
    _FROZEN.add(stage)
    gc.collect()
    gc.freeze()
