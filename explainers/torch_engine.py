"""The PyTorch engine: an `nn.Module` segmentation network behind `engine.Engine`.

Why this shape: the methods' maths is the library's own (`cams`, `scores`, ...); this module only runs
the network. A CAM request is one forward pass with forward hooks on the chosen modules and one
`torch.autograd.grad` per distinct score to those modules' outputs only (no parameter gradients), then
the CAM formulas on NumPy copies of the activations and gradients (channels-last). Region scores and
input gradients for image batches are plain forward (and backward) passes.

The module takes a normalised NCHW float batch, x = (image / 255 − mean) / std (torchvision's
convention, mean and std on the 0–1 scale like `transforms.Normalize`), and returns NCHW logits, a
dict with "out" (torchvision) or an object with `.logits` (Hugging Face), possibly at a lower
resolution than the input (the region is put on that grid as for Keras models).

Layers are module paths (`backbone.layer4`, `encoder.layer3.2.relu`) whose output in a probe pass is a
spatial map (B, C, h, w) or a token map (B, N, C) whose tokens form the patch grid (the grid rule of
`graph._token_grid`). A module called several times in one pass (torchvision's shared `relu` in a
ResNet block) is explained at its last call. Each hooked output is handed on as a copy, so a later
in-place operation (ReLU(inplace=True)) cannot change the activations we keep.

torch is imported inside the functions: `import explainers` never needs it. In one process,
TensorFlow loaded before triton's native library crashed (see `torch_guard`). The threads torch uses
are set once (`SEGEXPLAIN_TORCH_THREADS`, default: the CPUs this process may use).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from explainers import graph
from explainers.errors import ExplainerError

_THREADS_SET = threading.Lock()
_threads_done = False


def _torch():
    try:
        import torch
    except ImportError:
        raise ExplainerError("PyTorch is not installed: pip install 'segexplain[torch]' (torch) to explain "
                             "PyTorch models.") from None
    return torch


def size_threads() -> int:
    """Set torch's intra-op threads once per process (env `SEGEXPLAIN_TORCH_THREADS`, else the usable CPUs),
    and one inter-op thread, so torch and TensorFlow's pools do not oversubscribe a small machine."""
    global _threads_done
    torch = _torch()
    with _THREADS_SET:
        if not _threads_done:
            wanted = os.environ.get("SEGEXPLAIN_TORCH_THREADS")
            try:
                count = int(wanted) if wanted else len(os.sched_getaffinity(0))
            except (ValueError, AttributeError):
                count = os.cpu_count() or 1
            torch.set_num_threads(max(1, count))
            with contextlib.suppress(RuntimeError):  # only allowed before torch's first parallel work
                torch.set_num_interop_threads(1)
            _threads_done = True
    return torch.get_num_threads()


_KINDS = (
    ("ConvTranspose", "transposed conv"), ("Conv", "conv"), ("Norm", "normalisation"), ("Pool", "pooling"),
    ("Upsample", "resizing"), ("Interpolat", "resizing"), ("ReLU", "activation"), ("GELU", "activation"),
    ("SiLU", "activation"), ("Swish", "activation"), ("Hardswish", "activation"), ("Sigmoid", "activation"),
    ("Tanh", "activation"), ("Mish", "activation"), ("ELU", "activation"), ("Dropout", "dropout"),
    ("Linear", "per-pixel dense"), ("Identity", "identity"),
)


def _kind(module) -> str:
    name = type(module).__name__
    for part, family in _KINDS:
        if part in name:
            return "conv" if family == "conv" and name == "Conv2d" else f"{family} ({name})"
    return f"block ({name})"


def _logits_of(output):
    """The logits tensor of the module's output: a tensor, dict["out"] or `.logits`."""
    if isinstance(output, dict) and "out" in output:
        output = output["out"]
    elif not hasattr(output, "dim") and hasattr(output, "logits"):
        output = output.logits
    if not hasattr(output, "dim") or output.dim() != 4:
        kind = type(output).__name__ if not hasattr(output, "dim") else f"a {output.dim()}-D tensor"
        raise ExplainerError(f"The module returned {kind}: it must return NCHW logits, a dict with 'out' or an "
                             "object with .logits (a segmentation network).")
    return output


