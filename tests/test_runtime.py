"""The process-wide fixes of dashboard.runtime: Streamlit's after-run cleanup leaves Keras alone."""

from __future__ import annotations

import sys
import types

from streamlit.runtime.scriptrunner import script_runner

from dashboard import runtime


def test_after_run_cleanup_no_longer_clears_the_keras_session(monkeypatch) -> None:
    calls = []
    fake_keras = types.SimpleNamespace(backend=types.SimpleNamespace(clear_session=lambda: calls.append("keras")))
    fake_plt = types.SimpleNamespace(close=lambda which: calls.append(f"plt {which}"))
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", fake_plt)
    current = script_runner._clean_problem_modules
    streamlit_own = getattr(current, "original", current)  # an earlier AppTest in this process may have patched it
    monkeypatch.setattr(script_runner, "_clean_problem_modules", streamlit_own)
    script_runner._clean_problem_modules()
    assert "keras" in calls  # Streamlit's own cleanup resets Keras (and with it TensorFlow's kernel cache)
    calls.clear()
    assert runtime.keep_keras_session()
    assert runtime.keep_keras_session()  # idempotent
    script_runner._clean_problem_modules()
    assert calls == ["plt all"]  # matplotlib is still cleaned, Keras is left alone


def test_freeze_runs_once_per_stage(monkeypatch) -> None:
    frozen = []
    monkeypatch.setattr(runtime.gc, "freeze", lambda: frozen.append(1))
    monkeypatch.setattr(runtime.gc, "collect", lambda *a: 0)
    monkeypatch.setattr(runtime, "_FROZEN", set())
    runtime.freeze_long_lived("model a")
    runtime.freeze_long_lived("model a")
    runtime.freeze_long_lived("first maps")
    assert frozen == [1, 1]
