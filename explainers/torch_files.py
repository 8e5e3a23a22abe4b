"""PyTorch model files that cannot run code: ONNX graphs and `save_pretrained` folders, checked before use.

An uploaded PyTorch file is hostile until proven otherwise, and most PyTorch formats are programs:
`torch.save` files are pickles, TorchScript archives hold code, and `torch.export.load` runs code from a
`.pt2` four ways. Those are refused by their name and by their content, with a sentence naming what to
export instead, before any PyTorch function sees them. Accepted:

- `.onnx`: one protobuf file. Its wire format is walked first (size, opsets, operator domains, node
  count, no external data, no model-local functions), then `onnx.load` without external data, the ONNX
  checker, the same checks on every (sub)graph, and onnx2torch turns it into a `torch.fx.GraphModule`
  whose submodules are renamed after the exporter's scopes (`/backbone/layer4/layer4.0/conv1/Conv` →
  `backbone.layer4.0.conv1`). Names only ever reach generated code as `[A-Za-z0-9_]` segments.
- `.zip` of a Hugging Face transformers folder (`config.json`, `model.safetensors`, optional
  `preprocessor_config.json`) for an allowlist of semantic-segmentation classes, or of a
  segmentation-models-pytorch `save_pretrained` folder. The zip is gatekept as in `model_files`, the
  config is scanned (no `auto_map`, no remote code, no hub downloads), the class is built from the
  config on the meta device (parameter limit before any allocation), the safetensors header is checked
  against it, and only then are the tensors read.

torch, onnx, onnx2torch, transformers and segmentation-models-pytorch are imported inside functions:
`import explainers` works without them. `block_triton()` keeps triton out of the process (triton's
library crashes a process that has loaded TensorFlow, whichever came first).
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import mmap
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

from explainers.model_files import (
    Limits,
    ModelFileError,
    _bytes,
    _mega,
    _read_member,
    _walk,
    _zip_member_count,
)

ONNX_SUFFIX = ".onnx"
ZIP_SUFFIX = ".zip"
TORCH_SUFFIXES = (ONNX_SUFFIX, ZIP_SUFFIX)
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")
EXPORT_SUFFIXES = (".pt2",)
REFUSED_SUFFIXES = PICKLE_SUFFIXES + EXPORT_SUFFIXES + (".safetensors", ".torchscript", ".ptl", ".jit")
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = (512, 512)

ONNX_EXPORT = ("torch.onnx.export(model, torch.randn(1, 3, H, W), 'model.onnx', dynamo=False, opset_version=17, "
               "input_names=['input'], output_names=['out'], dynamic_axes={'input': {0: 'batch'}})")
ZIP_EXPORT = "`model.save_pretrained('folder')` and zip the folder"
EXPORT_HINT = f"export it to ONNX with `{ONNX_EXPORT}`, or for a transformers / smp model upload {ZIP_EXPORT}"

# transformers semantic-segmentation heads, by config `model_type` (explicit: a new class is added here on purpose)
TRANSFORMERS_CLASSES = {
    "segformer": "SegformerForSemanticSegmentation",
    "upernet": "UperNetForSemanticSegmentation",
    "dpt": "DPTForSemanticSegmentation",
    "beit": "BeitForSemanticSegmentation",
    "data2vec-vision": "Data2VecVisionForSemanticSegmentation",
    "mobilevit": "MobileViTForSemanticSegmentation",
    "mobilevitv2": "MobileViTV2ForSemanticSegmentation",
    "mobilenet_v2": "MobileNetV2ForSemanticSegmentation",
}
SMP_CLASSES = ("Unet", "UnetPlusPlus", "MAnet", "Linknet", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus", "PAN",
               "UPerNet", "Segformer", "DPT")
FOLDER_FILES = frozenset({"config.json", "model.safetensors", "preprocessor_config.json", "README.md",
                          ".gitattributes"})
# config keys that make transformers fetch or run something that is not in the folder
HF_CODE_KEYS = ("auto_map", "trust_remote_code", "custom_pipelines")
SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                      "BOOL": 1}


@dataclass(frozen=True)
class TorchLimits:
    """Bounds of the PyTorch routes beside `model_files.Limits` (parameters, input pixels, config and
    archive sizes come from there). Each field can be set by the environment variable in `TORCH_ENV`."""

    onnx_bytes: int = 1_000_000_000  # an .onnx file (protobuf cannot hold more than 2 GB anyway)
    onnx_nodes: int = 20_000  # nodes of all (sub)graphs (DeepLabV3-ResNet101: ~400)
    onnx_opset: int = 17  # newest default-domain opset onnx2torch 1.5.15 converts

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TorchLimits:
        environ = os.environ if environ is None else environ
        values = {}
        for item in fields(cls):
            text = environ.get(TORCH_ENV[item.name])
            if text is None or not text.strip():
                continue
            try:
                value = int(float(text))
            except ValueError:
                raise ModelFileError(f"{TORCH_ENV[item.name]}={text!r} is not a number: set it to a positive "
                                     "integer.") from None
            if value <= 0:
                raise ModelFileError(f"{TORCH_ENV[item.name]}={text!r} must be positive: set it to a positive "
                                     "integer.")
            values[item.name] = value
        return cls(**values)


TORCH_ENV = {
    "onnx_bytes": "SEGEXPLAIN_MAX_ONNX_BYTES",
    "onnx_nodes": "SEGEXPLAIN_MAX_ONNX_NODES",
    "onnx_opset": "SEGEXPLAIN_MAX_ONNX_OPSET",
}


@dataclass
class TorchModelFile:
    """A loaded PyTorch model file: the module (eval mode, float32, CPU) and what the file says about
    its input. `sources` says where each of mean, std, input size and class names came from; `layer_names`
    maps renamed module paths to the file's own names (ONNX node names); `notes` are lines for people."""

    module: Any
    kind: str  # "onnx" | "transformers" | "smp"
    name: str
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    class_names: list[str] | None = None
    layer_names: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Preprocessing:
    """The mean, std (0–1 scale) and input size in force, and where each came from."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int]
    sources: dict[str, str]

    def describe(self) -> str:
        mean = ", ".join(f"{v:.3f}" for v in self.mean)
        std = ", ".join(f"{v:.3f}" for v in self.std)
        return (f"mean ({mean}) from {self.sources['mean']}; std ({std}) from {self.sources['std']}; "
                f"input {self.input_size[1]}×{self.input_size[0]} px from {self.sources['input_size']}")


def resolve_preprocessing(loaded: TorchModelFile, mean: Sequence[float] | None = None,
                          std: Sequence[float] | None = None,
                          input_size: Sequence[int] | None = None) -> Preprocessing:
    """The file's mean, std and input size when it has them, else the given ones (sidebar, `--mean`),
    else ImageNet's mean and std and a 512×512 input."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    defaults = {"mean": (IMAGENET_MEAN, "ImageNet defaults (not in the file)"),
                "std": (IMAGENET_STD, "ImageNet defaults (not in the file)"),
                "input_size": (DEFAULT_INPUT_SIZE, "the default (not in the file)")}
    for key, given in (("mean", mean), ("std", std), ("input_size", input_size)):
        own = getattr(loaded, key)
        if own is not None:
            values[key], sources[key] = tuple(own), loaded.sources.get(key, "the file")
        elif given is not None:
            values[key], sources[key] = tuple(given), "your setting"
        else:
            values[key], sources[key] = defaults[key]
    return Preprocessing(values["mean"], values["std"], values["input_size"], sources)


