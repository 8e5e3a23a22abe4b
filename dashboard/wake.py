"""A running slow map's progress, and the one moment its cell should look at the job again.

Why not `st.fragment(run_every=…)`: polling every half second re-renders the page in the browser on
each look, and on a 2-core machine that CPU is taken from the worker computing XRAI (measured: XRAI's
own time 4.3 s with 0.5 s polls against 3.5 s with none). The component in `frontend/wake.js` moves
its bar by itself and sends one trigger when the job is expected to be done; the trigger reruns the
cell's fragment, which shows the map or asks again with a new estimate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from dashboard import components

SOONEST, LATEST = 0.15, 2.5  # seconds between looks: not faster than a rerun, not so slow that a bad guess stalls
# the look is timed in the browser from when the cell arrives there, some 0.1-0.3 s after the server
# drew it, and the request takes a moment back: aim a little before the expected end
MARGIN = -0.15
_SEQ = itertools.count()


def next_look(remaining: float) -> float:
    """Seconds until the cell looks at its job again: at about its expected end (`MARGIN`)."""
    return min(max(float(remaining) + MARGIN, SOONEST), LATEST)


def progress(fraction: float, remaining: float, text: str, key: str, look: float | None = None) -> None:
    """Show the bar at `fraction`, gliding on over the `remaining` seconds expected, and rerun the
    enclosing fragment at `next_look(remaining)`, or at `next_look(look)` when something is expected
    sooner (a preview of the map)."""
    when = remaining if look is None else min(look, remaining)
    data = {"progress": float(min(max(fraction, 0.0), 1.0)), "expectMs": int(1000 * max(remaining, 0.0)),
            "wakeMs": int(1000 * next_look(when)), "text": text, "seq": next(_SEQ)}
    bar = components.declare("wake", "wk-root")
    bar(data=data, key=key, on_tick_change=lambda: None, width="stretch", height="content")


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
