"""Interaction latency, warm, end to end through the explainers API.

New region -> three CAM maps; full default XRAI on the same image (segments already known).
Run: `python -m benchmarks.latency [--quick]`.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.common import Section, default_setup, random_regions


def run(quick: bool = False) -> Section:
    import explainers

    section = Section("Interaction latency (warm)")
    model, image, prediction, region, class_index = default_setup()
    layer = explainers.default_layer(model)
    cams = ("gradcam", "gradcam++", "vinogradova")
    explainers.explain(model, image, region, class_index, layer, methods=(*cams, "xrai"))  # warm-up

    samples = []
    for new_region in random_regions(prediction.labels, 5 if quick else 30, seed=1):
        start = time.perf_counter()
        explainers.explain(model, image, new_region, class_index, layer, methods=cams)
        samples.append(time.perf_counter() - start)
    t_cam = statistics.median(samples)

    xrai_samples = []
    for new_region in random_regions(prediction.labels, 1 if quick else 3, seed=2):
        start = time.perf_counter()
        explainers.explain(model, image, new_region, class_index, layer, methods=("xrai",))
        xrai_samples.append(time.perf_counter() - start)
    t_xrai = statistics.median(xrai_samples)

    section.row("new region -> 3 CAM maps (median)", f"{t_cam * 1000:.1f} ms")
    section.row("new region -> 3 CAM maps (max)", f"{max(samples) * 1000:.1f} ms")
    section.row("full default XRAI, new region (median)", f"{t_xrai:.2f} s")
    section.target("3 CAM maps under 0.25 s", t_cam < 0.25)
    section.target("full default XRAI under 5 s", t_xrai < 5)
    return section


if __name__ == "__main__":
    from benchmarks.cli import main

    main(run, __doc__)
