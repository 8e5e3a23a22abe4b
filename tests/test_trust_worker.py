"""The Trust tab's randomisation check runs in the slow-map worker process, as the slow maps do, and
gives there what the library gives in the page's process."""

from __future__ import annotations

import numpy as np
import pytest

import explainers
import models
from dashboard import compute
from models.scenes import load_sample, sample_names

KEY = "test-trust-worker-default"


def _scene() -> tuple[np.ndarray, np.ndarray]:
    image, _ = load_sample(sample_names()[0])
    region = np.zeros(image.shape[:2], bool)
    region[40:72, 45:100] = True
    return image, region


def test_the_randomisation_check_runs_in_the_worker_and_reports_progress_here(monkeypatch: pytest.MonkeyPatch) -> None:
    image, region = _scene()
    expected = explainers.randomization_check(models.load_default(), image, region, 1, None, ("gradcam",),
                                              max_steps=3, keep_maps=False)

    def not_here(*_args, **_kwargs):
        raise AssertionError("the randomisation check ran in the page's process")

    monkeypatch.setattr(explainers, "randomization_check", not_here)  # the worker process has its own module
    monkeypatch.setitem(compute._MODEL_SOURCES, KEY, ("default",))
    fractions: list[float] = []
    result = compute.randomization(("test-trust-worker", 1), None, image, region, 1, None, ("gradcam",), "logits",
                                   {}, 3, progress=fractions.append, model_key=KEY)
    assert result.steps == expected.steps and result.layer == expected.layer
    np.testing.assert_allclose(result.spearman["gradcam"], expected.spearman["gradcam"], atol=1e-6)
    np.testing.assert_allclose(result.ssim["gradcam"], expected.ssim["gradcam"], atol=1e-6)
    assert fractions and fractions == sorted(fractions) and 0.0 < fractions[-1] <= 1.0
    assert compute.stored(("test-trust-worker", 1)) is result  # kept like the slow maps


def test_without_a_worker_source_the_check_runs_in_the_page_process(monkeypatch: pytest.MonkeyPatch) -> None:
    image, region = _scene()
    calls = []
    real = explainers.randomization_check

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(explainers, "randomization_check", counted)
    result = compute.randomization(("test-trust-here", 2), models.load_default(), image, region, 1, None,
                                   ("gradcam",), "logits", {}, 2, model_key=None)
    assert calls == [1] and result.methods == ("gradcam",)
