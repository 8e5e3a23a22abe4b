"""Three CAMs of a PyTorch model for a new region: our one hook pass vs its floor vs pytorch-grad-cam.

Side by side, in one process, with the same thread settings (torch: `--threads`, default 2; one
inter-op thread), rounds interleaved (floor, ours, pytorch-grad-cam in each round, the first one rotating; medians):

- floor: one forward pass with a hook on the layer plus one `torch.autograd.grad` of the region-sum
  score to that layer's output (what any gradient CAM must compute);
- ours: `explainers.explain(model, image, region, class, layer, ("gradcam", "gradcam++", "hirescam"))`
  on `explainers.from_torch(...)`, a different region each round (nothing reused);
- pytorch-grad-cam: GradCAM, GradCAMPlusPlus and HiResCAM, each called with
  `SemanticSegmentationTarget` (each call runs its own forward and a backward through every parameter).

Networks, random weights built offline (nothing downloaded): torchvision DeepLabV3-ResNet50
(weights=None, weights_backbone=None; layer `backbone.layer4`) and an smp U-Net with a ResNet34
encoder (encoder_weights=None; layer `decoder.blocks.3`), both at 256×256, 6 classes.
Targets: ours ≤ 1.2× the floor and ≥ 5× faster than pytorch-grad-cam's three calls.

Run (the coordinator, on a quiet machine): `python -m benchmarks.torch_speed --write`
(`--quick`: one warm-up and 2 rounds; `--write` puts the figures between this benchmark's markers in
benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

START, END = "<!-- torch_speed:start -->", "<!-- torch_speed:end -->"
METHODS = ("gradcam", "gradcam++", "hirescam")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _networks(size: int):
    import segmentation_models_pytorch as smp
    import torch
    import torchvision

    torch.manual_seed(0)
    deeplab = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                                 num_classes=6).eval()
    unet = smp.Unet("resnet34", encoder_weights=None, classes=6).eval()
    return [("DeepLabV3-ResNet50", deeplab, "backbone.layer4"), ("smp U-Net (ResNet34)", unet, "decoder.blocks.3")]


class _Logits:
    """The module's logits tensor (torchvision returns a dict) for pytorch-grad-cam and the floor."""

    def __new__(cls, module):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = module

            def forward(self, x):
                out = self.inner(x)
                return out["out"] if isinstance(out, dict) else out

        return Wrapped().eval()


def _regions(size: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        top, left = rng.integers(0, size // 2, 2)
        h, w = rng.integers(size // 8, size // 2, 2)
        region = np.zeros((size, size), bool)
        region[top:top + h, left:left + w] = True
        out.append(region)
    return out


def _one(name, module, layer, image, x, size, rounds, threads) -> dict:
    import torch
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    import explainers
    from explainers import regions as regions_mod

    model = explainers.from_torch(module, input_size=(size, size), mean=MEAN, std=STD)
    torch.set_num_threads(threads)
    wrapped = _Logits(module)
    target_module = dict(wrapped.named_modules())["inner." + layer]
    grid_size = model.segexplain_engine.output_size((size, size))
    regions = _regions(size, rounds + 1)
    class_index = 1

    def floor(region):
        kept = {}
        handle = target_module.register_forward_hook(lambda m, i, o: kept.setdefault("a", o))
        try:
            out = wrapped(x)
        finally:
            handle.remove()
        mask = torch.from_numpy(regions_mod.to_grid(region, grid_size)[0].astype(np.float32))
        torch.autograd.grad((out[0, class_index] * mask).sum(), kept["a"])

    def ours(region):
        explainers.explain(model, image, region, class_index, layer, METHODS)

    def theirs(region):
        mask = regions_mod.to_grid(region, grid_size)[0].astype(np.float32)
        for peer in (GradCAM, GradCAMPlusPlus, HiResCAM):
            with peer(model=wrapped, target_layers=[target_module]) as cam:
                cam(input_tensor=x, targets=[SemanticSegmentationTarget(class_index, mask)])

    times: dict[str, list[float]] = {"floor": [], "ours": [], "theirs": []}
    for fn in (floor, ours, theirs):  # warm-up
        fn(regions[-1])
    order = [("floor", floor), ("ours", ours), ("theirs", theirs)]
    for r in range(rounds):
        for key, fn in order[r % 3:] + order[:r % 3]:  # each round starts with another one
            start = time.perf_counter()
            fn(regions[r])
            times[key].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{name} @ {layer}: floor {med['floor']:.3f} s, ours {med['ours']:.3f} s "
          f"({med['ours'] / med['floor']:.2f}x floor), pytorch-grad-cam {med['theirs']:.3f} s "
          f"({med['theirs'] / med['ours']:.1f}x ours, {med['theirs'] / med['floor']:.1f}x floor)", flush=True)
    return {"network": name, "layer": layer, "threads": torch.get_num_threads(), **med}


def measure(size: int = 256, rounds: int = 5, threads: int = 2) -> list[dict]:
    os.environ["SEGEXPLAIN_TORCH_THREADS"] = str(threads)
    import explainers  # noqa: F401, I001  (first: its triton guard, since TensorFlow is loaded before torchvision)
    import torch

    torch.set_num_threads(threads)
    image = (np.random.default_rng(1).random((size, size, 3)) * 255).astype(np.uint8)
    x = (torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None].contiguous() / 255.0
         - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return [_one(name, module, layer, image, x, size, rounds, threads) for name, module, layer in _networks(size)]


def markdown(results: list[dict], size: int, rounds: int) -> str:
    lines = [f"## PyTorch engine: three CAMs (Grad-CAM, Grad-CAM++, HiResCAM) for a new region, {size}×{size}",
             "", "Command: `python -m benchmarks.torch_speed --write` (medians of "
             f"{rounds} interleaved rounds, torch threads {results[0]['threads'] if results else '?'}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
             f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} on 2 cores).", "",
             "| network @ layer | floor (fwd + bwd to layer) | ours (3 maps) | pytorch-grad-cam (3 calls) "
             "| ours / floor | pytorch-grad-cam / ours |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['network']} @ `{r['layer']}` | {r['floor'] * 1000:.0f} ms | {r['ours'] * 1000:.0f} ms | "
                     f"{r['theirs'] * 1000:.0f} ms | {r['ours'] / r['floor']:.2f}× | {r['theirs'] / r['ours']:.1f}× |")
    lines.append("")
    for r in results:
        lines.append(f"- {'met' if r['ours'] / r['floor'] <= 1.2 else '**missed**'}: {r['network']} ours ≤ 1.2× floor")
        lines.append(f"- {'met' if r['theirs'] / r['ours'] >= 5 else '**missed**'}: {r['network']} ≥ 5× faster "
                     "than pytorch-grad-cam")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="put the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    results = measure(args.size, rounds, args.threads)
    text = markdown(results, args.size, rounds)
    print(text)
    if args.write:
        from benchmarks.common import RESULTS_PATH, replace_block

        RESULTS_PATH.write_text(replace_block(RESULTS_PATH.read_text(), START, END, text))


if __name__ == "__main__":
    main()
