"""PyTorch model files: every refusal on a hostile file (no marker is ever written, no torch loader is
called), and the accepted routes give the original module's logits and Grad-CAM maps."""

from __future__ import annotations

import pickle

import hostile_torch_files as ht
import numpy as np
import pytest
import torch

from explainers import torch_files
from explainers.model_files import ModelFileError

torch.set_num_threads(1)


@pytest.fixture
def no_torch_loaders(monkeypatch):
    """torch's code-running loaders fail the test if anything reaches them."""
    calls = []

    def forbidden(name):
        def call(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called on an upload")
        return call

    monkeypatch.setattr(torch, "load", forbidden("torch.load"))
    monkeypatch.setattr(torch.jit, "load", forbidden("torch.jit.load"))
    monkeypatch.setattr(torch.export, "load", forbidden("torch.export.load"))
    return calls


def refused(path, name=None) -> str:
    with pytest.raises(ModelFileError) as caught:
        torch_files.load_torch_file(path, display_name=name)
    return str(caught.value)


def test_the_pickle_payload_is_live(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(ht.pickled_bytes(marker))
    assert marker.exists()  # what unpickling the files below would do


@pytest.mark.parametrize("upload", ["model.pt", "model.pth", "pytorch_model.bin", "MODEL.PT", "model.onnx", "model.zip"])
def test_pickles_are_refused_by_name_and_content(tmp_path, no_torch_loaders, upload):
    marker = tmp_path / "ran"
    path = ht.pickle_pt(tmp_path, marker, name="upload.bin")
    message = refused(path, upload)
    assert "pickle" in message and "torch.onnx.export" in message and "opset_version=17" in message
    assert not marker.exists() and not no_torch_loaders


@pytest.mark.parametrize("upload", ["scripted.pt", "scripted.zip", "scripted.onnx"])
def test_torchscript_is_refused(tmp_path, no_torch_loaders, upload):
    marker = tmp_path / "ran"
    path = ht.torchscript_pt(tmp_path, marker)
    message = refused(path, upload)
    assert "TorchScript" in message and "torch.onnx.export" in message
    assert not marker.exists() and not no_torch_loaders


@pytest.mark.parametrize("upload", ["model.pt2", "model.zip"])
def test_torch_export_programs_are_refused(tmp_path, no_torch_loaders, upload):
    marker = tmp_path / "ran"
    path = ht.export_pt2(tmp_path, marker)
    marker.unlink(missing_ok=True)  # exporting traced the forward once
    message = refused(path, upload)
    assert "torch.export" in message and "runs code" in message and "torch.onnx.export" in message
    assert not marker.exists() and not no_torch_loaders


def test_a_bare_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    assert "save_pretrained" in refused(path)


def test_onnx_custom_domains_are_refused(tmp_path, no_torch_loaders):
    path = ht.tiny_onnx(tmp_path / "custom.onnx", domain="com.evil", node_domain="com.evil")
    assert "custom domain 'com.evil'" in refused(path)
    path = ht.tiny_onnx(tmp_path / "node.onnx", node_domain="com.evil")  # a node's domain without an opset entry
    assert "com.evil" in refused(path)


def test_onnx_opset_18_names_the_export_to_use(tmp_path):
    path = ht.tiny_onnx(tmp_path / "new.onnx", opset=18)
    message = refused(path)
    assert "opset 18" in message and "dynamo=False, opset_version=17" in message


def test_onnx_external_data_is_refused(tmp_path):
    path = ht.external_data_onnx(ht.small_seg(), tmp_path)
    assert (tmp_path / "model.onnx.data").exists()  # beside it, and still never read
    assert "external data" in refused(path)


def test_damaged_onnx_is_refused(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 50)
    assert "not a readable ONNX model" in refused(path)


def test_onnx_limits(tmp_path, monkeypatch):
    path = ht.tiny_onnx(tmp_path / "tiny.onnx")
    monkeypatch.setenv("SEGEXPLAIN_MAX_ONNX_BYTES", "10")
    assert "SEGEXPLAIN_MAX_ONNX_BYTES" in refused(path)
    monkeypatch.delenv("SEGEXPLAIN_MAX_ONNX_BYTES")
    monkeypatch.setenv("SEGEXPLAIN_MAX_PARAMETERS", "5")
    assert "SEGEXPLAIN_MAX_PARAMETERS" in refused(path)


def _grad_cam(module, layer: str, x: torch.Tensor, class_index: int, region: torch.Tensor) -> np.ndarray:
    """Grad-CAM of the region-sum score at `layer`, with hooks (independent of the engine). Like the engine,
    it differentiates to the activations with an input that does not require gradients, so the loaded
    module's parameters must keep requiring them (a frozen module gives no gradient to its activations)."""
    kept = {}
    handle = module.get_submodule(layer).register_forward_hook(lambda _m, _i, out: kept.update(a=out))
    try:
        logits = torch_files._logits(module(x))
        activation = kept["a"]
        score = (logits[:, class_index] * region).sum()
        (grad,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * activation).sum(1))[0].detach().numpy()
    return cam / cam.max()


@pytest.mark.parametrize("dynamic", [True, False])
def test_onnx_route_gives_the_original_logits_and_maps(tmp_path, dynamic):
    net = ht.small_seg()
    path = ht.export_onnx(net, tmp_path / "net.onnx", dynamic=dynamic)
    loaded = torch_files.load_torch_file(path)
    assert loaded.kind == "onnx" and loaded.input_size == (48, 64)
    names = dict(loaded.module.named_modules())
    assert {"backbone.0", "backbone.1", "backbone.2", "backbone.4", "classifier"} <= set(names)  # the original module paths
    assert loaded.layer_names["backbone.4"] == "/backbone/backbone.4/Relu"
    x = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(1)) * 4 - 2
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x), atol=1e-4)
    region = torch.zeros(48, 64)
    region[10:30, 20:50] = 1
    # (not "backbone.2": the exporter folds the batch norm into that conv, so its output is conv + BN)
    for layer in ("backbone.1", "backbone.4"):
        ours = _grad_cam(loaded.module, layer, x[:1], 1, region)
        original = _grad_cam(net, layer, x[:1], 1, region)
        assert np.abs(ours - original).max() < 1e-4