def parse_triple(text: str, option: str) -> tuple[float, float, float]:
    """`"0.485,0.456,0.406"` → a tuple of three finite floats (0–1 scale); ModelFileError otherwise."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ModelFileError(f"{option} {text!r}: give three numbers R,G,B on the 0–1 scale, e.g. 0.485,0.456,0.406.")
    if option.endswith("std") and min(values) <= 0:
        raise ModelFileError(f"{option} {text!r}: every std must be above 0.")
    return values  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Importing torch


def block_triton() -> None:
    """Keep triton out of this process: loading its library after TensorFlow (or TensorFlow after it)
    crashed the process here, and CPU explanations never compile kernels. torch then reports no triton."""
    if "triton" not in sys.modules:
        sys.modules["triton"] = None  # type: ignore[assignment]  # `import triton` raises ImportError


def _torch():
    block_triton()
    try:
        import torch
    except ImportError:
        raise ModelFileError("PyTorch model files need the optional package torch: `pip install torch`.") from None
    return torch


def _require(package: str, pip_name: str):
    block_triton()
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ModelFileError(f"This model file needs the optional package {pip_name}: `pip install {pip_name}`."
                             ) from None


# ---------------------------------------------------------------------------------------------
# File kinds


def torch_suffix(name: str) -> str | None:
    """The PyTorch kind of a file name (accepted or refused), case-insensitively; None for other files."""
    lowered = Path(name).name.lower()
    for suffix in TORCH_SUFFIXES + REFUSED_SUFFIXES:
        if lowered.endswith(suffix):
            return suffix
    return None


def refusal(name: str, kind: str) -> ModelFileError:
    """The sentence for a file kind segexplain never opens, naming what to upload instead."""
    if kind == "pt2":
        what = ("is a torch.export program (.pt2); loading one runs code from the file, so segexplain never "
                "opens it")
    elif kind == "torchscript":
        what = "is a TorchScript archive, which holds code, so segexplain never opens it"
    elif kind == "safetensors":
        what = "holds weights only, without the architecture"
        return ModelFileError(f"'{name}' {what}: upload the whole `save_pretrained` folder as a .zip "
                              "(config.json with model.safetensors).")
    else:
        what = "is a PyTorch pickle (torch.save); unpickling can run code, so segexplain never opens it"
    return ModelFileError(f"'{name}' {what}: {EXPORT_HINT}.")


def _zip_kind(names: Sequence[str]) -> str | None:
    """'pt2', 'torchscript' or 'pickle' for PyTorch's own zip formats, from member names only."""
    bases = [PurePosixPath(n).name for n in names]
    if "archive_format" in bases or any("/models/" in f"/{n}" and n.endswith(".json") for n in names) \
            or any(b.startswith("serialized_") for b in bases):
        return "pt2"
    if any(n.startswith("code/") or "/code/" in n for n in names) or "constants.pkl" in bases:
        return "torchscript"
    if "data.pkl" in bases or any(b.endswith((".pkl", ".pickle")) for b in bases):
        return "pickle"
    return None


def load_torch_file(path: str | Path, display_name: str | None = None, limits: Limits | None = None,
                    torch_limits: TorchLimits | None = None) -> TorchModelFile:
    """Load an `.onnx` file or a `save_pretrained` folder zip as a torch module, never running code from it.

    Raises `ModelFileError` with one sentence for every refusal (pickles, TorchScript, `.pt2`, custom ONNX
    domains, external data, opsets onnx2torch cannot convert, limits, classes off the allowlist, configs
    asking for remote code or downloads, pickled weights, damage)."""
    path = Path(path)
    name = display_name or path.name
    limits = limits or Limits.from_env()
    torch_limits = torch_limits or TorchLimits.from_env()
    if not path.is_file():
        raise ModelFileError(f"There is no model file named '{name}': choose an .onnx file or a .zip folder.")
    suffix = torch_suffix(name) or torch_suffix(path.name)
    if suffix in PICKLE_SUFFIXES + (".torchscript", ".ptl", ".jit"):
        kind = _sniff_zip(path) or "pickle"
        raise refusal(name, "pickle" if kind == "pickle" else kind)
    if suffix in EXPORT_SUFFIXES:
        raise refusal(name, "pt2")
    if suffix == ".safetensors":
        raise refusal(name, "safetensors")
    if suffix == ONNX_SUFFIX:
        if zipfile.is_zipfile(path):
            raise refusal(name, _sniff_zip(path) or "pickle")
        return load_onnx(path, name, limits, torch_limits)
    if suffix == ZIP_SUFFIX:
        return load_folder_zip(path, name, limits)
    raise ModelFileError(f"'{name}' is not a PyTorch model file segexplain reads: upload an .onnx file or a "
                         f"`save_pretrained` folder as a .zip.")


