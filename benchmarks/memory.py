"""Memory: 200 consecutive explain calls with different regions, classes and layers.

Every layer is visited once before measuring (its compiled function is built then); after that,
resident memory must not grow by more than 50 MB. Run: `python -m benchmarks.memory [--quick]`.
"""

from __future__ import annotations

import gc
import itertools

from benchmarks.common import Section, default_setup, random_regions, rss_mb


def run(quick: bool = False) -> Section:
    import explainers

    section = Section("Memory over 200 explain calls")
    model, image, prediction, region, class_index = default_setup()
    layers = [info.name for info in explainers.explainable_layers(model)]
    cams = ("gradcam", "gradcam++", "vinogradova")
    for layer in layers:
        explainers.explain(model, image, region, class_index, layer, methods=cams)
    gc.collect()
    before = rss_mb()

    calls = 40 if quick else 200
    num_classes = prediction.probs.shape[-1]
    plan = zip(
        random_regions(prediction.labels, calls, seed=3),
        itertools.cycle(range(num_classes)),
        itertools.cycle(layers),
        strict=False,
    )
    for new_region, cls, layer in plan:
        explainers.explain(model, image, new_region, cls, layer, methods=cams)
    gc.collect()
    growth = rss_mb() - before
    section.row("calls", str(calls))
    section.row("resident memory before", f"{before:.0f} MB")
    section.row("growth", f"{growth:+.1f} MB")
    section.target("growth < 50 MB", growth < 50)
    return section


if __name__ == "__main__":
    from benchmarks.cli import main

    main(run, __doc__)
