"""A running slow map's progress, and the one moment its cell should look at the job again.

Why not `st.fragment(run_every=…)`: polling every half second re-renders the page in the browser on
each look, and on a 2-core machine that CPU is taken from the worker computing XRAI (measured: XRAI's
own time 4.3 s with 0.5 s polls against 3.5 s with none). The component in `frontend/wake.js` moves
its bar by itself and sends one trigger when the job is expected to be done; the trigger reruns the
cell's fragment, which shows the map or asks again with a new estimate.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable

import streamlit as st

from dashboard import components, state

SOONEST, LATEST = 0.15, 2.5  # seconds between looks: not faster than a rerun, not so slow that a bad guess stalls
# A look near the end waits for the job on the server (`wait_for`, at most `LOOK_WAIT`), so it aims a
# little before the expected end: early costs nothing but the wait, late costs the map that much time on
# screen. (The look is timed in the browser from when the cell arrives there, 0.1-0.3 s after the
# server drew it, and the request takes a moment back.)
MARGIN = -0.3
LOOK_WAIT = 1.0  # a run slower than the last ones by up to 0.7 s is still caught by one look
WAIT_STEP = 0.02  # seconds between two checks for a rerun the user asked for while a look waits
_SEQ = itertools.count()


def next_look(remaining: float) -> float:
    """Seconds until the cell looks at its job again: a little before its expected end (`MARGIN`)."""
    return min(max(float(remaining) + MARGIN, SOONEST), LATEST)


def progress(fraction: float, remaining: float, text: str, key: str, look: float | None = None) -> None:
    """Show the bar at `fraction`, gliding on over the `remaining` seconds expected, and rerun the
    enclosing fragment at `next_look(remaining)`, or at `next_look(look)` when something is expected
    sooner (a preview of the map)."""
    when = remaining if look is None else min(look, remaining)
    data = {"progress": float(min(max(fraction, 0.0), 1.0)), "expectMs": int(1000 * max(remaining, 0.0)),
            "wakeMs": int(1000 * next_look(when)), "text": text, "seq": next(_SEQ)}
    bar = components.declare("wake", "wk-root")
    bar(data=data, key=key, on_tick_change=functools.partial(_mark_look, key), width="stretch", height="content")


def _mark_look(key: str) -> None:
    st.session_state[state.WAKE_LOOK] = key


def looked(key: str) -> bool:
    """Whether this run is the look the bar `key` asked for (its trigger), and not a run of anything else."""
    return st.session_state.pop(state.WAKE_LOOK, None) == key


def wait_for(done: Callable[[float], bool], seconds: float) -> bool:
    """Hold this run up to `seconds` until `done(timeout)` (e.g. `threading.Event.wait`) says true, and give
    way at once when the user asks for a rerun meanwhile (a stroke must not wait for a map's look).

    Why: the browser can only look at the job at a time it guessed; a look that arrives a little early
    and waits shows the map the moment it is computed, where a second look came up to a spacing of looks
    later. Whether a rerun was asked for is read off the run's Streamlit request queue (not public
    API); where that cannot be read, nothing waits."""
    pending = _rerun_pending()
    if pending is None:
        return done(0.0)
    deadline = time.monotonic() + max(float(seconds), 0.0)
    while True:
        left = deadline - time.monotonic()
        if done(min(WAIT_STEP, max(left, 0.0))):
            return True
        if left <= 0 or pending():
            return False


def _rerun_pending() -> Callable[[], bool] | None:
    """A check whether a rerun or stop was requested since this run began, or None when unknown."""
    try:
        from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        requests = get_script_run_ctx().script_requests
        if not isinstance(requests._state, ScriptRequestType):
            return None
    except Exception:  # noqa: BLE001 (another Streamlit: looks then just do not wait)
        return None
    return lambda: requests._state is not ScriptRequestType.CONTINUE


PAINT_WAIT = 1.5  # seconds: the longest `after_paint` waits for the pictures before it triggers anyway


def after_paint(key: str, on_due: Callable[[], None]) -> None:
    """Call `on_due` (as a widget callback, so it may rerun a keyed fragment) once every picture on the
    page is loaded and painted, or after `PAINT_WAIT` seconds at the latest (`frontend/settle.js`).

    Why: a finished slow map's cell asks for one more rerun of the loop (the agreement, faithfulness and
    export take the new map). Asked at once, that rerun's script and its re-render in the browser ran
    while the map's own picture was still being fetched and painted, and held it back."""
    settle = components.declare("settle", "st-root")
    settle(data={"maxMs": int(1000 * PAINT_WAIT), "seq": next(_SEQ)}, key=key, on_due_change=on_due,
           width="stretch", height="content")