def _sniff_zip(path: Path) -> str | None:
    try:
        count = _zip_member_count(path)
        if count is None or count > 100_000 or not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            return _zip_kind(archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# ONNX: the protobuf wire format, walked before onnx.load


class _WireError(Exception):
    pass


class _Wire:
    """Reads protobuf fields (tag, wire type, value or span) from a buffer without decoding messages."""

    def __init__(self, buffer, budget: int = 20_000_000) -> None:
        self.buffer = buffer
        self.budget = budget

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            if pos >= end or shift > 63:
                raise _WireError("truncated varint")
            byte = self.buffer[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, pos
            shift += 7

    def fields(self, start: int, end: int):
        pos = start
        while pos < end:
            self.budget -= 1
            if self.budget < 0:
                raise _WireError("too many fields")
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _WireError("field 0")
            if wire == 0:
                value, pos = self.varint(pos, end)
                yield number, wire, value
            elif wire == 1:
                pos += 8
                yield number, wire, None
            elif wire == 2:
                length, pos = self.varint(pos, end)
                if pos + length > end:
                    raise _WireError("length past the end")
                yield number, wire, (pos, pos + length)
                pos += length
            elif wire == 5:
                pos += 4
                yield number, wire, None
            else:
                raise _WireError("unsupported wire type")
        if pos != end:
            raise _WireError("field past the end")

    def text(self, span: tuple[int, int]) -> str:
        return bytes(self.buffer[span[0]:span[1]]).decode("utf-8", errors="replace")


def _onnx_damaged(name: str) -> ModelFileError:
    return ModelFileError(f"'{name}' is not a readable ONNX model (damaged or another format): export it again "
                          f"with `{ONNX_EXPORT}`.")


def _domain_error(name: str, domain: str) -> ModelFileError:
    return ModelFileError(f"'{name}' uses operators of the custom domain {domain!r}, which segexplain cannot convert: "
                          f"export the model with standard ONNX operators only (`{ONNX_EXPORT}`).")


def _external_error(name: str) -> ModelFileError:
    return ModelFileError(f"'{name}' keeps its weights in a separate file (ONNX external data), which segexplain "
                          "never reads: export it as one file (with `dynamo=False`, or `external_data=False` for "
                          "the newer exporter).")


def _opset_error(name: str, opset: int, limit: int) -> ModelFileError:
    return ModelFileError(f"'{name}' uses ONNX opset {opset}; onnx2torch converts opsets up to {limit} "
                          f"(set {TORCH_ENV['onnx_opset']} to change the limit): export it with `{ONNX_EXPORT}`.")


def check_onnx_wire(path: Path, name: str, torch_limits: TorchLimits) -> dict[str, int]:
    """Size, structure, opsets, domains, node count and external data from the protobuf bytes alone.
    Returns the opset per domain."""
    size = path.stat().st_size
    if size > torch_limits.onnx_bytes:
        raise ModelFileError(f"'{name}' is {_bytes(size)}, above the {_bytes(torch_limits.onnx_bytes)} ONNX file "
                             f"limit (set {TORCH_ENV['onnx_bytes']} to change it).")
    if size == 0:
        raise _onnx_damaged(name)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        wire = _Wire(buffer)
        try:
            return _walk_model(wire, size, name, torch_limits)
        except _WireError:
            raise _onnx_damaged(name) from None


def _walk_model(wire: _Wire, size: int, name: str, torch_limits: TorchLimits) -> dict[str, int]:
    opsets: dict[str, int] = {}
    graphs = []
    for number, kind, value in wire.fields(0, size):
        if number == 8 and kind == 2:  # opset_import
            domain, version = "", 0
            for sub, sub_kind, sub_value in wire.fields(*value):
                if sub == 1 and sub_kind == 2:
                    domain = wire.text(sub_value)
                elif sub == 2 and sub_kind == 0:
                    version = sub_value
            opsets[domain] = version
        elif number == 7 and kind == 2:
            graphs.append(value)
        elif number == 25:
            raise ModelFileError(f"'{name}' defines ONNX functions of its own, which segexplain does not convert: "
                                 f"export the model with standard ONNX operators only (`{ONNX_EXPORT}`).")
        elif number == 20:
            raise ModelFileError(f"'{name}' holds ONNX training information, which segexplain does not read: export "
                                 f"the model for inference (`{ONNX_EXPORT}`).")
        elif number in (1, 2, 3, 4, 5, 6, 7, 8, 14) and kind not in (0, 2):
            raise _WireError("wrong wire type")
    if len(graphs) != 1 or not opsets:
        raise _WireError("no graph")
    for domain in opsets:
        if domain not in STANDARD_DOMAINS:
            raise _domain_error(name, domain)
    _check_opset(opsets, name, torch_limits)
    nodes = 0
    for number, kind, value in wire.fields(*graphs[0]):
        if number == 1 and kind == 2:  # node
            nodes += 1
            if nodes > torch_limits.onnx_nodes:
                raise _nodes_error(name, nodes, torch_limits)
            for sub, sub_kind, sub_value in wire.fields(*value):
                if sub == 7 and sub_kind == 2 and wire.text(sub_value) not in STANDARD_DOMAINS:
                    raise _domain_error(name, wire.text(sub_value))
        elif number == 5 and kind == 2:  # initializer (TensorProto)
            for sub, sub_kind, sub_value in wire.fields(*value):
                if sub == 13 or (sub == 14 and sub_kind == 0 and sub_value == 1):
                    raise _external_error(name)
        elif number == 15:  # sparse_initializer
            raise ModelFileError(f"'{name}' holds sparse initializers, which segexplain does not convert: export it "
                                 f"again with `{ONNX_EXPORT}`.")
    return opsets


def _check_opset(opsets: Mapping[str, int], name: str, torch_limits: TorchLimits) -> None:
    opset = opsets.get("", opsets.get("ai.onnx", 0))
    if opset > torch_limits.onnx_opset:
        raise _opset_error(name, opset, torch_limits.onnx_opset)
    if opset < 9:
        raise ModelFileError(f"'{name}' uses ONNX opset {opset or 'none'}; segexplain converts opsets 9 to "
                             f"{torch_limits.onnx_opset}: export it again with `{ONNX_EXPORT}`.")


def _nodes_error(name: str, nodes: int, torch_limits: TorchLimits) -> ModelFileError:
    return ModelFileError(f"'{name}' has more than {torch_limits.onnx_nodes:,} nodes, above the node limit (set "
                          f"{TORCH_ENV['onnx_nodes']} to change it).")


# ---------------------------------------------------------------------------------------------
# ONNX: the parsed model


def _all_nodes(graph, depth: int = 0):
    if depth > 20:
        raise ValueError("subgraphs nested too deeply")
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _all_nodes(attribute.g, depth + 1)
            for sub in attribute.graphs:
                yield from _all_nodes(sub, depth + 1)


def _all_graphs(graph, depth: int = 0):
    if depth > 20:
        raise ValueError("subgraphs nested too deeply")
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _all_graphs(attribute.g, depth + 1)
            for sub in attribute.graphs:
                yield from _all_graphs(sub, depth + 1)


def load_onnx(path: Path, name: str, limits: Limits, torch_limits: TorchLimits) -> TorchModelFile:
    """An `.onnx` file as a torch module (see the module docstring for the order of the checks)."""
    check_onnx_wire(path, name, torch_limits)
    onnx = _require("onnx", "onnx")
    torch = _torch()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends
        raise _onnx_damaged(name) from None
    _check_parsed(model, name, limits, torch_limits)
    try:
        onnx.checker.check_model(model)
    except Exception as error:  # onnx.checker.ValidationError
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"'{name}' is not a valid ONNX model ({first}): export it again with "
                             f"`{ONNX_EXPORT}`.") from None
    merge_identities(model)
    input_size, batch_fixed = _onnx_input(model, name, limits)
    notes = _keep_one_output(model, name)
    originals = name_nodes(model)
    onnx2torch = _require("onnx2torch", "onnx2torch")
    try:
        module = onnx2torch.convert(model)
    except NotImplementedError as error:
        raise ModelFileError(f"'{name}' uses an operator onnx2torch cannot convert ({_first_line(error)}): export the "
                             f"model again with `{ONNX_EXPORT}`, or upload it as a `save_pretrained` .zip.") from None
    except Exception as error:
        raise ModelFileError(f"'{name}' could not be converted to PyTorch ({type(error).__name__}: "
                             f"{_first_line(error)}): export it again with `{ONNX_EXPORT}`.") from None
    module, layer_names = readable_module_names(module, originals)
    module.eval()
    loaded = TorchModelFile(module=module, kind="onnx", name=name, input_size=input_size, layer_names=layer_names,
                            notes=notes)
    if input_size:
        loaded.sources["input_size"] = "the ONNX graph's input shape"
    _probe_batch(loaded, torch, batch_fixed)
    return loaded


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _check_parsed(model, name: str, limits: Limits, torch_limits: TorchLimits) -> None:
    """The wire checks again on the parsed model, subgraphs included, and the parameter count."""
    if len(model.functions):
        raise ModelFileError(f"'{name}' defines ONNX functions of its own, which segexplain does not convert: export "
                             f"the model with standard ONNX operators only (`{ONNX_EXPORT}`).")
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    for domain in opsets:
        if domain not in STANDARD_DOMAINS:
            raise _domain_error(name, domain)
    _check_opset(opsets, name, torch_limits)
    try:
        nodes = list(_all_nodes(model.graph))
        graphs = list(_all_graphs(model.graph))
    except (ValueError, RecursionError):
        raise _onnx_damaged(name) from None
    if len(nodes) > torch_limits.onnx_nodes:
        raise _nodes_error(name, len(nodes), torch_limits)
    for node in nodes:
        if node.domain not in STANDARD_DOMAINS:
            raise _domain_error(name, node.domain)
    parameters = 0
    for graph in graphs:
        if len(graph.sparse_initializer):
            raise ModelFileError(f"'{name}' holds sparse initializers, which segexplain does not convert: export it "
                                 f"again with `{ONNX_EXPORT}`.")
        for tensor in graph.initializer:
            if tensor.data_location == 1 or len(tensor.external_data):
                raise _external_error(name)
            parameters += math.prod(tensor.dims) if len(tensor.dims) else 1
    if parameters > limits.parameters:
        raise ModelFileError(f"'{name}' declares {_mega(parameters)} parameters, above the {_mega(limits.parameters)} "
                             "parameter limit (set SEGEXPLAIN_MAX_PARAMETERS to change it).")


def merge_identities(model) -> int:
    """Drop Identity nodes that only rename an initializer (the TorchScript exporter writes them for
    deduplicated weights; onnx2torch expects a Conv's weights to be initializers) and point their
    readers at the initializer itself. Returns how many were merged."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    outputs = {value.name for value in model.graph.output}
    renamed: dict[str, str] = {}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and len(node.input) == 1 \
                and node.input[0] in initializers and node.output[0] not in outputs:
            renamed[node.output[0]] = node.input[0]
        else:
            kept.append(node)
    if not renamed:
        return 0
    for graph in _all_graphs(model.graph):
        for node in graph.node:
            for index, value in enumerate(node.input):
                if value in renamed:
                    node.input[index] = renamed[value]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return len(renamed)


def _onnx_input(model, name: str, limits: Limits) -> tuple[tuple[int, int] | None, bool]:
    """(static input size or None, batch dimension fixed) of the one image input, NCHW with 3 channels."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise ModelFileError(f"'{name}' has {len(inputs)} inputs; segexplain explains models with one image input: "
                             f"export it with one input (`{ONNX_EXPORT}`).")
    tensor_type = inputs[0].type.tensor_type
    dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim]
    if tensor_type.elem_type != 1 or len(dims) != 4 or dims[1] != 3:
        shown = "×".join("?" if d is None else str(d) for d in dims) or "unknown"
        raise ModelFileError(f"'{name}' takes a {shown} input; segexplain needs one float image batch shaped "
                             "N×3×H×W (NCHW): export it with such an input.")
    height, width = dims[2], dims[3]
    if height and width and height * width > limits.input_pixels:
        raise ModelFileError(f"'{name}' takes {width}×{height} pixel inputs ({height * width / 1e6:.3g} MP), above the "
                             f"{limits.input_pixels / 1e6:.3g} MP input limit (set SEGEXPLAIN_MAX_INPUT_PIXELS to "
                             "change it).")
    size = (height, width) if height and width else None
    return size, dims[0] is not None


