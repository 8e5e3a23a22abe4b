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


def test_conv_flops_counts_each_layer_kind_by_its_definition() -> None:
    """The XRAI floor's FLOP count, checked against the multiply-adds of each layer written out by hand."""
    import keras

    from benchmarks.common import conv_flops

    x = keras.Input((10, 12, 4))
    a = keras.layers.Conv2D(6, 3, padding="same")(x)  # 10·12 positions × 3·3·4 inputs × 6 outputs
    b = keras.layers.Conv2D(6, 1, groups=2)(a)  # 10·12 × (6/2) × 6
    c = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(b)  # 10·12 × 3·3 × 6·2
    d = keras.layers.SeparableConv2D(5, 3, strides=2, padding="same")(c)  # 5·6 × (3·3·12 + 12·5)
    e = keras.layers.Conv2DTranspose(3, 2, strides=2)(d)  # 5·6 inputs × 2·2 × 5 × 3
    f = keras.layers.Dense(7)(e)  # 10·12 × 3 × 7
    model = keras.Model(x, keras.layers.MaxPooling2D()(f))  # pooling is not counted
    by_hand = 120 * 36 * 6 + 120 * 3 * 6 + 120 * 9 * 12 + 30 * (9 * 12 + 12 * 5) + 30 * 4 * 5 * 3 + 120 * 3 * 7
    assert conv_flops(model) == 2 * by_hand


def test_each_benchmark_replaces_only_its_own_part_of_results() -> None:
    """run_all, ui_latency and batch_scale all write RESULTS.md: a run replaces its part and keeps the rest."""
    from benchmarks.common import replace_block

    text = "<!-- s -->\nold figures\n<!-- e -->\n\n## Browser latency\nkept\n"
    assert replace_block(text, "<!-- s -->", "<!-- e -->", "new figures\n") == (
        "<!-- s -->\nnew figures\n<!-- e -->\n\n## Browser latency\nkept\n")
    assert replace_block("## Browser latency\nkept\n", "<!-- s -->", "<!-- e -->", "new", at_top=True) == (
        "<!-- s -->\nnew\n<!-- e -->\n\n## Browser latency\nkept\n")
    assert replace_block("kept\n", "<!-- s -->", "<!-- e -->", "new") == "kept\n\n<!-- s -->\nnew\n<!-- e -->\n"
