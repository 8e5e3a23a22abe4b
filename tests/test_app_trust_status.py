"""The Trust tab's randomisation status closes when the check fails: it ends as an error, collapsed, above
the reason (before, "Randomising the network…" stayed open and running above the error)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _tab() -> None:
    """The Trust tab alone, with the library's check replaced by one that refuses (restored afterwards)."""
    from types import SimpleNamespace

    import numpy as np
    import streamlit as st

    from dashboard import comparison, compute, trust_view
    from explainers import ExplainerError

    def refuse(*_args, **_kwargs):
        raise ExplainerError("The randomisation check cannot copy this model: save it again with Keras 3.")

    image = np.zeros((8, 8, 3), np.uint8)
    request = comparison.Request(model=None, model_key="m", image=image, image_key="refused",
                                 region=np.ones((8, 8), bool), class_index=0, layer="l", methods=("gradcam",),
                                 target="logits", options={"xrai": {"steps": 4, "algorithm": "fast"}})
    st.session_state[trust_view.ON] = True
    original = compute.randomization
    compute.randomization = refuse
    try:
        trust_view.show(request, {"gradcam": SimpleNamespace(heatmap=np.ones((8, 8), np.float32))}, None)
    except ExplainerError as error:
        st.error(str(error))
    finally:
        compute.randomization = original


def test_the_randomisation_status_is_closed_after_a_refusal() -> None:
    at = AppTest.from_function(_tab, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and "cannot copy this model" in at.error[0].value
    statuses = at.get("status")
    assert statuses, "the status stays, closed, above the message"
    for status in statuses:
        assert status.state == "error"
        assert status.proto.HasField("expanded") and not status.proto.expanded
        assert not status.label.startswith("Randomising")