def _keep_one_output(model, name: str) -> list[str]:
    """A graph with several outputs keeps the one named 'out' (torchvision's aux heads are dropped)."""
    outputs = list(model.graph.output)
    if len(outputs) == 1:
        return []
    named = [value for value in outputs if value.name == "out"]
    if not named:
        shown = ", ".join(repr(value.name) for value in outputs[:4])
        raise ModelFileError(f"'{name}' has {len(outputs)} outputs ({shown}); segexplain needs one (the logits, or "
                             f"one named 'out'): export it with `output_names=['out']` and one output.")
    del model.graph.output[:]
    model.graph.output.extend(named)
    return [f"The file has {len(outputs)} outputs; the one named 'out' is explained."]


_SEGMENT = re.compile(r"[^A-Za-z0-9_]")


def _scope_path(node_name: str) -> tuple[list[str], str]:
    """`/backbone/layer4/layer4.0/conv1/Conv` → (['backbone', 'layer4', '0', 'conv1'], 'Conv'): the
    TorchScript exporter's scopes are module names relative to the scope above."""
    parts = [part for part in node_name.split("/") if part]
    if not parts:
        return [], "node"
    scopes, op = parts[:-1], parts[-1]
    path: list[str] = []
    previous = None
    for scope in scopes:
        if previous and scope.startswith(previous + "."):
            path.extend(scope[len(previous) + 1:].split("."))
        else:
            path.extend(scope.split("."))
        previous = scope
    return [segment for segment in path if segment], op


def _clean(segment: str, reserved: frozenset[str]) -> str:
    segment = _SEGMENT.sub("_", segment)[:64] or "node"
    if segment in reserved or segment.startswith("__"):
        segment = f"m_{segment}"
    return segment


