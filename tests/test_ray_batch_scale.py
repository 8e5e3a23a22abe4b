"""The batch-scale benchmark's quick mode runs end to end and finds Ray's summary equal to the local one."""

from __future__ import annotations

import pytest

from benchmarks import batch_scale

pytestmark = pytest.mark.slow


def test_quick_batch_scale_benchmark() -> None:
    section = batch_scale.run(quick=True, count=6, metric_steps=4)
    assert section.markdown().startswith(f"## {section.title}")
    measured = dict(section.rows)
    assert "images/s" in measured["local engine, 1 process"] and "images/s" in measured["Ray engine, 2 workers"]
    assert dict(section.verdicts)["Ray and local summaries identical (timings aside)"]
