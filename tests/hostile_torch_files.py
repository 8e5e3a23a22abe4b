"""Hostile PyTorch model files, built on the fly in a test's folder.

Files whose code would run write the marker path they were built with; the tests assert it never appears.
Small seeded `torch.nn` nets only (nothing downloaded).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

from explainers import torch_files

torch_files.block_triton()  # before torch: triton's library crashes a process that has TensorFlow

import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402


class Marker:
    """Unpickling it touches `path` (what a hostile pickle does with os.system)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __reduce__(self):
        return (Path.touch, (self.path,))


class SmallSeg(torch.nn.Module):
    """A seeded 3-class segmentation net: conv stem, a block, a 1×1 classifier, upsampling to the input."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
        self.classifier = torch.nn.Conv2d(16, 3, 1)

    def forward(self, x):
        y = self.classifier(self.backbone(x))
        return torch.nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class Writes(torch.nn.Module):
    """A module whose forward would write a marker file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x):
        Path(self.path).touch()
        return self.conv(x)


def small_seg(seed: int = 0) -> SmallSeg:
    torch.manual_seed(seed)
    net = SmallSeg().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        net.backbone[3].running_mean.uniform_(-0.5, 0.5)
        net.backbone[3].running_var.uniform_(0.5, 1.5)
    return net


def export_onnx(net: torch.nn.Module, path: Path, size=(48, 64), opset: int = 17, dynamic: bool = True) -> Path:
    axes = {"input": {0: "batch"}, "out": {0: "batch"}} if dynamic else None
    torch.onnx.export(net, torch.zeros(1, 3, *size), str(path), dynamo=False, opset_version=opset,
                      input_names=["input"], output_names=["out"], dynamic_axes=axes)
    return path


def tiny_onnx(path: Path, opset: int = 17, domain: str = "", node_domain: str = "") -> Path:
    """A one-Conv ONNX graph written with onnx.helper (any opset, any domain)."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 3, 1, 1], [0.1] * 6)
    node = helper.make_node("Conv", ["input", "w"], ["out"], name="/conv/Conv", domain=node_domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 8, 8])], [weight])
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def external_data_onnx(net: torch.nn.Module, folder: Path) -> Path:
    """An ONNX file whose weights live in `model.onnx.data` beside it."""
    plain = export_onnx(net, folder / "plain.onnx")
    model = onnx.load(str(plain))
    target = folder / "model.onnx"
    onnx.save_model(model, str(target), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)
    return target


def pickle_pt(folder: Path, marker: Path, name: str = "model.pt") -> Path:
    path = folder / name
    torch.save({"model": Marker(marker)}, path)
    return path


def torchscript_pt(folder: Path, marker: Path, name: str = "scripted.pt") -> Path:
    path = folder / name
    # TorchScript cannot touch files; the archive's code/ member is what makes it a program
    torch.jit.save(torch.jit.trace(small_seg(), torch.zeros(1, 3, 16, 16)), str(path))
    return path


def export_pt2(folder: Path, marker: Path, name: str = "model.pt2") -> Path:
    path = folder / name
    program = torch.export.export(Writes(str(marker)), (torch.zeros(1, 3, 4, 4),))
    torch.export.save(program, str(path))
    return path


def zip_folder(files: dict[str, bytes | str], path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def segformer_folder(folder: Path, preprocessor: dict | None = None) -> dict[str, bytes]:
    """A tiny transformers SegFormer's `save_pretrained` files (random seeded weights)."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    config = SegformerConfig(num_labels=3, hidden_sizes=[8, 16, 16, 16], decoder_hidden_size=16, depths=[1, 1, 1, 1],
                             num_attention_heads=[1, 1, 1, 1], id2label={0: "sky", 1: "road", 2: "car"},
                             label2id={"sky": 0, "road": 1, "car": 2})
    model = SegformerForSemanticSegmentation(config).eval()
    model.save_pretrained(folder)
    files = {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")}
    if preprocessor is not None:
        files["preprocessor_config.json"] = json.dumps(preprocessor).encode()
    return files


def smp_folder(folder: Path) -> dict[str, bytes]:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(32, 16, 8), classes=2)
    model.save_pretrained(folder)
    return {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")}


def edit_json(files: dict[str, bytes], member: str, **changes) -> dict[str, bytes]:
    data = json.loads(files[member])
    data.update(changes)
    return {**files, member: json.dumps(data).encode()}


def pickled_bytes(marker: Path) -> bytes:
    buffer = io.BytesIO()
    pickle.dump(Marker(marker), buffer)
    return buffer.getvalue()


def exists(path: Path) -> bool:
    return os.path.exists(path)