def name_nodes(model) -> dict[str, str]:
    """Give every top-level node a plain unique name (`n0`, `n1`, ...) before conversion, so onnx2torch's
    module names are ours; returns {plain name: the file's node name}."""
    originals = {}
    for index, node in enumerate(model.graph.node):
        plain = f"n{index}"
        originals[plain] = node.name or node.op_type
        node.name = plain
    return originals


def readable_module_names(module, originals: Mapping[str, str]):
    """Rename onnx2torch's submodules after the exporter's scopes (`/backbone/layer4/layer4.0/conv1/Conv`
    → `backbone.layer4.0.conv1`), nested, so module paths read as in the original network. A scope with
    one node and no inner scopes is named by the scope; otherwise scope + the node's own last name part
    (`backbone.layer1.0.Add`); clashes get `_2`, `_3`. Only `[A-Za-z0-9_]` segments reach FX's generated
    code. Returns (module, {new path: the file's node name})."""
    torch = _torch()
    graph = module.graph
    calls = [node for node in graph.nodes if node.op == "call_module"]
    reserved = frozenset(dir(torch.fx.GraphModule) + dir(torch.nn.Module) + ["initializers"])
    parsed = {}
    per_scope: dict[tuple[str, ...], int] = {}
    for node in calls:
        original = originals.get(str(node.target), str(node.target))
        scopes, op = _scope_path(original)
        scopes = [_clean(segment, reserved) for segment in scopes]
        parsed[node] = (scopes, _clean(op, reserved), original)
        per_scope[tuple(scopes)] = per_scope.get(tuple(scopes), 0) + 1
    prefixes = {tuple(scopes[:i]) for scopes, _, _ in parsed.values() for i in range(1, len(scopes) + 1)}
    taken: set[str] = set()
    internal: set[str] = set()
    root: dict[str, Any] = {}
    names: dict[str, str] = {}
    for node in calls:
        scopes, op, original = parsed[node]
        key = tuple(scopes)
        inner = any(len(other) > len(key) and other[:len(key)] == key for other in prefixes)
        path = list(scopes) if scopes and per_scope[key] == 1 and not inner else [*scopes, op]
        base = path[-1]
        counter = 1
        while True:
            candidate = ".".join(path)
            clash = candidate in taken or candidate in internal or any(
                ".".join(path[:i]) in taken for i in range(1, len(path)))
            if not clash:
                break
            counter += 1
            path = [*path[:-1], f"{base}_{counter}"]
        taken.add(candidate)
        internal.update(".".join(path[:i]) for i in range(1, len(path)))
        root[candidate] = module.get_submodule(str(node.target))
        names[candidate] = original
        node.target = candidate
    for node in graph.nodes:
        if node.op == "get_attr":
            root[node.target] = _attr(module, node.target)
    renamed = torch.fx.GraphModule(root, graph, class_name="OnnxModule")
    return renamed, names


def _attr(module, target: str):
    value = module
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _probe_batch(loaded: TorchModelFile, torch, batch_fixed: bool) -> None:
    """Run two different images as one batch and the first alone: a graph exported with a fixed batch
    of one that cannot take batches (reshapes with the batch baked in) is refused here, not mid-explanation."""
    height, width = loaded.input_size or (64, 64)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, height, width, generator=generator) * 2 - 1
    try:
        with torch.no_grad():
            both = _logits(loaded.module(x))
            one = _logits(loaded.module(x[:1]))
    except Exception as error:
        if loaded.input_size is None:
            raise ModelFileError(f"'{loaded.name}' did not run on a 64×64 image ({type(error).__name__}: "
                                 f"{_first_line(error)}): export it with a fixed input size.") from None
        raise ModelFileError(f"'{loaded.name}' did not run on a batch of two images ({type(error).__name__}): export "
                             f"it with a dynamic batch dimension, `{ONNX_EXPORT}`.") from None
    if both.shape[0] != 2 or both.ndim != 4 or not torch.allclose(both[:1], one, rtol=1e-3, atol=1e-4):
        raise ModelFileError(f"'{loaded.name}' gives wrong results for a batch of two images (its batch size is "
                             f"baked in): export it with a dynamic batch dimension, `{ONNX_EXPORT}`.")
    if batch_fixed:
        loaded.notes.append("The graph was exported for one image per batch; it was checked to run on batches.")


def _logits(output):
    if isinstance(output, dict):
        output = output.get("out", next(iter(output.values())))
    if isinstance(output, list | tuple):
        output = output[0]
    return getattr(output, "logits", output)


# ---------------------------------------------------------------------------------------------
# save_pretrained folders as .zip


def _folder_error(name: str, text: str) -> ModelFileError:
    return ModelFileError(f"'{name}' {text}")


def read_folder_zip(path: Path, name: str, limits: Limits) -> tuple[dict[str, bytes], zipfile.ZipInfo, str]:
    """Gatekeep a folder zip (member count from the end record, paths, sizes, checksums, known file
    names only) and return (small JSON members by name, the safetensors member, the folder prefix)."""
    try:
        count = _zip_member_count(path)
    except OSError:
        count = None
    if count is None or not zipfile.is_zipfile(path):
        raise ModelFileError(f"'{name}' is not a zip archive: zip the `save_pretrained` folder (config.json and "
                             "model.safetensors).")
    if count > limits.archive_members:
        raise ModelFileError(f"'{name}' has {count:,} archive members, above the {limits.archive_members:,}-member "
                             "limit (set SEGEXPLAIN_MAX_ARCHIVE_MEMBERS to change it).")
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(archive.infolist()) > limits.archive_members:
                raise ModelFileError(f"'{name}' has more than {limits.archive_members:,} archive members (set "
                                     "SEGEXPLAIN_MAX_ARCHIVE_MEMBERS to change it).")
            names = [info.filename for info in members]
            for text in names:
                parts = PurePosixPath(text).parts
                if text.startswith(("/", "\\")) or ".." in parts or ":" in text or "\\" in text:
                    raise ModelFileError(f"'{name}' contains a file path outside the archive, so it is refused.")
            if len(set(names)) != len(names):
                raise ModelFileError(f"'{name}' holds two archive members with the same name, so it is refused.")
            kind = _zip_kind(names)
            if kind:
                raise refusal(name, kind)
            _refuse_strays(names, name)
            prefix = _folder_prefix(names, name)
            by_name = {text[len(prefix):]: info for text, info in zip(names, members, strict=True)}
            for required in ("config.json", "model.safetensors"):
                if required not in by_name:
                    raise ModelFileError(f"'{name}' has no {required}: zip the whole `save_pretrained` folder "
                                         "(config.json and model.safetensors).")
            total = sum(info.file_size for info in members)
            if total > limits.archive_bytes:
                raise ModelFileError(f"'{name}' unpacks to {_bytes(total)}, above the {_bytes(limits.archive_bytes)} "
                                     "archive limit (set SEGEXPLAIN_MAX_ARCHIVE_BYTES to change it).")
            small = {}
            for member in ("config.json", "preprocessor_config.json"):
                info = by_name.get(member)
                if info is None:
                    continue
                if info.file_size > limits.config_bytes:
                    raise ModelFileError(f"'{name}' has a {_bytes(info.file_size)} {member}, above the "
                                         f"{_bytes(limits.config_bytes)} config limit (set SEGEXPLAIN_MAX_CONFIG_BYTES "
                                         "to change it).")
                small[member] = _read_member(archive, info, keep=True)
            for info in members:
                if info.filename not in (prefix + "config.json", prefix + "preprocessor_config.json",
                                         prefix + "model.safetensors"):
                    _read_member(archive, info, keep=False)
            return small, by_name["model.safetensors"], prefix
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError):
        raise ModelFileError(f"'{name}' is damaged (its archive cannot be read): zip the folder again.") from None


