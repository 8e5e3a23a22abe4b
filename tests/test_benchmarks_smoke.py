"""The benchmarks' `--quick` mode runs end to end, so the scripts cannot rot between real runs.

Speed is not asserted here (timed tests are noisy on shared 2-core machines); the benchmarks print
ratios instead. What is asserted: every benchmark produces its measurements and verdicts, and the
XRAI comparison's maps agree with PAIR's reference usage.
"""

from __future__ import annotations

import pytest

from benchmarks import big_model, cam_speed, latency, layer_sweep, memory, new_methods, scaling, xrai_speed

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "module", [xrai_speed, cam_speed, layer_sweep, latency, memory, scaling, new_methods, big_model]
)
def test_quick_benchmark_produces_measurements(module) -> None:
    section = module.run(quick=True)
    assert section.rows, "a benchmark must print what it measured"
    assert section.markdown().startswith(f"## {section.title}")
    if module is xrai_speed:
        agreement = dict(section.verdicts)["maps agree: rank correlation >= 0.99"]
        assert agreement, "our XRAI path must give PAIR's map"
