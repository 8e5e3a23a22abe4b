"""Issue 31, item 5 on the page: the faithfulness status closes on every outcome, and the budget's note shows.

Section 6 (`dashboard.faithfulness_view.show`) run alone under AppTest with `compute.faithfulness`
replaced for the run: once refusing (as the library did at 512²), once returning scores with a note.
Before the fix a refusal left "Scoring 1 map(s)…" expanded above the error, and no note existed.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _section(outcome: str) -> None:
    """The script AppTest runs: section 6 with the library call replaced (restored afterwards)."""
    import dataclasses
    from types import SimpleNamespace

    import numpy as np
    import streamlit as st

    from dashboard import comparison, compute, faithfulness_view, state
    from explainers import ExplainerError, faithfulness

    image = np.zeros((8, 8, 3), np.uint8)
    heatmap = np.arange(64, dtype=np.float32).reshape(8, 8)

    def refuse(*_args, **_kwargs):
        raise ExplainerError("The faithfulness score needs about 6069 MB per image: raise the budget.")

    def scored(*_args, **_kwargs):
        out = faithfulness.evaluate({"gradcam": heatmap}, image.astype(np.float32),
                                    lambda batch: batch.mean(axis=(1, 2, 3)), steps=faithfulness_view.STEPS)
        return {k: dataclasses.replace(v, note="Scored at 4×4 instead of 8×8 (test).") for k, v in out.items()}

    request = comparison.Request(model=None, model_key="m", image=image, image_key=outcome,
                                 region=np.ones((8, 8), bool), class_index=0, layer="l", methods=("gradcam",),
                                 target="logits", options={"xrai": {"steps": 4, "algorithm": "fast"}})
    st.session_state[state.FAITHFULNESS_ON] = True
    original = compute.faithfulness
    compute.faithfulness = refuse if outcome == "error" else scored
    try:
        faithfulness_view.show(request, {"gradcam": SimpleNamespace(heatmap=heatmap)})
    except ExplainerError as error:
        st.error(str(error))
    finally:
        compute.faithfulness = original


def _run(outcome: str) -> AppTest:
    at = AppTest.from_function(_section, args=(outcome,), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_status_is_closed_after_a_refusal() -> None:
    at = _run("error")
    assert at.error and "6069 MB" in at.error[0].value
    statuses = at.get("status")
    assert statuses, "the status should stay, closed, above the message"
    for status in statuses:
        assert status.state == "error"
        # collapsed on purpose: a status update without `expanded` keeps the browser's open box open
        assert status.proto.HasField("expanded") and not status.proto.expanded, "the refused scoring's status is open"
        assert not status.label.startswith("Scoring 1 map")


def test_scores_made_within_the_budget_say_how() -> None:
    at = _run("scored")
    assert not at.error
    assert all(status.state != "running" for status in at.get("status"))
    assert any("Scored at 4×4 instead of 8×8" in info.value for info in at.info)