def _refuse_strays(names: Sequence[str], name: str) -> None:
    for text in names:
        base = PurePosixPath(text).name
        lowered = base.lower()
        if lowered.endswith((".py", ".pyc", ".so", ".sh")):
            raise ModelFileError(f"'{name}' contains code ({base}), which segexplain never runs: upload a folder "
                                 "of a built-in transformers or smp class (config.json and model.safetensors).")
        if lowered.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl", ".h5", ".msgpack")):
            raise ModelFileError(f"'{name}' holds weights as {base} (a pickle or another framework's format), which "
                                 "segexplain never opens: save them as model.safetensors with "
                                 "`model.save_pretrained(folder)` (safetensors is its default).")
        if lowered.startswith("model-0") or lowered == "model.safetensors.index.json":
            raise ModelFileError(f"'{name}' holds weights in several shards: save them as one file with "
                                 "`model.save_pretrained(folder, max_shard_size='100GB')`.")
        if base not in FOLDER_FILES:
            raise ModelFileError(f"'{name}' holds {base!r}, which a model folder segexplain reads never has (only "
                                 f"{', '.join(sorted(FOLDER_FILES))}): zip just those files.")


def _folder_prefix(names: Sequence[str], name: str) -> str:
    """'' when the files sit at the top of the zip, 'folder/' when all sit in one folder."""
    tops = {PurePosixPath(text).parts[0] if len(PurePosixPath(text).parts) > 1 else "" for text in names}
    depths = {len(PurePosixPath(text).parts) for text in names}
    if tops == {""}:
        return ""
    if len(tops) == 1 and depths == {2}:
        return f"{tops.pop()}/"
    raise ModelFileError(f"'{name}' does not hold one model folder (config.json and model.safetensors at the top or in "
                         "one folder): zip the `save_pretrained` folder itself.")


