"""A PyTorch model wrapped by `explainers.from_torch` goes wherever a Keras model goes.

Layers by module path, grouped in stages; every registry method runs (or is refused in one sentence);
predictions, faithfulness and XRAI (equal to PAIR's reference usage on a torch call-model function);
`import explainers` and the Keras path work in a process where torch cannot be imported.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import saliency.core as saliency

import explainers  # noqa: F401  (first: installs the triton guard before torchvision loads)
from explainers import ExplainerError, faithfulness, graph, registry
from explainers.methods import xrai
from explainers.torch_engine import from_torch
from tests import torch_nets
from tests.conftest import ROOT
from tests.torch_nets import MEAN, STD

import torch  # isort: skip

SIZE = 32


@pytest.fixture(scope="module")
def model():
    return from_torch(torch_nets.TinySeg(classes=3).eval(), input_size=(SIZE, SIZE), mean=MEAN, std=STD,
                      class_names=["a", "b", "c"])


def _region() -> np.ndarray:
    region = np.zeros((SIZE, SIZE), bool)
    region[8:20, 10:22] = True
    return region


def test_layers_are_module_paths_grouped_by_stage(model) -> None:
    summary = explainers.inspect_model(model)
    assert summary.num_classes == 3 and summary.input_size == (SIZE, SIZE) and summary.output_size == (SIZE, SIZE)
    names = [info.name for info in summary.layers]
    assert names[:4] == ["stem.0", "stem.1", "stem", "down.0"]
    assert "classifier" in names  # its logits are upsampled after it: still a feature map of the classes
    shapes = {info.name: info.output_shape for info in summary.layers}
    assert shapes["features.2"] == (None, SIZE // 2, SIZE // 2, 16)
    kinds = {info.name: info.kind for info in summary.layers}
    assert kinds["stem.0"] == "conv" and kinds["stem.1"] == "activation (ReLU)"
    assert kinds["features.1"] == "normalisation (BatchNorm2d)" and kinds["features"] == "block (Sequential)"
    stages = graph.layer_stages(model)
    assert [s.size for s in stages] == [(SIZE, SIZE), (SIZE // 2, SIZE // 2)]
    assert stages[1].label.startswith("stage 2 · 16×16 (1/2 of the input)")
    assert explainers.default_layer(model) == "features"  # the last map whose channels are not the classes
    assert model.class_names == ["a", "b", "c"]


def test_bad_layers_and_arguments_are_one_sentence(model) -> None:
    with pytest.raises(ExplainerError, match="no module named 'backbone.layer9'"):
        explainers.explain(model, torch_nets.image(SIZE), _region(), 0, "backbone.layer9")
    with pytest.raises(ExplainerError, match="3 class names were given but the model predicts 2"):
        from_torch(torch_nets.TinySeg(classes=2).eval(), input_size=(SIZE, SIZE), mean=MEAN, std=STD,
                   class_names=["a", "b", "c"])
    with pytest.raises(ExplainerError, match="std"):
        from_torch(torch_nets.TinySeg().eval(), input_size=(SIZE, SIZE), mean=MEAN, std=(0.2, 0, 0.2))

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("expects 224×224")

    with pytest.raises(ExplainerError, match=r"module failed on a 1×3×8×8 input \(ValueError: expects 224×224\)"):
        from_torch(Broken(), input_size=(8, 8), mean=MEAN, std=STD)
    with pytest.raises(ExplainerError, match="wrap it with explainers.from_torch"):
        explainers.inspect_model(torch_nets.TinySeg())
    with pytest.raises(ExplainerError, match="no module named 'nope'"):
        from_torch(torch_nets.TinySeg().eval(), input_size=(SIZE, SIZE), mean=MEAN, std=STD, layers=["nope"])
    only = from_torch(torch_nets.TinySeg().eval(), input_size=(SIZE, SIZE), mean=MEAN, std=STD,
                      layers=["down", "features"])
    assert [i.name for i in explainers.explainable_layers(only)] == ["down", "features"]


def test_every_registry_method_runs_on_a_torch_model(model) -> None:
    fast = {"xrai": {"steps": 4}, "scorecam": {"channels": 4}, "integrated-gradients": {"steps": 4},
            "guided-ig": {"steps": 4}, "blur-ig": {"steps": 4}, "smoothgrad": {"samples": 3},
            "rise": {"masks": 8}}
    out = explainers.explain(model, torch_nets.image(SIZE, 1), _region(), 1, "features", registry.ALL_METHODS,
                             options=fast)
    assert set(out) == set(registry.ALL_METHODS)
    for name, explanation in out.items():
        assert explanation.heatmap.shape == (SIZE, SIZE), name
        assert np.isfinite(explanation.heatmap).all() and explanation.heatmap.max() == pytest.approx(1.0), name


def test_predict_sweep_faithfulness_and_a_low_resolution_output() -> None:
    module = torch_nets.TinySeg(out="logits").eval()  # .logits at half the input size (Hugging Face style)
    model = from_torch(module, input_size=(SIZE, SIZE), mean=MEAN, std=STD)
    img = torch_nets.image(SIZE, 2)
    with torch.no_grad():
        logits = module(torch_nets.normalised(img)).logits[0].permute(1, 2, 0).numpy()
    prediction = explainers.predict(model, img)
    assert prediction.labels.shape == (SIZE, SIZE)
    np.testing.assert_allclose(prediction.logits[::2, ::2], logits, atol=1e-5)
    assert explainers.inspect_model(model).output_size == (SIZE // 2, SIZE // 2)
    sweep = explainers.layer_sweep(model, img, _region(), 1, ["stem", "features"], ("gradcam", "hirescam"))
    assert sweep["stem"]["gradcam"].layer_map.shape == (SIZE, SIZE)
    assert sweep["features"]["hirescam"].layer_map.shape == (SIZE // 2, SIZE // 2)
    maps = explainers.explain(model, img, _region(), 1, "features", ("gradcam", "hirescam"))
    results = faithfulness.evaluate_explanations(model, img, _region(), 1, maps, steps=4)
    assert set(results) == {"gradcam", "hirescam", "random"}
    score = faithfulness.region_score_function(model, _region(), 1, "logits")(img.astype(np.float32))
    grid = np.zeros((SIZE // 2, SIZE // 2), np.float32)
    grid[4:10, 5:11] = 1.0  # the region on the 16×16 grid (nearest at pixel centres)
    assert score[0] == pytest.approx(float((logits[..., 1] * grid).mean()), rel=1e-5)
    assert explainers.prepare_image(model, img) is True  # XRAI's segments only: nothing kept for torch


def test_token_outputs_map_onto_the_patch_grid() -> None:
    model = from_torch(torch_nets.TokenSeg().eval(), input_size=(SIZE, SIZE), mean=MEAN, std=STD)
    infos = {i.name: i for i in explainers.explainable_layers(model)}
    assert infos["mixer"].output_shape == (None, SIZE // 4, SIZE // 4, 12)
    assert infos["mixer"].kind.startswith("tokens of per-pixel dense (Linear) as 8×8")
    out = explainers.explain(model, torch_nets.image(SIZE), _region(), 0, "mixer", ("gradcam", "hirescam"))
    assert out["hirescam"].layer_map.shape == (SIZE // 4, SIZE // 4)
    assert out["gradcam"].heatmap.max() == pytest.approx(1.0)


def test_xrai_equals_pair_reference_usage_on_a_torch_call_model_function(model) -> None:
    img, region = torch_nets.image(SIZE, 6), _region()
    steps = 6
    ours = explainers.explain(model, img, region, 2, methods=("xrai",),
                              options={"xrai": {"steps": steps, "batch_size": 4}})["xrai"].heatmap
    module = model.module

    def call(x_batch, call_model_args=None, expected_keys=None):  # PAIR's documented call-model function
        x = torch.tensor(np.asarray(x_batch, np.float32)).permute(0, 3, 1, 2).requires_grad_(True)
        out = module((x / 255.0 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
        score = (out[:, 2] * torch.from_numpy(region.astype(np.float32))).mean(dim=(1, 2)).sum()
        (grad,) = torch.autograd.grad(score, x)
        return {saliency.INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).numpy()}

    reference = saliency.XRAI().GetMask(img.astype(np.float32), call, {},
                                        extra_parameters=saliency.XRAIParameters(steps=steps))
    reference = (reference - reference.min()) / (reference.max() - reference.min())
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert xrai.segments(img.astype(np.float32)) is not None


def test_explainers_and_keras_work_where_torch_cannot_be_imported() -> None:
    script = textwrap.dedent("""
        import importlib.abc, sys

        class NoTorch(importlib.abc.MetaPathFinder):  # as if torch were not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "torchvision"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoTorch())
        import numpy as np
        import explainers
        from tests.helpers_models import tiny_seg_model
        model = tiny_seg_model(16)
        image = np.full((16, 16, 3), 120, np.uint8)
        region = np.zeros((16, 16), bool); region[4:9, 4:9] = True
        out = explainers.explain(model, image, region, 1, methods=("gradcam", "hirescam"))
        assert out["gradcam"].heatmap.shape == (16, 16)
        try:
            explainers.from_torch(object(), input_size=(8, 8), mean=(0, 0, 0), std=(1, 1, 1))
        except explainers.ExplainerError as error:
            assert "PyTorch is not installed" in str(error), error
        else:
            raise AssertionError("from_torch without torch did not refuse")
        assert "torch" not in {m.split(".")[0] for m, v in sys.modules.items() if v is not None}
        print("keras-ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "keras-ok" in done.stdout


def test_tensorflow_first_then_torchvision_does_not_crash() -> None:
    """TensorFlow loaded, then torchvision's model builders (triton): crashed the process before torch_guard."""
    script = textwrap.dedent("""
        import tensorflow as tf
        tf.reduce_sum(tf.ones(3)).numpy()
        import explainers
        import torchvision
        net = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=2)
        print("built", type(net).__name__)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "built FCN" in done.stdout