def test_hostile_node_names_reach_generated_code_as_plain_names(tmp_path):
    marker = tmp_path / "ran"
    path = ht.export_onnx(ht.small_seg(), tmp_path / "net.onnx")
    model = ht.onnx.load(str(path))
    for node in model.graph.node:
        node.name = f'/x"); open({str(marker)!r}, "w"); ("/{node.name}'
    path.write_bytes(model.SerializeToString())
    loaded = torch_files.load_torch_file(path)
    assert all(set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
               for name, _ in loaded.module.named_modules())
    loaded.module(torch.zeros(1, 3, 48, 64))
    assert not marker.exists()


def test_transformers_folder_gives_the_original_logits_and_its_preprocessing(tmp_path):
    from transformers import SegformerForSemanticSegmentation

    preprocessor = {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3], "do_rescale": True,
                    "rescale_factor": 1 / 255, "do_normalize": True, "size": {"height": 64, "width": 96}}
    files = ht.segformer_folder(tmp_path / "seg", preprocessor)
    path = ht.zip_folder({f"seg/{k}": v for k, v in files.items()}, tmp_path / "seg.zip")
    loaded = torch_files.load_torch_file(path)
    assert loaded.kind == "transformers" and loaded.class_names == ["sky", "road", "car"]
    assert loaded.input_size == (64, 96) and loaded.mean == pytest.approx((0.5, 0.4, 0.3))
    force = torch_files.resolve_preprocessing(loaded, mean=(0, 0, 0), std=(1, 1, 1))
    assert force.mean == pytest.approx((0.5, 0.4, 0.3)) and force.sources["mean"] == "preprocessor_config.json"
    original = SegformerForSemanticSegmentation.from_pretrained(tmp_path / "seg").eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x).logits, original(x).logits, atol=1e-5)


def test_smp_folder_gives_the_original_logits(tmp_path):
    import segmentation_models_pytorch as smp

    files = ht.smp_folder(tmp_path / "unet")
    loaded = torch_files.load_torch_file(ht.zip_folder(files, tmp_path / "unet.zip"))
    assert loaded.kind == "smp" and loaded.mean is None
    given = torch_files.resolve_preprocessing(loaded, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5), input_size=(64, 64))
    assert given.mean == (0.1, 0.2, 0.3) and given.sources["mean"] == "your setting"
    original = smp.Unet.from_pretrained(str(tmp_path / "unet")).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), original(x), atol=1e-5)


@pytest.mark.parametrize(("change", "expected"), [
    ({"auto_map": {"AutoModel": "modeling_evil.Evil"}}, "auto_map"),
    ({"trust_remote_code": True}, "trust_remote_code"),
    ({"architectures": ["SegformerForImageClassification"]}, "not one of the semantic-segmentation classes"),
    ({"model_type": "bert", "architectures": ["BertModel"]}, "not one of the semantic-segmentation classes"),
    ({"use_pretrained_backbone": True, "backbone": "microsoft/resnet-50"}, "download a pretrained backbone"),
])
def test_transformers_configs_that_ask_for_code_or_other_classes_are_refused(tmp_path, change, expected):
    files = ht.edit_json(ht.segformer_folder(tmp_path / "seg"), "config.json", **change)
    assert expected in refused(ht.zip_folder(files, tmp_path / "seg.zip"))


def test_pickled_weights_and_code_in_a_folder_are_refused(tmp_path, no_torch_loaders):
    marker = tmp_path / "ran"
    files = ht.segformer_folder(tmp_path / "seg")
    weights = {"config.json": files["config.json"], "pytorch_model.bin": ht.pickled_bytes(marker)}
    assert "pytorch_model.bin" in refused(ht.zip_folder(weights, tmp_path / "bin.zip"))
    code = {**files, "modeling_evil.py": b"open('x', 'w')"}
    assert "contains code" in refused(ht.zip_folder(code, tmp_path / "code.zip"))
    assert not marker.exists() and not no_torch_loaders


def test_smp_class_off_the_allowlist_and_weights_that_do_not_fit_are_refused(tmp_path):
    files = ht.smp_folder(tmp_path / "unet")
    other = ht.edit_json(files, "config.json", _model_class="Evil")
    assert "not one of the segmentation classes" in refused(ht.zip_folder(other, tmp_path / "evil.zip"))
    bigger = ht.edit_json(files, "config.json", classes=5)
    assert "do not fit its config" in refused(ht.zip_folder(bigger, tmp_path / "bigger.zip"))


def test_import_explainers_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, explainers, explainers.torch_files; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("False")