class _Probe:
    """What one forward pass at the input size tells: each module's calls, output shape and order."""

    def __init__(self, module, x, torch) -> None:
        self.calls: dict[str, int] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.order: list[str] = []
        self.pointers: dict[str, int] = {}
        self.alive: list = []  # outputs kept until the end of the probe, so no pointer is reused
        handles = []
        for name, sub in module.named_modules():
            if name:
                handles.append(sub.register_forward_hook(self._hook(name)))
        try:
            with torch.no_grad():
                self.logits = _logits_of(module(x))
        finally:
            for handle in handles:
                handle.remove()
        self.logits_pointer = self.logits.data_ptr()
        self.alive.clear()

    def _hook(self, name: str):
        def hook(_module, _inputs, output) -> None:
            self.calls[name] = self.calls.get(name, 0) + 1
            if hasattr(output, "dim") and output.is_floating_point():
                self.shapes[name] = tuple(output.shape)
                self.pointers[name] = output.data_ptr()
                self.alive.append(output)
                if name not in self.order:
                    self.order.append(name)
                else:  # explained at its last call: it sits where that call sits
                    self.order.remove(name)
                    self.order.append(name)
            else:
                self.shapes.pop(name, None)

        return hook


class TorchModel:
    """A PyTorch segmentation network with its preprocessing: what `explainers.from_torch` returns.

    It goes wherever a Keras model goes in this library (`explain`, `layer_sweep`, `predict`,
    `fit_image`, `faithfulness`, `inspect_model`, ...); its `segexplain_engine` runs it.
    """

    def __init__(self, module, input_size, mean, std, class_names=None, layers=None) -> None:
        torch = _torch()
        if not isinstance(module, torch.nn.Module):
            raise ExplainerError(f"from_torch expects a torch.nn.Module, got {type(module).__name__}.")
        self.module = module.eval()
        self.input_size = _size(input_size)
        self.mean = _triple(mean, "mean")
        self.std = _triple(std, "std")
        if any(s <= 0 for s in self.std):
            raise ExplainerError(f"std {self.std} must be positive (0–1 scale, like transforms.Normalize).")
        self.segexplain_engine = TorchEngine(self, layers)
        classes = self.segexplain_engine.num_classes
        if class_names is not None:
            names = [str(n) for n in class_names]
            if len(names) != classes:
                raise ExplainerError(f"{len(names)} class names were given but the model predicts {classes} classes.")
            self.class_names: list[str] | None = names
        else:
            self.class_names = None

    def __repr__(self) -> str:
        h, w = self.input_size
        return f"TorchModel({type(self.module).__name__}, input_size=({h}, {w}), mean={self.mean}, std={self.std})"


def _size(value) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ExplainerError(f"input_size {value!r} must be (height, width) in pixels.") from None
    if h < 1 or w < 1:
        raise ExplainerError(f"input_size {value!r} must be positive.")
    return h, w


