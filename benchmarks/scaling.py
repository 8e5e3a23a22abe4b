"""Scaling: CAM path and XRAI at several input sizes, each with the network built at that size.

The weights are freshly initialised (timing does not depend on training). Sizes are multiples of 48
so the stride-8 feature map divides into the 1, 2, 3 and 6 pyramid bins.
Run: `python -m benchmarks.scaling [--quick]`.
"""

from __future__ import annotations

import math
import time

from benchmarks.common import Section, timed

CAMS = ("gradcam", "gradcam++", "vinogradova")


def run(quick: bool = False) -> Section:
    import explainers
    from explainers import regions
    from models.pspnet import build_pspnet
    from models.scenes import generate

    section = Section("Scaling with input size")
    sizes = (96, 144) if quick else (144, 288, 432)
    steps = 10 if quick else 100
    first = None
    for size in sizes:
        model = build_pspnet(input_size=size)
        image = generate(1, seed=123, size=size)[0][0]
        region = regions.from_rectangle(size // 4, size // 4, size // 2, size // 2, (size, size))
        layer = explainers.default_layer(model)

        def cams(model=model, image=image, region=region, layer=layer):
            explainers.explain(model, image, region, 1, layer, methods=CAMS)

        t_cam = timed(cams, 3)
        start = time.perf_counter()
        explainers.explain(model, image, region, 1, layer, methods=("xrai",), options={"xrai": {"steps": steps}})
        t_xrai = time.perf_counter() - start
        first = first or (size, t_cam, t_xrai)
        pixel_ratio = (size / first[0]) ** 2
        detail = f"CAMs {t_cam * 1000:.0f} ms, XRAI ({steps} steps) {t_xrai:.1f} s"
        if pixel_ratio > 1:
            cam_exp = math.log(t_cam / first[1]) / math.log(pixel_ratio)
            xrai_exp = math.log(t_xrai / first[2]) / math.log(pixel_ratio)
            detail += f"; vs {first[0]}px: cost ~ pixels^{cam_exp:.2f} (CAMs), ^{xrai_exp:.2f} (XRAI)"
        section.row(f"{size}x{size} ({pixel_ratio:.0f}x pixels)", detail)
    return section


if __name__ == "__main__":
    from benchmarks.cli import main

    main(run, __doc__)