def check_safetensors(path: Path, name: str, limits: Limits) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The safetensors header (size, dtypes, shapes, offsets that tile the data exactly) before any
    tensor is read. Returns {tensor name: (dtype, shape)}."""
    damaged = ModelFileError(f"'{name}' has a damaged model.safetensors: save the model again.")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            raise damaged
        length = int.from_bytes(head, "little")
        if length > limits.config_bytes or length + 8 > size:
            raise damaged
        try:
            header = json.loads(handle.read(length))
        except (ValueError, RecursionError):
            raise damaged from None
    if not isinstance(header, dict):
        raise damaged
    data_size = size - 8 - length
    spans = []
    tensors = {}
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise damaged
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            raise damaged
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape) \
                or not isinstance(offsets, list) or len(offsets) != 2 \
                or not all(isinstance(o, int) for o in offsets):
            raise damaged
        begin, end = offsets
        if not 0 <= begin <= end <= data_size or end - begin != math.prod(shape) * SAFETENSORS_DTYPES[entry["dtype"]]:
            raise damaged
        spans.append((begin, end))
        tensors[key] = (entry["dtype"], tuple(shape))
    spans.sort()
    position = 0
    for begin, end in spans:
        if begin != position:
            raise damaged
        position = end
    if position != data_size:
        raise damaged
    return tensors


def load_folder_zip(path: Path, name: str, limits: Limits) -> TorchModelFile:
    """A transformers or smp `save_pretrained` folder zipped: gatekept, built from its config, weights
    from safetensors only."""
    small, weights_info, prefix = read_folder_zip(path, name, limits)
    config = _json(small["config.json"], name, "config.json")
    preprocessor = _json(small["preprocessor_config.json"], name, "preprocessor_config.json") \
        if "preprocessor_config.json" in small else None
    scan_folder_config(config, name)
    if preprocessor is not None:
        scan_folder_config(preprocessor, name)
    if "_model_class" in config:
        kind = "smp"
    elif "model_type" in config or "architectures" in config:
        kind = "transformers"
    else:
        raise ModelFileError(f"'{name}' has a config.json of neither a transformers nor a segmentation-models-pytorch "
                             f"model: upload {ZIP_EXPORT}.")
    folder = Path(tempfile.mkdtemp(prefix="segexplain-weights-"))  # mode 0700
    try:
        weights = folder / "model.safetensors"
        with zipfile.ZipFile(path) as archive, archive.open(weights_info) as stream, weights.open("wb") as out:
            copied = 0
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                copied += len(chunk)
                if copied > weights_info.file_size:
                    raise ModelFileError(f"'{name}' is damaged (a member is larger than declared): zip it again.")
                out.write(chunk)
        header = check_safetensors(weights, name, limits)
        if kind == "smp":
            loaded = _build_smp(config, header, weights, name, limits)
        else:
            loaded = _build_transformers(config, header, weights, name, limits)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError):
        raise ModelFileError(f"'{name}' is damaged (its archive cannot be read): zip the folder again.") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if preprocessor is not None:
        _apply_preprocessor(loaded, preprocessor, name)
    return loaded


def _json(raw: bytes, name: str, member: str) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise ModelFileError(f"'{name}' has an unreadable {member}: save the model again.") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"'{name}' has a {member} that is not a JSON object: save the model again.")
    return value


def scan_folder_config(config: dict, name: str) -> None:
    """Refuse configs that ask for code from the folder or the hub, or for downloads while building."""
    try:
        entries = list(_walk(config))
    except (ValueError, RecursionError):
        raise ModelFileError(f"'{name}' has a config nested too deeply: save the model again.") from None
    for entry in entries:
        for key in HF_CODE_KEYS:
            if key in entry and entry[key]:
                raise ModelFileError(f"'{name}' asks for code outside transformers ({key} in its config), which "
                                     "segexplain never runs: save a built-in transformers class with "
                                     "`model.save_pretrained(folder)`.")
        if entry.get("use_pretrained_backbone") or isinstance(entry.get("backbone"), str) and entry["backbone"]:
            raise ModelFileError(f"'{name}' asks to download a pretrained backbone while building, which segexplain "
                                 "never does: save the model with `backbone_config` (its weights in "
                                 "model.safetensors) and `use_pretrained_backbone=False`.")


def _meta_build(build, name: str, limits: Limits):
    """Build a module on the meta device (no memory for weights) and check its parameter count."""
    torch = _torch()
    try:
        with torch.device("meta"):
            module = build()
    except ModelFileError:
        raise
    except Exception as error:
        raise ModelFileError(f"'{name}' has a config its class cannot be built from ({type(error).__name__}: "
                             f"{_first_line(error)}): save the model again.") from None
    count = sum(parameter.numel() for parameter in module.parameters())
    if count > limits.parameters:
        raise ModelFileError(f"'{name}' declares {_mega(count)} parameters, above the {_mega(limits.parameters)} "
                             "parameter limit (set SEGEXPLAIN_MAX_PARAMETERS to change it).")
    return module


def _fill(build, meta, header: Mapping[str, tuple[str, tuple[int, ...]]], weights: Path, name: str,
          drop_prefixes: Sequence[str] = ()):
    """Check the file's tensors against the module's state (names and shapes), then load them: assigned
    into the meta-built module when that leaves nothing on the meta device, else into a real build."""
    _torch()
    safetensors_torch = _require("safetensors.torch", "safetensors")
    expected = {key: tuple(value.shape) for key, value in meta.state_dict().items()}
    present = {key: shape for key, (_, shape) in header.items() if not key.startswith(tuple(drop_prefixes))}
    missing = sorted(set(expected) - set(present))
    extra = sorted(set(present) - set(expected))
    wrong = sorted(key for key in set(expected) & set(present) if expected[key] != present[key])
    if missing or extra or wrong:
        what = (f"lacks {missing[0]!r}" if missing else f"has {extra[0]!r}, which the model does not" if extra
                else f"has {wrong[0]!r} shaped {present[wrong[0]]} where the model needs {expected[wrong[0]]}")
        raise ModelFileError(f"'{name}' has weights that do not fit its config (model.safetensors {what}): save the "
                             "model again with `save_pretrained`.")
    try:
        state = safetensors_torch.load_file(str(weights), device="cpu")
    except Exception:
        raise ModelFileError(f"'{name}' has a damaged model.safetensors: save the model again.") from None
    state = {key: value for key, value in state.items() if key in expected}
    module = meta
    module.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in module.parameters()) or any(t.is_meta for t in module.buffers()):
        module = build()  # non-persistent buffers are computed in __init__: build for real
        module.load_state_dict(state, strict=True)
    module = module.float().eval()
    return module


def _build_transformers(config: dict, header, weights: Path, name: str, limits: Limits) -> TorchModelFile:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    transformers = _require("transformers", "transformers")
    allowed = {kind: cls for kind, cls in TRANSFORMERS_CLASSES.items() if hasattr(transformers, cls)}
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or len(architectures) > 1 or not all(isinstance(a, str) for a in architectures):
        raise ModelFileError(f"'{name}' names several architectures in config.json: save one model.")
    wanted = architectures[0] if architectures else allowed.get(model_type)
    if model_type not in allowed or wanted != allowed[model_type]:
        shown = wanted or model_type or "no class"
        raise ModelFileError(f"'{name}' is a {shown}, not one of the semantic-segmentation classes segexplain loads "
                             f"({', '.join(sorted(allowed.values()))}).")
    cls = getattr(transformers, wanted)
    config_class = transformers.CONFIG_MAPPING[model_type]
    fields_ = {key: value for key, value in config.items() if key not in ("architectures", "transformers_version")}
    try:
        hf_config = config_class.from_dict(fields_)
    except Exception as error:
        raise ModelFileError(f"'{name}' has a config.json transformers cannot read ({type(error).__name__}: "
                             f"{_first_line(error)}): save the model again.") from None
    for key in ("use_pretrained_backbone",):
        if getattr(hf_config, key, False):
            raise ModelFileError(f"'{name}' asks to download a pretrained backbone, which segexplain never does.")

    def build():
        return cls(hf_config)

    _meta_build(build, name, limits)
    # transformers' own loader, so its checkpoint key conversions apply; only our folder (the weights file
    # alone), the config object we checked, safetensors only, no remote code, nothing from the network
    try:
        module, info = cls.from_pretrained(
            str(weights.parent), config=hf_config, local_files_only=True, trust_remote_code=False,
            use_safetensors=True, output_loading_info=True)
    except Exception as error:
        raise ModelFileError(f"'{name}' has weights that do not fit its config ({type(error).__name__}: "
                             f"{_first_line(error)}): save the model again with `save_pretrained`.") from None
    problems = [(kind, keys) for kind, keys in info.items() if keys and kind != "error_msgs"]
    if problems or info.get("error_msgs"):
        kind, keys = problems[0] if problems else ("errors", info["error_msgs"])
        first = sorted(map(str, keys))[0]
        raise ModelFileError(f"'{name}' has weights that do not fit its config ({kind.replace('_', ' ')}: {first!r}): "
                             "save the model again with `save_pretrained`.")
    module = module.float().eval()
    loaded = TorchModelFile(module=module, kind="transformers", name=name)
    names = _id2label(config.get("id2label"), getattr(hf_config, "num_labels", None))
    if names:
        loaded.class_names = names
        loaded.sources["class_names"] = "config.json (id2label)"
    image_size = getattr(hf_config, "image_size", None)
    if isinstance(image_size, int) and image_size > 0:
        loaded.input_size = (image_size, image_size)
        loaded.sources["input_size"] = "config.json (image_size)"
    elif isinstance(image_size, list | tuple) and len(image_size) == 2 and all(isinstance(v, int) for v in image_size):
        loaded.input_size = (int(image_size[0]), int(image_size[1]))
        loaded.sources["input_size"] = "config.json (image_size)"
    loaded.notes.append(f"transformers {wanted}: logits at 1/4 resolution for SegFormer-like heads are "
                        "upsampled to the image by the engine.")
    return loaded


def _id2label(value: object, count: object) -> list[str] | None:
    if not isinstance(value, dict) or not value:
        return None
    try:
        pairs = sorted((int(key), str(label)) for key, label in value.items())
    except (TypeError, ValueError):
        return None
    if [index for index, _ in pairs] != list(range(len(pairs))) or (isinstance(count, int) and count != len(pairs)):
        return None
    names = [label for _, label in pairs]
    generic = all(re.fullmatch(r"LABEL_\d+", label) for label in names)
    return None if generic else names


def _build_smp(config: dict, header, weights: Path, name: str, limits: Limits) -> TorchModelFile:
    smp = _require("segmentation_models_pytorch", "segmentation-models-pytorch")
    available = {cls.__name__: cls for cls in getattr(smp, "MODEL_ARCHITECTURES_MAPPING", {}).values()}
    class_name = config.get("_model_class")
    if class_name not in SMP_CLASSES or class_name not in available:
        allowed = ", ".join(c for c in SMP_CLASSES if c in available)
        raise ModelFileError(f"'{name}' is an smp {class_name!r}, not one of the segmentation classes segexplain "
                             f"loads ({allowed}).")
    cls = available[class_name]
    parameters = inspect.signature(cls.__init__).parameters
    kwargs = {key: value for key, value in config.items() if key != "_model_class"}
    unknown = sorted(key for key in kwargs if key not in parameters or key in ("self", "kwargs"))
    if unknown:
        raise ModelFileError(f"'{name}' has a config.json field smp's {class_name} does not take ({unknown[0]!r}): "
                             "save the model again with this version of segmentation-models-pytorch.")
    encoder = kwargs.get("encoder_name", parameters["encoder_name"].default if "encoder_name" in parameters else None)
    if not isinstance(encoder, str) or not _smp_encoder_known(smp, encoder):
        raise ModelFileError(f"'{name}' names the encoder {encoder!r}, which this segmentation-models-pytorch does "
                             "not have: save a model with one of its encoders.")
    if kwargs.get("in_channels", 3) != 3:
        raise ModelFileError(f"'{name}' takes {kwargs['in_channels']} input channels; segexplain explains RGB "
                             "images (in_channels=3).")
    notes = []
    pretrained = kwargs.get("encoder_weights")
    kwargs["encoder_weights"] = None  # never downloaded: the weights come from model.safetensors
    if kwargs.get("activation"):
        notes.append(f"The file's output activation ({kwargs['activation']!r}) is left out: the maps explain the "
                     "logits.")
        kwargs["activation"] = None
    drop = ()
    if kwargs.get("aux_params"):
        kwargs["aux_params"] = None
        drop = ("classification_head.",)
        notes.append("The file's classification head (aux_params) is left out.")

    def build():
        return cls(**kwargs)

    meta = _meta_build(build, name, limits)
    module = _fill(build, meta, header, weights, name, drop_prefixes=drop)
    loaded = TorchModelFile(module=module, kind="smp", name=name, notes=notes)
    if isinstance(pretrained, str) and pretrained:
        try:
            params = smp.encoders.get_preprocessing_params(encoder, pretrained=pretrained)
        except (ValueError, KeyError, AttributeError, RuntimeError):
            params = None
        if params and params.get("mean") and params.get("std") and list(params.get("input_range", [0, 1])) == [0, 1]:
            loaded.mean = tuple(float(v) for v in params["mean"])  # type: ignore[assignment]
            loaded.std = tuple(float(v) for v in params["std"])  # type: ignore[assignment]
            source = f"smp's preprocessing for encoder {encoder!r} with {pretrained!r} weights"
            loaded.sources.update(mean=source, std=source)
    loaded.notes.append("smp networks take sizes divisible by 32.")
    return loaded


def _smp_encoder_known(smp, encoder: str) -> bool:
    if encoder in smp.encoders.get_encoder_names():
        return True
    if encoder.startswith("tu-"):
        try:
            import timm
        except ImportError:
            return False
        return encoder[3:] in timm.list_models()
    return False


def _apply_preprocessor(loaded: TorchModelFile, preprocessor: dict, name: str) -> None:
    """Mean, std and input size from a transformers `preprocessor_config.json`: x = (image·r − mean) / std
    becomes (image/255 − mean/(255 r)) / (std/(255 r)), so rescale factors other than 1/255 carry over."""
    normalize = preprocessor.get("do_normalize", True)
    rescale = preprocessor.get("rescale_factor", 1 / 255) if preprocessor.get("do_rescale", True) else 1.0
    mean = preprocessor.get("image_mean") if normalize else [0.0, 0.0, 0.0]
    std = preprocessor.get("image_std") if normalize else [1.0, 1.0, 1.0]
    if isinstance(mean, int | float):
        mean = [mean] * 3
    if isinstance(std, int | float):
        std = [std] * 3
    try:
        rescale = float(rescale)
        mean_t = tuple(float(v) / (255 * rescale) for v in mean)
        std_t = tuple(float(v) / (255 * rescale) for v in std)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ModelFileError(f"'{name}' has an unreadable preprocessor_config.json: save it again.") from None
    if len(mean_t) != 3 or len(std_t) != 3 or min(std_t) <= 0 or not all(map(math.isfinite, mean_t + std_t)):
        raise ModelFileError(f"'{name}' has a preprocessor_config.json with an unusable mean or std: save it again.")
    loaded.mean, loaded.std = mean_t, std_t  # type: ignore[assignment]
    loaded.sources.update(mean="preprocessor_config.json", std="preprocessor_config.json")
    size = preprocessor.get("size")
    if isinstance(size, dict) and isinstance(size.get("height"), int) and isinstance(size.get("width"), int) \
            and size["height"] > 0 and size["width"] > 0:
        loaded.input_size = (size["height"], size["width"])
        loaded.sources["input_size"] = "preprocessor_config.json"


def load_explainable(path: str | Path, display_name: str | None = None, limits: Limits | None = None,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                     input_size: Sequence[int] | None = None):
    """A PyTorch model file as a library model (`explainers.from_torch`), with the mean, std and input size
    in force (`resolve_preprocessing`) kept on it as `.file_preprocessing` for the page and the CLI to show."""
    from explainers.model_files import check_image_size

    limits = limits or Limits.from_env()
    loaded = load_torch_file(path, display_name, limits)
    preprocessing = resolve_preprocessing(loaded, mean, std, input_size)
    check_image_size(*preprocessing.input_size, limits)
    from explainers.torch_engine import from_torch

    model = from_torch(loaded.module, input_size=preprocessing.input_size, mean=preprocessing.mean,
                       std=preprocessing.std, class_names=loaded.class_names)
    model.file_preprocessing = preprocessing
    model.file_notes = list(loaded.notes)
    return model