def _triple(value, what: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ExplainerError(f"{what} {value!r} must be three numbers (r, g, b) on the 0–1 scale.") from None
    if len(numbers) != 3 or not all(math.isfinite(v) for v in numbers):
        raise ExplainerError(f"{what} {value!r} must be three finite numbers (r, g, b) on the 0–1 scale.")
    return numbers


def from_torch(module, *, input_size, mean, std, class_names=None, layers=None) -> TorchModel:
    """Wrap an `nn.Module` segmentation network for this library.

    `input_size` (H, W) is the size images are fitted to; `mean`/`std` (0–1 scale, like
    `transforms.Normalize`) give the module's input x = (image / 255 − mean) / std, NCHW; it returns
    NCHW logits, a dict with "out" or an object with `.logits`. `class_names`: one per output channel.
    `layers`: the module paths offered for explanation (default: every module with a spatial or token
    output). The module is put in eval mode; its weights are not changed.
    """
    size_threads()
    return TorchModel(module, input_size, mean, std, class_names, layers)


class TorchEngine:
    framework = "torch"
    keeps_forward_passes = False  # forward_cache freezes TensorFlow graphs only

    def __init__(self, model: TorchModel, layers: Sequence[str] | None) -> None:
        torch = _torch()
        self.torch = torch
        self.model_ref = model
        self.module = model.module
        self.modules = dict(self.module.named_modules())
        self.lock = threading.Lock()  # hooks are per module object: one pass at a time
        h, w = model.input_size
        try:
            probe = _Probe(self.module, torch.zeros((1, 3, h, w)), torch)
        except ExplainerError:
            raise
        except Exception as error:  # the user's module failing on a plain input: one sentence, not a traceback
            raise ExplainerError(f"The module failed on a 1×3×{h}×{w} input ({type(error).__name__}: "
                                 f"{str(error)[:200]}): check input_size.") from None
        self.num_classes = int(probe.logits.shape[1])
        self._grid = tuple(int(v) for v in probe.logits.shape[2:4])
        self.head = f"{type(self.module).__name__} (PyTorch), {self.num_classes}-class logits"
        if self.num_classes == 1:
            self.head += "; one output channel read as two classes (0 = background, 1 = foreground)"
            self.num_classes = 2
        self.token_grids: dict[str, tuple[int, int, int]] = {}
        self.refused: dict[str, str] = {}
        spatial = [s[2:4] for s in probe.shapes.values() if len(s) == 4]
        infos = []
        for name in probe.order:
            shape = probe.shapes[name]
            if probe.pointers[name] == probe.logits_pointer:
                self.refused[name] = "outputs the logits themselves"
                continue
            if len(shape) == 4:
                out_shape = (None, shape[2], shape[3], shape[1])
                kind = _kind(self.modules[name])
            elif len(shape) == 3:
                grid = graph._token_grid(shape[1], spatial, (h, w))
                if grid is None:
                    self.refused[name] = f"outputs {shape[1]} tokens that form no grid this library can infer"
                    continue
                self.token_grids[name] = grid
                out_shape = (None, grid[0], grid[1], shape[2])
                kind = f"tokens of {_kind(self.modules[name])} as {grid[0]}×{grid[1]}" + (
                    f" (first {grid[2]} token dropped)" if grid[2] else "")
            else:
                continue
            if probe.calls.get(name, 0) > 1:
                kind += f", last of {probe.calls[name]} calls"
            infos.append(graph.LayerInfo(name=name, output_shape=out_shape, kind=kind))
        if layers is not None:
            wanted = [str(n) for n in layers]
            known = {i.name for i in infos}
            for n in wanted:
                if n not in known:
                    self._layer_error(n, [i.name for i in infos])
            infos = [i for i in infos if i.name in set(wanted)]
        if not infos:
            raise ExplainerError("The module has no layer with a spatial output: use a convolutional or "
                                 "patch-token segmentation network.")
        self.infos = infos
        self.by_name = {i.name: i for i in infos}
        self.sizes = {n: s for n, s in probe.shapes.items()}
        self.mean = torch.tensor(model.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(model.std, dtype=torch.float32).view(1, 3, 1, 1)

    # ------------------------------------------------------------------ what the network is

    def summary(self) -> graph.ModelSummary:
        return graph.ModelSummary(input_size=self.model_ref.input_size, num_classes=self.num_classes,
                                  output_size=self._grid, layers=list(self.infos), head=self.head, channels=3)

    def layers(self) -> list[graph.LayerInfo]:
        return list(self.infos)

    def stages(self) -> list[graph.Stage]:
        return graph.group_stages(self.infos, self.model_ref.input_size)

    def default_layer(self) -> str:
        """The last layer (in forward order) whose channels are not the classes: the map the classifier reads."""
        for info in reversed(self.infos):
            if info.output_shape[-1] != self.num_classes:
                return info.name
        return self.infos[-1].name

    def _layer_error(self, name: str, names: list[str]):
        examples = ", ".join(names[-4:])
        if name in self.refused:
            raise ExplainerError(f"Layer {name!r} {self.refused[name]}: pick a feature map such as {examples}.")
        if name in self.modules:
            raise ExplainerError(f"Layer {name!r} does not output a feature map (batch, channels, h, w) or a token "
                                 f"map (batch, tokens, channels) here: pick a feature map such as {examples}.")
        raise ExplainerError(f"The model has no module named {name!r}: pick one of its feature maps, e.g. {examples}.")

    def check_layer(self, name: str) -> str:
        if name in self.by_name:
            return name
        self._layer_error(name, [i.name for i in self.infos])
        return name  # unreachable

    def output_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        return self._grid

    def activation_bytes(self, image_size: tuple[int, int]) -> int:
        h, w = self.model_ref.input_size
        floats = 3 * h * w + self.num_classes * self._grid[0] * self._grid[1]
        floats += sum(math.prod(s[1:]) for s in self.sizes.values())
        return int(4 * floats)

    # ------------------------------------------------------------------------- running it

    def _input(self, x: np.ndarray, grad: bool = False):
        torch = self.torch
        pixels = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(0, 3, 1, 2).contiguous()
        if grad:
            pixels.requires_grad_(True)
        return pixels, (pixels / 255.0 - self.mean) / self.std

    def _scores_map(self, output, target: str):
        """(B, h, w, C) logits or probabilities, channels-last (a view: differentiable)."""
        logits = _logits_of(output)
        if logits.shape[1] == 1:
            logits = self.torch.cat([self.torch.zeros_like(logits), logits], dim=1)
        if target == "probabilities":
            logits = self.torch.softmax(logits, dim=1)
        return logits.permute(0, 2, 3, 1)

    def _forward(self, normalised, layers: Sequence[str]):
        """Run the module with hooks on `layers`; returns (output, {layer: raw hooked tensor})."""
        kept: dict[str, Any] = {}
        handles = []

        def hook_for(name):
            def hook(_module, _inputs, output):
                kept[name] = output
                return output.clone()  # later in-place ops change the copy, not what we keep

            return hook

        for name in dict.fromkeys(layers):
            handles.append(self.modules[name].register_forward_hook(hook_for(name)))
        try:
            output = self.module(normalised)
        finally:
            for handle in handles:
                handle.remove()
        return output, kept

    def _channels_last(self, name: str, tensor) -> np.ndarray:
        """A hooked output (or its gradient) as (B, h, w, K) float32 NumPy."""
        if name in self.token_grids:
            h, w, skip = self.token_grids[name]
            tensor = tensor[:, skip:, :].reshape(tensor.shape[0], h, w, tensor.shape[-1])
        else:
            tensor = tensor.permute(0, 2, 3, 1)
        return tensor.detach().float().contiguous().numpy()

    def _adapter(self, scores_map, mask):
        """Adapter scores (B, C): mean over all output cells of scores × mask, as `adapter.SegmentationAdapter`."""
        return (scores_map * mask[None, :, :, None]).mean(dim=(1, 2))

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        with self.lock, torch.no_grad():
            _pixels, normalised = self._input(x)
            output = self.module(normalised)
            logits = self._scores_map(output, "logits")
            probs = torch.softmax(logits, dim=-1)
        return logits.float().numpy().copy(), probs.float().numpy().copy()

    def cam_maps(self, image, mask, class_index, layers, cams_, target):
        torch = self.torch
        needed = {cam.score.name: cam.score for cam in cams_}
        mask_t = torch.from_numpy(np.asarray(mask, np.float32))
        with self.lock, torch.enable_grad():
            _pixels, normalised = self._input(np.asarray(image)[None])
            output, kept = self._forward(normalised, layers)
            scores_map = self._scores_map(output, target)
            region_scores = self._adapter(scores_map, mask_t)
            acts = [kept[name] for name in layers]
            grads = {}
            names = list(needed)
            for i, name in enumerate(names):
                value = needed[name](region_scores, scores_map, mask_t[None], int(class_index)).sum()
                if value.requires_grad:
                    got = torch.autograd.grad(value, acts, retain_graph=i < len(names) - 1, allow_unused=True)
                else:
                    got = [None] * len(acts)
                grads[name] = got
        size = tuple(np.asarray(image).shape[:2])
        out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for index, layer in enumerate(layers):
            a = self._channels_last(layer, acts[index])
            per: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for cam in cams_:
                g = grads[cam.score.name][index]
                g = np.zeros_like(a) if g is None else self._channels_last(layer, g)
                layer_map = np.asarray(cam.layer_map(a, g), np.float32)
                per[cam.name] = (layer_map[0], self._upsample(layer_map, size)[0])
            out[layer] = per
        return out

    def _upsample(self, maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(B, h, w) → (B, H, W) bilinear, half-pixel centres (= tf.image.resize bilinear, cv2.resize)."""
        torch = self.torch
        if tuple(maps.shape[1:3]) == tuple(size):
            return maps
        t = torch.from_numpy(np.ascontiguousarray(maps, np.float32))[:, None]
        return torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()

    def region_scores(self, target: str):
        torch = self.torch

        def run(x, mask, class_index):
            mask_t = torch.from_numpy(np.asarray(mask, np.float32))
            with self.lock, torch.no_grad():
                _pixels, normalised = self._input(x)
                scores = self._adapter(self._scores_map(self.module(normalised), target), mask_t)
            return scores[:, int(class_index)].float().numpy().copy()

        return run

    def input_gradients(self, target: str):
        torch = self.torch

        def run(x, mask, class_index):
            mask_t = torch.from_numpy(np.asarray(mask, np.float32))
            with self.lock, torch.enable_grad():
                pixels, normalised = self._input(x, grad=True)
                scores = self._adapter(self._scores_map(self.module(normalised), target), mask_t)
                (grad,) = torch.autograd.grad(scores[:, int(class_index)].sum(), pixels)
            return grad.permute(0, 2, 3, 1).float().contiguous().numpy()

        return run

    def activations(self, layer: str, target: str):
        torch = self.torch
        self.check_layer(layer)

        def run(x):
            with self.lock, torch.no_grad():
                _pixels, normalised = self._input(x)
                _output, kept = self._forward(normalised, [layer])
            return self._channels_last(layer, kept[layer])

        return run
