"""Layer sweep: Grad-CAM at every explainable layer in one pass vs at a single layer.

Run: `python -m benchmarks.layer_sweep [--quick]`.
"""

from __future__ import annotations

from benchmarks.common import Section, default_setup, timed


def run(quick: bool = False) -> Section:
    import explainers

    section = Section("Layer sweep: Grad-CAM at every layer vs one layer")
    model, image, _, region, class_index = default_setup()
    layers = [info.name for info in explainers.explainable_layers(model)]
    layer = explainers.default_layer(model)
    repeats = 3 if quick else 10

    def one():
        explainers.explain(model, image, region, class_index, layer, methods=("gradcam",))

    def sweep():
        explainers.layer_sweep(model, image, region, class_index, layers=layers, methods=("gradcam",))

    t_one = timed(one, repeats)
    t_all = timed(sweep, repeats)
    section.row("explainable layers", str(len(layers)))
    section.row("one layer", f"{t_one * 1000:.1f} ms")
    section.row("all layers in one sweep", f"{t_all * 1000:.1f} ms")
    section.row("sweep / one layer", f"{t_all / t_one:.2f}x")
    section.target("sweep <= 2x one layer", t_all / t_one <= 2)
    return section


if __name__ == "__main__":
    from benchmarks.cli import main

    main(run, __doc__)
