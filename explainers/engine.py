"""The engine boundary: what the methods need from a network, behind one small interface.

Why: the methods' maths (`cams`, `segxrescam`, `scorecam`, `rise`, `xrai`, `methods_input`,
`faithfulness`) is written once; what differs between Keras and PyTorch is only how a network is
run. An `Engine` answers, for one model: its explainable layers (name, shape, kind; `graph.Stage`
groups), its output grid, its logits, the activations and gradients of a score at chosen layers in one
pass (turned into CAM maps by the CAM objects' own formulas), region scores and input gradients for
image batches, the activations of one layer, and the memory one image costs.

Arrays cross the boundary as NumPy, channels-last (images (B, H, W, C) float in the model's input
range, 0–255; maps (B, h, w, K)), masks at the output grid (h, w), class indices as int. Engines
keep whatever they compile per model (`caching.PerModel`).

`of(model)`: a Keras model gets a `keras_engine.KerasEngine` (today's compiled TensorFlow path); a
model from `explainers.from_torch` carries its `torch_engine.TorchEngine` as `segexplain_engine`.
torch is imported by `torch_engine` only, so this package works where torch is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

ScoreFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


@runtime_checkable
class Engine(Protocol):
    framework: str  # "keras" or "torch", for messages
    keeps_forward_passes: bool  # whether `forward_cache` may keep this model's forward passes

    def summary(self) -> Any:
        """`graph.ModelSummary` (input size, classes, output size, layers, head, channels), or ExplainerError."""

    def layers(self) -> list:
        """Explainable layers (`graph.LayerInfo`) in forward order."""

    def stages(self) -> list:
        """`graph.Stage` groups of the layers by output resolution."""

    def default_layer(self) -> str: ...

    def check_layer(self, name: str) -> str:
        """`name` if CAMs can use it, else an ExplainerError naming valid layers."""

    def output_size(self, image_size: tuple[int, int]) -> tuple[int, int]: ...

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, probabilities), each (B, h, w, classes), of an image batch."""

    def cam_maps(self, image: np.ndarray, mask: np.ndarray, class_index: int, layers: Sequence[str],
                 cams: Sequence[Any], target: str) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """layer → CAM name → (layer map, heatmap at image size) from one forward and one backward pass
        per distinct score; `image` is one H×W×C float image, `mask` the region at the output grid."""

    def region_scores(self, target: str) -> ScoreFn:
        """(x batch, mask, class) → (B,) adapter region scores."""

    def input_gradients(self, target: str) -> ScoreFn:
        """(x batch, mask, class) → ∂ adapter score / ∂ x, shaped like x."""

    def activations(self, layer: str, target: str) -> Callable[[np.ndarray], np.ndarray]:
        """x batch → (B, h, w, K) activations of `layer`."""

    def activation_bytes(self, image_size: tuple[int, int]) -> int:
        """About the bytes a taped forward pass of one image keeps (see `memory`)."""


def of(model) -> Engine:
    """The engine that runs `model`."""
    engine = getattr(model, "segexplain_engine", None)
    if engine is not None:
        return engine
    from explainers.keras_engine import KerasEngine

    return KerasEngine(model)


def foreign(model) -> Engine | None:
    """The engine of a model that is not a Keras model (`explainers.from_torch`), else None."""
    return getattr(model, "segexplain_engine", None)
