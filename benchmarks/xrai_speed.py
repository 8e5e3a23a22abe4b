"""XRAI: our path (compiled batched gradient, cached segments) vs PAIR's own usage.

Reference: `saliency.core.XRAI().GetMask(x, call_model_function, call_model_args)` with default
parameters (batch size 1, 100 steps, black and white baselines) and an eager tape per call.
Run: `python -m benchmarks.xrai_speed [--quick]`.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import Section, conv_flops, default_setup, matmul_flops_per_second
from benchmarks.reference import xrai_call_model_function


def run(quick: bool = False) -> Section:
    import saliency.core as saliency

    import explainers
    from explainers.metrics import rank_correlation

    section = Section("XRAI vs PAIR saliency reference usage")
    model, image, _, region, class_index = default_setup()
    steps = 10 if quick else 100
    args = {"region": region, "class_index": class_index}
    call = xrai_call_model_function(model)
    x = image.astype("float32")

    start = time.perf_counter()
    params = saliency.XRAIParameters(steps=steps)  # defaults otherwise: batch 1, min/max baselines, 'full'
    reference = saliency.XRAI().GetMask(x, call, args, extra_parameters=params)
    t_ref = time.perf_counter() - start

    def ours():
        return explainers.explain(
            model, image, region, class_index, None, methods=("xrai",), options={"xrai": {"steps": steps}}
        )

    start = time.perf_counter()
    cold = ours()["xrai"]
    t_cold = time.perf_counter() - start
    start = time.perf_counter()
    warm = ours()["xrai"]
    t_warm = time.perf_counter() - start

    # The dashboard's way: a preview at fewer steps first, then the full map reusing its gradients.
    seen: list = []
    start = time.perf_counter()
    with_preview = explainers.explain(
        model, image, region, class_index, None, methods=("xrai",), options={"xrai": {"steps": steps}},
        preview=lambda _m, early: seen.append((time.perf_counter() - start, early)),
    )["xrai"]
    t_full_after_preview = time.perf_counter() - start

    # The least any implementation needs: each of the 2 × steps gradients is a forward pass and an
    # input-gradient pass (a convolution's input gradient costs what the convolution does), at the
    # rate this host multiplies matrices.
    flops = 2 * steps * 2 * conv_flops(model)
    rate = matmul_flops_per_second()
    floor = flops / rate

    rho = rank_correlation(reference, warm.heatmap)
    section.row("steps / baselines", f"{steps} / two, filled with the image min and max (PAIR defaults)")
    section.row("reference (batch 1, eager tape)", f"{t_ref:.2f} s")
    section.row("ours, first call on this image (segments computed)", f"{t_cold:.2f} s")
    section.row("ours, new region on same image (segments reused)", f"{t_warm:.2f} s")
    section.row("speed-up, first call", f"{t_ref / t_cold:.1f}x")
    section.row("speed-up, reused segments", f"{t_ref / t_warm:.1f}x")
    section.row("XRAI's gradients, convolution work", f"{flops / 1e9:.0f} GFLOP")
    section.row("this host's float32 matmul rate (TensorFlow)", f"{rate / 1e9:.0f} GFLOP/s")
    section.row("least time at that rate (the floor)", f"{floor:.2f} s; ours is {t_warm / floor:.2f}x of it")
    section.row("rank correlation of the two maps", f"{rho:.4f}")
    if seen:
        t_preview, early = seen[0]
        section.row(f"preview ({early.options.steps} steps) handed out after", f"{t_preview:.2f} s "
                    f"({t_preview / t_warm:.2f}x of the run without preview)")
        section.row("full map after a preview", f"{t_full_after_preview:.2f} s "
                    f"({t_full_after_preview / t_warm:.2f}x of the run without preview)")
        section.row("rank correlation, preview vs full map", f"{rank_correlation(early.heatmap, warm.heatmap):.4f}")
        section.target("full map the same with or without preview",
                       bool(np.array_equal(with_preview.heatmap, warm.heatmap)))
    section.target("ours >= 3x faster than the reference (first call)", t_ref / t_cold >= 3)
    section.target(
        "maps agree: rank correlation >= 0.99", rho >= 0.99 and cold.heatmap.shape == warm.heatmap.shape
    )
    return section


if __name__ == "__main__":
    from benchmarks.cli import main

    main(run, __doc__)
