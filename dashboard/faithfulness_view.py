"""Section 6 of the page: which map to believe?

Behind a toggle (it costs about 2 × (STEPS + 1) forward passes per map), every map on screen is
scored for the current region and class by the library's deletion and insertion curves, Average
Drop and Increase in Confidence (`explainers.faithfulness`), next to a random map as the chance
baseline. The numbers are remembered per model, image, region, class, score target, steps and the
settings of every map (`key`), in the same kind of store as the slow maps, because they report
progress while they run. The progress status closes on every outcome (complete, or error when the
scoring raises), so a refusal never leaves "Scoring…" open above its message; when the memory budget
made the library score in smaller batches or at a smaller size, its note is shown with the results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from dashboard import compute, figures, safe_text, state
from dashboard.comparison import PLOT_CONFIG, Request, region_key, settings_key, short_label
from explainers import diagnostics

STEPS = 20  # points per curve beyond the start: fractions 0, 1/20, …, 1
RANDOM = "random"


@dataclass(frozen=True)
class Scores:
    """Section 6's outcome for the export: the numbers, the ranking rows (best first), how they were made."""

    results: dict[str, Any]
    ranking: list[dict]
    target: str
    steps: int


def key(request: Request, methods: tuple[str, ...], target: str, steps: int = STEPS) -> tuple:
    """Everything the scores depend on: model, image, region, class, the maps' own settings, target, steps."""
    return ("faithfulness", request.model_key, request.image_key, region_key(request),
            int(request.class_index), request.target, target, int(steps),
            tuple(settings_key(request, m) for m in methods))


def name(method: str) -> str:
    return "random baseline" if method == RANDOM else short_label(method)


def show(request: Request, results: Mapping[str, Any]) -> Scores | None:
    """The toggle, then (when on) the two curve charts and the ranking table; returns the scores."""
    state.put(state.FAITHFULNESS, {})
    on = st.toggle(f"Score the maps on screen (about 2 × {STEPS + 1} forward passes per map)",
                   key=state.FAITHFULNESS_ON,
                   help="Deletion: remove the pixels each map ranks highest first and watch the region's score "
                        "fall. Insertion: reveal them first and watch it rise. A random map is the baseline.")
    if not on or not results:
        st.caption("A faithful map names the pixels the network actually relies on: hiding them should destroy "
                   "the region's score quickly, showing them alone should restore it quickly.")
        return None
    target = st.radio("Score", state.FAITHFULNESS_TARGETS, key=state.FAITHFULNESS_TARGET, horizontal=True,
                      format_func={"probabilities": "class probability (default)",
                                   "logits": "class logit"}.get,
                      help="The region score the curves follow. Average Drop needs a positive score, so it "
                           "is only defined for logits when the full image's score is positive.")
    methods = tuple(results)
    store_key = key(request, methods, target)
    scores = compute.stored(store_key)
    if scores is None:
        scores = _score(request, results, methods, store_key, target)
    state.put(state.FAITHFULNESS, scores)
    note = how_scored(scores)
    if note:
        st.info(safe_text.md(note), icon=":material/memory:")
    ranking = compute.faithfulness_ranking(scores)
    share = region_share(request.region)
    _charts(scores, target, share)
    _table(ranking, share)
    return Scores(results=scores, ranking=ranking, target=target, steps=STEPS)


def _score(request: Request, results: Mapping[str, Any], methods: tuple[str, ...], store_key: tuple,
           target: str) -> dict[str, Any]:
    """Compute the scores under a progress status that ends complete (then goes) or, on any exception,
    as an error, collapsed, before the exception reaches the caller's message."""
    slot = st.empty()
    with slot.container(), st.status(f"Scoring {len(methods)} map(s) and the random baseline…",
                                     expanded=True) as status:
        try:
            bar = st.progress(0.0, text="deletion and insertion curves")
            scores = compute.faithfulness(
                store_key, request.model, request.image, request.region, request.class_index,
                {m: results[m].heatmap for m in methods}, STEPS, target,
                progress=lambda f: bar.progress(float(min(max(f, 0.0), 1.0)),
                                                text=f"deletion and insertion curves: {100 * f:.0f} %"))
        except Exception:
            status.update(label="Scoring stopped (the reason is below)", state="error", expanded=False)
            raise
        status.update(label="Scores done", state="complete", expanded=False)
    slot.empty()
    return scores


