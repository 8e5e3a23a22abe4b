"""Session keys of the methods' settings on the page, for tests: made by `state.option_key` (the page's
one rule), named here once so the tests do not spell the keys themselves."""

from __future__ import annotations

from dashboard import state

XRAI_STEPS = state.option_key("xrai", "steps")
XRAI_ALGORITHM = state.option_key("xrai", "algorithm")
SCORECAM_CHANNELS = state.option_key("scorecam", "channels")
SMOOTHGRAD_SAMPLES = state.option_key("smoothgrad", "samples")
RISE_MASKS = state.option_key("rise", "masks")
RISE_CELLS = state.option_key("rise", "cells")
SEGXRES_POOL = state.option_key("seg-xres-cam", "pool_size")
IG_STEPS = state.option_key("integrated-gradients", "steps")
PATH_METHODS = ("integrated-gradients", "guided-ig", "blur-ig")  # the methods with path steps


def input_steps(steps: int) -> dict[str, int]:
    """The path steps of Integrated Gradients, Guided IG and Blur IG (one setting each on the page)."""
    return {state.option_key(method, "steps"): steps for method in PATH_METHODS}


def cheap_xrai(steps: int = 4) -> dict[str, object]:
    """XRAI at a few steps with the fast region selection: what most page tests need."""
    return {XRAI_STEPS: steps, XRAI_ALGORITHM: "fast"}
