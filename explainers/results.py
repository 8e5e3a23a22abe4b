"""What the library returns: maps with their options and their warnings as codes.

Why codes: the dashboard decides what to show under a map (an empty map, a resized region) by the
code, and tests assert codes, so rewording a message changes neither. `Explanation.note` joins the
description and the messages for people to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Warning codes (the one list; messages may change, codes do not)
ALL_ZERO = "all-zero"  # the map is zero everywhere
NON_FINITE = "non-finite"  # NaN or infinite map values were set to 0
NON_FINITE_GRADIENTS = "non-finite-gradients"  # input gradients overflowed and were set to 0
REGION_RESIZED = "region-resized"  # region resampled (nearest neighbour) to a coarser output grid
REGION_TOUCHED = "region-resized-touched"  # a thin region kept every output cell it touches
BATCH_REDUCED = "batch-reduced"  # the batch size asked for did not fit the memory budget
WARNING_CODES = (ALL_ZERO, NON_FINITE, NON_FINITE_GRADIENTS, REGION_RESIZED, REGION_TOUCHED, BATCH_REDUCED)


@dataclass(frozen=True)
class MapWarning:
    """Something the user should know about one map: a stable `code` and a sentence for people."""

    code: str
    message: str


@dataclass
class Explanation:
    """One attribution map: `heatmap` is H×W float32 in [0, 1] at image size (max 1 unless all zero).

    `layer_map` is the map at the layer's own resolution before upsampling (None for layer-free
    methods); `seconds` is the wall time of the pass that produced it (CAMs of one call share one
    pass); `options` is the method's options object as run (batch sizes resolved); `description`
    says what was computed; `warnings` are `MapWarning`s. `preview` is True for the early map a slow
    method hands to `explain(..., preview=...)` before its own (XRAI at fewer steps; `options` says how many).
    """

    method: str
    heatmap: np.ndarray
    layer_map: np.ndarray | None
    seconds: float
    layer: str | None
    options: Any = None
    description: str = ""
    warnings: tuple[MapWarning, ...] = field(default_factory=tuple)
    preview: bool = False

    @property
    def note(self) -> str:
        """The description and every warning's message, for human display."""
        return " ".join(filter(None, [self.description, *(w.message for w in self.warnings)]))

    def codes(self) -> tuple[str, ...]:
        return tuple(w.code for w in self.warnings)

    def has(self, code: str) -> bool:
        return code in self.codes()


@dataclass
class RawMap:
    """What a slow method's `run` returns before the API normalises it.

    `heatmap` at image size (H×W, or H×W×C for input attributions), `layer_map` at the layer's grid or
    None, `options` as run (batch size resolved), `description` what was computed, `warnings` so far;
    `preview` marks the early, cheaper run a method may hand out before its map (XRAI).
    """

    heatmap: np.ndarray
    layer_map: np.ndarray | None
    options: Any
    description: str
    warnings: list[MapWarning] = field(default_factory=list)
    preview: bool = False


@dataclass(frozen=True)
class Prediction:
    """Per-pixel logits and probabilities (H×W×C) and labels (H×W), at the image's resolution."""

    logits: np.ndarray
    probs: np.ndarray
    labels: np.ndarray
