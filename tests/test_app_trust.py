"""The Trust tab under AppTest: randomisation curves, verdicts and localisation scores for the drawn region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import state, trust_view
from explainers import randomization

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SIZE = 144


def _box() -> np.ndarray:
    region = np.zeros((SIZE, SIZE), dtype=bool)
    region[40:72, 45:100] = True  # the cap of the default sample ("fly agaric")
    return region


def _charts(at: AppTest) -> dict[str, dict]:
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {(s["layout"].get("title", {}).get("text") or ""): s for s in specs}


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.usefixtures("finish_slow_maps")
def test_trust_tab_draws_randomisation_curves_verdicts_and_localisation() -> None:
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state[keys.XRAI_STEPS] = 4
    at.session_state[keys.XRAI_ALGORITHM] = "fast"
    at.session_state[state.INJECTED_REGION] = _box()
    at.session_state[state.METHODS] = ["gradcam", "hirescam", "xrai"]
    at.run()
    _clean(at)
    assert "Trust" in [tab.label for tab in at.tabs]
    assert not [t for t in _charts(at) if t.startswith("Rank correlation")]  # off until asked for
    # the sample has ground truth: localisation scores are shown without the check
    local = next(d.value for d in at.dataframe if "mass_accuracy" in d.value.columns)
    assert list(local["method"]) == ["Grad-CAM", "XRAI", "HiResCAM", "random map"]
    assert ((local["mass_accuracy"] >= 0) & (local["mass_accuracy"] <= 1)).all()

    at.toggle(key=trust_view.ON).set_value(True).run()
    _clean(at)
    charts = _charts(at)
    spearman = charts["Rank correlation with the trained network's map"]
    names = [trace["name"] for trace in spearman["data"]]
    assert names == ["Grad-CAM", "HiResCAM", trust_view.FLOOR]  # the fast maps only, by default
    for trace in spearman["data"]:
        assert trace["x"][0] == "trained" and trace["y"][0] == 1.0
        assert len(trace["x"]) == trust_view.STEPS + 1  # the shipped model's 18 layers in 8 steps
    assert spearman["data"][-1]["line"]["dash"] == "dash"
    assert "Structural similarity (SSIM)" in charts
    verdicts = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert set(verdicts["verdict"]) <= {randomization.CHANGES, randomization.BARELY, randomization.FLAT}
    assert list(verdicts["method"]) == ["Grad-CAM", "HiResCAM"]

    at.checkbox(key=trust_view.SLOW).check().run()  # the slow map too, with its progress
    _clean(at)
    names = [t["name"] for t in _charts(at)["Rank correlation with the trained network's map"]["data"]]
    assert names == ["Grad-CAM", "XRAI", "HiResCAM", trust_view.FLOOR]


def test_identical_curves_are_drawn_as_one_line_named_after_both() -> None:
    """Grad-CAM and Seg-Grad-CAM are the same map at a layer before a 1×1 classifier: one line, 'A = B'."""
    same = [0.2, -0.1]
    result = randomization.RandomizationResult(
        mode="cascading", layer="final_conv", class_index=1, methods=("gradcam", "gradcam++", "vinogradova"),
        steps=[("a",), ("a", "b")], groups=[("a",), ("b",)],
        spearman={"gradcam": same, "gradcam++": [0.5, 0.4], "vinogradova": [0.2 + 1e-7, -0.1],
                  randomization.RANDOM: [0.0, 0.01]},
        ssim={"gradcam": [0.3, 0.2], "gradcam++": [0.6, 0.5], "vinogradova": [0.3, 0.2],
              randomization.RANDOM: [0.0, 0.0]}, original={})
    fig = trust_view.curves_figure(result, result.spearman, "t", "ρ")
    assert [t.name for t in fig.data] == ["Grad-CAM = Seg-Grad-CAM", "Grad-CAM++", trust_view.FLOOR]
    assert list(fig.data[0].x) == ["trained", "step 1", "step 2"] and list(fig.data[0].y) == [1.0, 0.2, -0.1]
