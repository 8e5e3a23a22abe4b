"""Layer sweep: Grad-CAM at every explainable layer in one pass vs at a single layer.

A sweep must backpropagate down to the first conv layer, so its floor is a single-layer request at
that layer; compared with the default layer (near the output, whose backward pass is short) it
cannot be below that layer's cost ratio. Both comparisons are printed; the target is checked
against the deepest single layer, and 18 separate passes are shown for scale.
Run: `python -m benchmarks.layer_sweep [--quick]`.
"""

from __future__ import annotations

from benchmarks.common import Section, default_setup, timed


def run(quick: bool = False) -> Section:
    import explainers

    section = Section("Layer sweep: Grad-CAM at every layer vs one layer")
    model, image, _, region, class_index = default_setup()
    layers = [info.name for info in explainers.explainable_layers(model)]
    default, deepest = explainers.default_layer(model), layers[0]
    repeats = 3 if quick else 15

    def one(layer):
        return lambda: explainers.explain(model, image, region, class_index, layer, methods=("gradcam",))

    def sweep():
        explainers.layer_sweep(model, image, region, class_index, layers=layers, methods=("gradcam",))

    def separately():
        for layer in layers:
            one(layer)()

    t_default = timed(one(default), repeats)
    t_deepest = timed(one(deepest), repeats)
    t_all = timed(sweep, repeats)
    t_separate = timed(separately, max(1, repeats // 5))
    section.row("explainable layers", str(len(layers)))
    section.row(f"one layer, default `{default}`", f"{t_default * 1000:.1f} ms")
    section.row(f"one layer, deepest `{deepest}`", f"{t_deepest * 1000:.1f} ms")
    section.row("all layers in one sweep", f"{t_all * 1000:.1f} ms")
    section.row("all layers one by one (a pass each)", f"{t_separate * 1000:.1f} ms")
    section.row(f"sweep / one layer at `{deepest}`", f"{t_all / t_deepest:.2f}x")
    section.row(f"sweep / one layer at `{default}`", f"{t_all / t_default:.2f}x")
    section.row("sweep speed-up vs one pass per layer", f"{t_separate / t_all:.1f}x")
    section.target(f"sweep <= 2x one layer (deepest, `{deepest}`)", t_all / t_deepest <= 2)
    section.target(f"sweep <= 2x one layer (default, `{default}`; informational)", t_all / t_default <= 2)
    return section


if __name__ == "__main__":
    from benchmarks.cli import main

    main(run, __doc__)