def how_scored(scores: Mapping[str, Any]) -> str:
    """The library's note on how the memory budget shaped the scoring ("" when it did not)."""
    return next((note for result in scores.values() if (note := getattr(result, "note", ""))), "")


def region_share(region: np.ndarray) -> float:
    """The region's share of the image: the adapter's score (class score × mask, averaged over the whole
    grid) ÷ this share is the class score averaged over the region, which reads on the class's own scale
    (about 1 for a region the network is sure of) instead of shrinking with the region's size."""
    return max(float(np.asarray(region, dtype=bool).mean()), 1.0 / max(np.asarray(region).size, 1))


def _charts(scores: Mapping[str, Any], target: str, share: float = 1.0) -> None:
    y_title = f"mean class {'probability' if target == 'probabilities' else 'logit'} over the region"
    ordered = [m for m in scores if m != RANDOM] + ([RANDOM] if RANDOM in scores else [])
    names = merged_names(scores, ordered)
    shown = [m for m in ordered if m in names]
    deletion = {names[m]: (scores[m].deletion.fractions, np.asarray(scores[m].deletion.scores, float) / share)
                for m in shown}
    insertion = {names[m]: (scores[m].insertion.fractions, np.asarray(scores[m].insertion.scores, float) / share)
                 for m in shown}
    merged = [label for label in names.values() if " = " in label]
    if merged:
        st.caption(f"{'; '.join(merged)}: identical curves (the maps are the same), drawn as one line so "
                   "none hides behind another.")
    left, right = st.columns(2)
    left.plotly_chart(figures.curves_figure(deletion, "Deletion (lower is better)", "fraction of pixels removed",
                                            y_title, baseline=name(RANDOM)),
                      key="faithfulness-deletion", config=PLOT_CONFIG)
    right.plotly_chart(figures.curves_figure(insertion, "Insertion (higher is better)",
                                             "fraction of pixels revealed", y_title, baseline=name(RANDOM)),
                       key="faithfulness-insertion", config=PLOT_CONFIG)
    st.caption(f"Score: the class {target[:-1] if target.endswith('s') else target} averaged over the region's "
               f"pixels (the adapter's score, class {target} × region mask averaged over the output grid, ÷ the "
               f"region's {100 * share:.1f} % of the image), at {STEPS + 1} fractions; removed or not yet revealed "
               "pixels come from a blurred copy of the image. Dashed: a random map.")


def merged_names(scores: Mapping[str, Any], ordered: list[str]) -> dict[str, str]:
    """Legend name per method drawn; methods with identical curves share one line named "A = B"."""
    curves = {m: np.concatenate([np.asarray(scores[m].deletion.scores, float),
                                 np.asarray(scores[m].insertion.scores, float)]) for m in ordered if m != RANDOM}
    names = {m: name(m) for m in ordered}
    for members, _difference in diagnostics.identical_groups(curves, tolerance=1e-9):
        names[members[0]] = " = ".join(name(m) for m in members)
        for other in members[1:]:
            names.pop(other)
    return names


def _table(ranking: list[dict], share: float = 1.0) -> None:
    st.caption("How to read it: best first by insertion AUC − deletion AUC; a map that does not beat the random "
               "baseline's row ranks pixels no better than chance for this region and class. Areas in the charts' "
               "units (the region's mean score).")
    rows = [{"method": name(r["method"]), "insertion − deletion": r["insertion_minus_deletion"] / share,
             "deletion AUC": r["deletion_auc"] / share, "insertion AUC": r["insertion_auc"] / share,
             "Average Drop %": r["average_drop_pct"],
             "Increase in Confidence": "yes" if r["increase_in_confidence"] else "no"}
            for r in ranking]
    st.dataframe(rows, hide_index=True, column_config={
        "insertion − deletion": st.column_config.NumberColumn(format="%.4f", help="Higher is better."),
        "deletion AUC": st.column_config.NumberColumn(
            format="%.4f", help="Area under the deletion curve: lower means the score falls faster."),
        "insertion AUC": st.column_config.NumberColumn(
            format="%.4f", help="Area under the insertion curve: higher means the score recovers faster."),
        "Average Drop %": st.column_config.NumberColumn(
            format="%.1f", help="Drop of the score when the image is weighted by the map (lower is better)."),
        "Increase in Confidence": st.column_config.TextColumn(
            help="Whether the image weighted by the map scores higher than the full image (yes / no)."),
    })
