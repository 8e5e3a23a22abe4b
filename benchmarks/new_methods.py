"""Seg-XRes-CAM and RISE on the shipped model, Grad-CAM++'s score choice, and scene generation speed.

Seg-XRes-CAM must ride in the CAMs' one compiled pass: the time of the three default CAMs with and
without it is compared in the same run. RISE is timed per mask (batched forward passes). Grad-CAM++ on
the adapter mean versus the region sum is measured as a rank correlation (how much the score choice
matters). Scene generation throughput (once a timed test) is printed here.
Run: `python -m benchmarks.new_methods [--quick]`.
"""

from __future__ import annotations

import time

from benchmarks.common import Section, default_setup, timed

CAMS = ("gradcam", "gradcam++", "vinogradova")


def run(quick: bool = False) -> Section:
    import explainers
    from models.scenes import generate

    section = Section("New methods: Seg-XRes-CAM, RISE; Grad-CAM++ score choice; scene generation")
    model, image, _, region, class_index = default_setup()
    layer = explainers.default_layer(model)
    repeats = 3 if quick else 15

    def cams(methods):
        return lambda: explainers.explain(model, image, region, class_index, layer, methods)

    t_cams = timed(cams(CAMS), repeats)
    t_with = timed(cams((*CAMS, "seg-xres-cam")), repeats)
    section.row("three CAMs, one pass", f"{t_cams * 1000:.1f} ms")
    section.row("three CAMs + Seg-XRes-CAM, one pass", f"{t_with * 1000:.1f} ms")
    section.row("Seg-XRes-CAM's extra cost in the shared pass", f"{t_with / t_cams:.2f}x")
    section.target("Seg-XRes-CAM adds <= 1.5x to the shared pass", t_with / t_cams <= 1.5)

    masks = 50 if quick else 500
    explainers.explain(model, image, region, class_index, None, ("rise",), options={"rise": {"masks": 8}})  # compile
    start = time.perf_counter()
    explainers.explain(model, image, region, class_index, None, ("rise",), options={"rise": {"masks": masks}})
    t_rise = time.perf_counter() - start
    section.row(f"RISE, {masks} masks", f"{t_rise:.2f} s ({t_rise / masks * 1000:.1f} ms per mask)")

    choice = explainers.score_choice(model, image, region, class_index, layer)
    section.row(f"Grad-CAM++ adapter mean vs region sum at `{layer}`: rank correlation",
                f"{choice['rank_correlation']:.3f} (top-10 % IoU {choice['top10_iou']:.2f})")

    count = 20 if quick else 100
    start = time.perf_counter()
    generate(count, seed=9)
    t_scenes = time.perf_counter() - start
    section.row(f"scene generation, {count} scenes", f"{t_scenes:.2f} s ({count / t_scenes:.0f} scenes/s)")
    return section


if __name__ == "__main__":
    from benchmarks.cli import main

    main(run, __doc__)
