"""The "Trust" tab: can the maps on screen be trusted at all?

Behind a toggle (it recomputes every map once per randomisation step), the library's randomisation
check (`explainers.randomization_check`, Adebayo et al.) runs for the drawn region, class and layer:
the fast maps on screen by default, the slow ones too when asked (each of them runs again at every
step, with a progress bar). Curves of each map's similarity to its original as the network's weights
are randomised from the output, a random map as the floor, and a plain verdict per method. When the
image has ground truth, the localisation scores of each map on the explained class's true pixels
(`explainers.localization`) follow. Results are kept per model, image, region, class, layer, target
and map settings in the slow-map store, like the faithfulness scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import compute, safe_text
from dashboard.comparison import (
    PLOT_CONFIG,
    Request,
    is_slow,
    map_options,
    region_key,
    settings_key,
    short_label,
)
from explainers import diagnostics, localization, randomization

ON = "trust-on"
SLOW = "trust-slow"
STEPS = 8  # the weighted layers are grouped into at most this many steps on the page
FLOOR = "random map (floor)"


def key(request: Request, methods: tuple[str, ...]) -> tuple:
    return ("trust", request.model_key, request.image_key, region_key(request), int(request.class_index),
            request.layer, request.target, STEPS, tuple(settings_key(request, m) for m in methods))


def show(request: Request, results: Mapping[str, Any], truth: np.ndarray | None) -> None:
    """The toggle, then the curves and verdicts; the localisation scores when `truth` (labels) is given."""
    on = st.toggle("Run the randomisation check for this region (each map once per step)", key=ON,
                   help="Re-initialises the network's weights step by step from the output towards the input, on "
                        "a copy, and recomputes each map: a map that does not change shows the image, not the "
                        "network (Adebayo et al., 2018).")
    if on:
        _randomisation(request, results)
    else:
        st.caption("A map that stays the same while the network's weights become random cannot be showing what "
                   "the network learned. Turn the check on to see how each map on screen changes.")
    if truth is not None:
        _localisation(request, results, truth)


def _randomisation(request: Request, results: Mapping[str, Any]) -> None:
    slow = [m for m in results if is_slow(m)]
    with_slow = False
    if slow:
        with_slow = st.checkbox(f"Include the slow maps on screen ({', '.join(short_label(m) for m in slow)}): "
                                f"each runs again at every step", key=SLOW)
    methods = tuple(m for m in results if with_slow or not is_slow(m))
    if not methods:
        st.info("Only slow maps are on screen: include them above, or add a fast map such as Grad-CAM.")
        return
    store_key = key(request, methods)
    result = compute.stored(store_key)
    if result is None:
        slot = st.empty()
        with slot.container(), st.status(f"Randomising the network in up to {STEPS} steps…", expanded=True) as status:
            try:  # the status ends complete, or as an error (collapsed) above the reason the caller shows
                bar = st.progress(0.0, text="randomisation check")
                result = compute.randomization(
                    store_key, request.model, request.image, request.region, request.class_index, request.layer,
                    methods, request.target, {m: map_options(request, m) for m in methods}, STEPS,
                    progress=lambda f: bar.progress(float(min(max(f, 0.0), 1.0)),
                                                    text=f"randomisation check: {100 * f:.0f} %"),
                    model_key=request.model_key)
            except Exception:
                status.update(label="Check stopped (the reason is below)", state="error", expanded=False)
                raise
            status.update(label="Check done", state="complete")
        slot.empty()
    left, right = st.columns(2)
    left.plotly_chart(curves_figure(result, result.spearman, "Rank correlation with the trained network's map",
                                    "Spearman ρ"), key="trust-spearman", config=PLOT_CONFIG)
    right.plotly_chart(curves_figure(result, result.ssim, "Structural similarity (SSIM)", "SSIM"),
                       key="trust-ssim", config=PLOT_CONFIG)
    st.caption("Left to right: the trained network, then more and more layers re-initialised from the output "
               "(hover a point for the layers a step adds). Dashed: a random map against another (the floor)."
               + (f" Layer {safe_text.code(result.layer)}." if result.layer else ""))
    rows = []
    for m in result.methods:
        v = result.verdict(m)
        rows.append({"method": short_label(m), "verdict": v.text,
                     "lowest ρ": None if v.changes is None else round(v.lowest_rho, 3),
                     "ρ with every layer random": round(result.spearman[m][-1], 3)})
    st.dataframe(rows, hide_index=True)
    st.caption(f"Verdict: \"changes\" when the map's Spearman ρ with its original falls below "
               f"{randomization.BARELY_CHANGES_RHO} at some step, else \"barely changes\". Maps built from the "
               "region's own gradients stay inside the region's footprint whatever the weights, which keeps ρ up.")


def curves_figure(result: randomization.RandomizationResult, values: Mapping[str, list[float]], title: str,
                  y_title: str) -> go.Figure:
    """One line per method from the trained network (step 0, similarity 1) to every layer random; methods with
    curves within 1e-4 (e.g. Grad-CAM and Seg-Grad-CAM at a layer followed by a 1×1 classifier) share one line."""
    labels = ["trained", *[f"step {k + 1}" for k in range(len(result.steps))]]
    hover = ["no layer random", *(safe_text.html(label) for label in result.labels())]  # layer names: text
    fig = go.Figure()
    for names, m in _lines(result):
        floor = m == randomization.RANDOM
        fig.add_trace(go.Scatter(x=labels, y=[1.0, *values[m]], mode="lines+markers",
                                 name=FLOOR if floor else " = ".join(short_label(n) for n in names), text=hover,
                                 hovertemplate="%{text}: %{y:.2f}<extra></extra>",
                                 line=dict(dash="dash", color="grey") if floor else None))
    fig.update_layout(title=title, xaxis_title="layers randomised from the output", yaxis_title=y_title,
                      xaxis_type="category", yaxis_range=[-1.05, 1.05], height=360,
                      margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.3, font=dict(size=10)))
    return fig


def _lines(result: randomization.RandomizationResult) -> list[tuple[list[str], str]]:
    """(methods drawn as one line, the method whose values it shows), the floor last."""
    curves = {m: np.concatenate([result.spearman[m], result.ssim[m]]) for m in result.methods}
    drawn: list[tuple[list[str], str]] = []
    taken: set[str] = set()
    for members, _difference in diagnostics.identical_groups(curves, tolerance=1e-4):
        drawn.append((list(members), members[0]))
        taken.update(members)
    lines = [(names, first) for names, first in drawn]
    lines += [([m], m) for m in result.methods if m not in taken]
    order = {m: i for i, m in enumerate(result.methods)}
    lines.sort(key=lambda item: order[item[1]])
    return [*lines, ([randomization.RANDOM], randomization.RANDOM)]


def _localisation(request: Request, results: Mapping[str, Any], truth: np.ndarray) -> None:
    target = np.asarray(truth) == int(request.class_index)
    st.markdown("**Against the ground truth** of the explained class")
    if not target.any():
        st.caption("The ground truth has no pixel of this class: nothing to localise.")
        return
    maps = {short_label(m): results[m].heatmap for m in results}
    maps["random map"] = localization.random_map(target.shape)
    rows = [{"method": name, **{k: round(v, 3) for k, v in localization.scores(heat, target).items()}}
            for name, heat in maps.items()]
    st.dataframe(rows, hide_index=True, column_config={
        "mass_accuracy": st.column_config.NumberColumn("relevance mass", help="Share of the map's relevance on the "
                                                       "class's true pixels (Arras et al.)."),
        "rank_accuracy": st.column_config.NumberColumn("relevance rank", help="Share of the K most relevant pixels "
                                                       "on the class's true pixels, K = their count (Arras et al.)."),
        "energy_pointing_game": st.column_config.NumberColumn("energy pointing game", help="Share of the map's "
                                                              "relevance in the true pixels' bounding box (Score-CAM)."),
        "pointing_game": st.column_config.NumberColumn("pointing game", help="1 when the map's maximum is on a true "
                                                       "pixel (Zhang et al.)."),
    })
    st.caption("Region-independent: these score each map against every true pixel of the class in the image, "
               "not only the drawn region. A random map's row is the chance level.")
