"""Our CAMs on PyTorch models equal pytorch-grad-cam's with SemanticSegmentationTarget (the region sum).

pytorch-grad-cam min-max normalises each layer map (ε = 1e-7), resizes it with cv2 bilinear and
min-max normalises the result once more; ours is compared after the same steps on our layer map, with
our bilinear upsampling (half-pixel centres, like cv2). Our methods on the adapter score (mean over the h·w output cells) are linear in it,
so their layer maps are multiplied by h·w first: otherwise that ε, fixed in absolute terms, would
weigh h·w times more on ours. Grad-CAM++ is compared on the region-sum score (its target) and differs only by
the ε = 1e-6 pytorch-grad-cam adds to α's denominator: g² / (2g² + Σ A·g³ + ε) against our
1 / (2 + Σ A·g); with ε put into our α the maps agree to 1e-5 (checked here).
"""

from __future__ import annotations

import numpy as np
import pytest

import explainers  # noqa: F401  (first: installs the triton guard before torchvision loads)
from explainers import regions
from explainers.methods import cams
from explainers.torch_engine import from_torch
from tests import torch_nets
from tests.torch_nets import MEAN, STD

import torch  # isort: skip
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM  # isort: skip
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget  # isort: skip

PEERS = {"gradcam": GradCAM, "vinogradova": GradCAM, "hirescam": HiResCAM, "layercam": LayerCAM,
         "xgradcam": XGradCAM}


def _minmax(layer_map: np.ndarray) -> np.ndarray:
    shifted = layer_map - layer_map.min()
    return shifted / (1e-7 + shifted.max())


def _ours(model, img, region, class_index, layer, methods, options=None):
    out = explainers.explain(model, img, region, class_index, layer, methods, options=options)
    engine = model.segexplain_engine
    cells = float(np.prod(engine.output_size(img.shape[:2])))
    maps = {}
    for m, e in out.items():
        region_sum = m == "vinogradova" or (options or {}).get(m, {}).get("score") == "region_sum"
        raw = e.layer_map * (1.0 if region_sum else cells)
        maps[m] = _minmax(engine._upsample(_minmax(raw)[None], img.shape[:2])[0])
    return maps


def _theirs(peer, module, img, grid, class_index, layer):
    x = torch_nets.normalised(img)
    target = SemanticSegmentationTarget(class_index, grid.astype(np.float32))
    with peer(model=module, target_layers=[layer]) as cam:
        return cam(input_tensor=x, targets=[target])[0]


def _region(size: int) -> np.ndarray:
    region = np.zeros((size, size), bool)
    region[size // 4: size // 2, size // 3: size // 3 + size // 4] = True
    return region


def _check(module, size, layers, class_index=1, seed=3):
    model = from_torch(module, input_size=(size, size), mean=MEAN, std=STD)
    img, region = torch_nets.image(size, seed), _region(size)
    grid, _ = regions.to_grid(region, model.segexplain_engine.output_size((size, size)))
    checked = 0
    for name in layers:
        ours = _ours(model, img, region, class_index, name, tuple(PEERS))
        for method, peer in PEERS.items():
            theirs = _theirs(peer, module, img, grid, class_index, dict(module.named_modules())[name])
            assert theirs.max() > 0.5, (method, name)  # a real map, not an all-zero one
            np.testing.assert_allclose(ours[method], theirs, atol=1e-5, err_msg=f"{method} at {name}")
            checked += 1
    return checked


def test_cams_equal_pytorch_grad_cam_on_a_seeded_torch_net() -> None:
    assert _check(torch_nets.TinySeg(classes=3).eval(), 32, ["stem.1", "down", "features.2", "features"]) == 20


def test_cams_equal_pytorch_grad_cam_on_an_smp_unet() -> None:
    module = torch_nets.smp_unet(classes=3)
    assert _check(module, 64, ["encoder.layer3", "decoder.blocks.2"], class_index=2) == 10


def test_gradcam_plus_plus_differs_from_pytorch_grad_cam_only_by_its_eps() -> None:
    size = 32
    module = torch_nets.TinySeg(classes=3, seed=1).eval()
    model = from_torch(module, input_size=(size, size), mean=MEAN, std=STD)
    img, region = torch_nets.image(size, 5), _region(size)
    layer = "features.2"
    theirs = _theirs(GradCAMPlusPlus, module, img, region, 1, module.features[2])
    ours = _ours(model, img, region, 1, layer, ("gradcam++",), {"gradcam++": {"score": "region_sum"}})["gradcam++"]
    assert np.abs(ours - theirs).max() < 0.1  # the ε shifts small-gradient cells a little

    # Our α with pytorch-grad-cam's ε in the denominator gives its map exactly.
    class WithEps(cams.GradCAMPlusPlus):
        def channel_weights(self, activations, gradients):
            g2 = gradients**2
            total = activations.sum(axis=(1, 2), keepdims=True)
            alpha = np.where(gradients != 0, g2 / (2 * g2 + total * g2 * gradients + 1e-6), 0.0)
            return (alpha * np.maximum(gradients, 0)).sum(axis=(1, 2))

    engine = model.segexplain_engine
    raw = engine.cam_maps(img.astype(np.float32), region, 1, [layer], [WithEps(score=cams.scores.REGION_SUM)],
                          "logits")[layer]["gradcam++"][0]
    np.testing.assert_allclose(_minmax(engine._upsample(_minmax(raw)[None], (size, size))[0]), theirs, atol=1e-5)


def test_dict_and_logits_outputs_give_the_maps_of_the_plain_tensor() -> None:
    size = 32
    img, region = torch_nets.image(size, 2), _region(size)
    maps = {}
    for out in ("tensor", "dict"):
        model = from_torch(torch_nets.TinySeg(out=out).eval(), input_size=(size, size), mean=MEAN, std=STD)
        maps[out] = explainers.explain(model, img, region, 2, "features", ("gradcam", "hirescam"))
    for method in ("gradcam", "hirescam"):
        np.testing.assert_allclose(maps["dict"][method].heatmap, maps["tensor"][method].heatmap, atol=1e-6)


@pytest.mark.parametrize("layer", ["features", "down.0"])
def test_one_backward_pass_gives_every_cam(layer) -> None:
    """The shared pass equals a hand-written hook + autograd Grad-CAM on the adapter score."""
    size = 32
    module = torch_nets.TinySeg(seed=4).eval()
    model = from_torch(module, input_size=(size, size), mean=MEAN, std=STD)
    img, region = torch_nets.image(size, 9), _region(size)
    kept = {}
    handle = dict(module.named_modules())[layer].register_forward_hook(lambda m, i, o: kept.setdefault("a", o))
    out = module(torch_nets.normalised(img))
    handle.remove()
    score = (out[0, 0] * torch.from_numpy(region.astype(np.float32))).mean()
    (grad,) = torch.autograd.grad(score, kept["a"])
    weights = grad.mean(dim=(2, 3), keepdim=True)
    expected = torch.relu((weights * kept["a"]).sum(1))[0].detach().numpy()
    got = explainers.explain(model, img, region, 0, layer, ("gradcam",))["gradcam"].layer_map
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
