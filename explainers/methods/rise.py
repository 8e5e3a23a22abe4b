"""RISE for a region (Petsiuk et al., BMVC 2018): random masks, no gradients, any model.

Why: a gradient-free check of the gradient methods. N binary grids of `cells`×`cells` cells, each cell
kept with probability `p`, are upsampled bilinearly to (cells+1)·⌈H/cells⌉ × (cells+1)·⌈W/cells⌉ and
cropped at a random shift of less than one cell, giving smooth masks M_i in [0, 1] at image size. The
image times each mask is scored with the adapter's region score s (the compiled batched
`engine.Engine.region_scores`), and

    map = Σ_i s(x ⊙ M_i) · M_i / (N · p),

the expected score when a pixel is kept. Grids, shifts and therefore the map are reproducible from
`seed` (NumPy's `default_rng`); masks are made batch by batch, so memory stays at one batch, whose size
defaults to what the memory budget allows (at most 50). The API min-max scales the map to [0, 1].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from explainers import engine, memory
from explainers import options as opts
from explainers.results import RawMap

DEFAULT_MASKS = 500
DEFAULT_CELLS = 8
DEFAULT_P = 0.5
DEFAULT_BATCH_SIZE = 50


@dataclasses.dataclass(frozen=True)
class RISEOptions:
    """`masks` N, `cells` per side of the random grid, keep probability `p`, `batch_size` (None: memory), `seed`."""

    masks: int = opts.option(DEFAULT_MASKS, "RISE masks", "Random masks RISE averages (one forward pass each).",
                             low=1, high=20_000, step=100)
    cells: int = opts.option(DEFAULT_CELLS, "RISE grid", "Cells per side of each of RISE's random keep/drop grids "
                             "before it is upsampled: fewer cells, coarser masks.", low=1, high=64, step=1)
    p: float = opts.option(DEFAULT_P, "RISE keep probability", "Share of grid cells each mask keeps.", kind="float",
                           low=0.0, high=1.0, page=False)
    batch_size: int | None = opts.option(None, "batch size", "Images per pass; auto: the largest that fits the memory budget.", low=1, page=False, optional=True)
    seed: int = opts.option(0, "RISE seed", "Seed of the random masks.", low=0, page=False)

    def __post_init__(self) -> None:
        opts.set_field(self, "masks", opts.whole(self.masks, "masks", 1, "RISE"))
        opts.set_field(self, "cells", opts.whole(self.cells, "cells", 1, "RISE"))
        opts.set_field(self, "p", opts.number(self.p, "p", "RISE", 0.0, 1.0, open_low=True))
        opts.set_field(self, "batch_size", opts.batch(self.batch_size, "batch_size", "RISE"))
        opts.set_field(self, "seed", opts.whole(self.seed, "seed", 0, "RISE"))


@dataclasses.dataclass(frozen=True)
class MaskPlan:
    """The random draws of all N masks: keep/drop grids (N, cells, cells) and shifts (N,) in pixels."""

    grids: np.ndarray
    shift_rows: np.ndarray
    shift_cols: np.ndarray
    cell_size: tuple[int, int]


def plan(image_size: tuple[int, int], options: RISEOptions) -> MaskPlan:
    """Draw every grid and shift from `options.seed` (in this order: grids, row shifts, column shifts)."""
    h, w = image_size
    ch, cw = math.ceil(h / options.cells), math.ceil(w / options.cells)
    rng = np.random.default_rng(options.seed)
    grids = (rng.random((options.masks, options.cells, options.cells)) < options.p).astype(np.float32)
    return MaskPlan(grids=grids, shift_rows=rng.integers(0, ch, options.masks),
                    shift_cols=rng.integers(0, cw, options.masks), cell_size=(ch, cw))


def masks(mask_plan: MaskPlan, image_size: tuple[int, int], start: int, stop: int) -> np.ndarray:
    """Masks `start`..`stop` of the plan at image size, (n, H, W) float32 in [0, 1]."""
    h, w = image_size
    cells = mask_plan.grids.shape[1]
    ch, cw = mask_plan.cell_size
    grids = tf.constant(mask_plan.grids[start:stop, ..., None])
    up = tf.image.resize(grids, ((cells + 1) * ch, (cells + 1) * cw), method="bilinear").numpy()[..., 0]
    out = np.empty((stop - start, h, w), np.float32)
    for i in range(stop - start):
        r, c = int(mask_plan.shift_rows[start + i]), int(mask_plan.shift_cols[start + i])
        out[i] = up[i, r:r + h, c:c + w]
    return out


def rise_map(model, image: np.ndarray, mask: np.ndarray, class_index: int, target: str, options: RISEOptions,
             progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Raw RISE map (H×W, float64 sums) of the adapter score; `mask` is the region at output size."""
    x = np.asarray(image, dtype=np.float32)
    size = x.shape[:2]
    mask_plan = plan(size, options)
    score = engine.of(model).region_scores(target)
    mask = np.asarray(mask, np.float32)
    batch = options.batch_size or DEFAULT_BATCH_SIZE
    total = np.zeros(size, np.float64)
    for start in range(0, options.masks, batch):
        stop = min(start + batch, options.masks)
        m = masks(mask_plan, size, start, stop)
        values = score(x[None] * m[..., None], mask, class_index).astype(np.float64)
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        total += np.tensordot(values, m.astype(np.float64), axes=(0, 0))
        if progress is not None:
            progress(stop / options.masks)
    return total / (options.masks * options.p)


def run(model, inputs, layer, options: RISEOptions, progress=None) -> RawMap:
    """The registry's entry point: RISE of the adapter score for validated `inputs`."""
    options, warnings = memory.resolve(model, inputs, options, "RISE", DEFAULT_BATCH_SIZE, backward=False)
    raw = rise_map(model, inputs.image, inputs.grid, inputs.class_index, inputs.target, options, progress)
    text = (f"RISE attributes to input pixels (layer-free, no gradients): {options.masks} random masks of "
            f"{options.cells}×{options.cells} cells (kept with p={options.p:g}, upsampled bilinearly, randomly "
            f"shifted; seed {options.seed}); map = Σ adapter region score (class {inputs.target}) of the masked "
            "image × mask / (N·p), rescaled to [0, 1].")
    return RawMap(heatmap=raw.astype(np.float32), layer_map=None, options=options, description=text,
                  warnings=warnings)


def status(options: RISEOptions) -> str:
    return f"RISE: {options.masks} random masks…"
