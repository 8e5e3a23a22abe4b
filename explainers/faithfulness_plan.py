"""How the faithfulness scores fit the memory budget: smaller batches first, then a smaller image.

Why: deletion and insertion score 2 × (steps + 1) perturbed copies of the image per map. A big network
at 512² needs more memory for one copy than the budget (`explainers.memory`) allows, and refusing left
the page with no way forward. So the copies are scored in batches that fit; when even one copy does
not fit, the image, the maps and the region are scored at a smaller size the network accepts (both
sides a multiple of its largest stride, the aspect ratio kept), and the result says so in a note. A
network that only takes one input size cannot be scored smaller: then the refusal says to raise the
budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from explainers import inputs, memory, regions, working_size
from explainers.errors import ExplainerError

METHOD = "The faithfulness score"


@dataclass(frozen=True)
class ScoringPlan:
    """Where and how the perturbed images are scored: `size` (h, w) and `batch_size` images per pass.

    `note` says, for people, what was reduced and why ("" when the image is scored as given in the
    usual batches).
    """

    size: tuple[int, int]
    image_size: tuple[int, int]
    batch_size: int
    note: str = ""

    @property
    def reduced(self) -> bool:
        return self.size != self.image_size


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f} MB"


def _fits(model, size: tuple[int, int]) -> int:
    """Images of `size` per forward pass within the budget (0 when not even one)."""
    return int(memory.current_budget() // max(memory.bytes_per_image(model, size, backward=False), 1))


def _smaller_size(model, size: tuple[int, int]) -> tuple[int, int] | None:
    """The largest size below `size` (aspect ratio kept, sides multiples of the stride) where one image fits."""
    multiple = working_size.output_stride(model)  # sides that pass the same poolings and skip joins
    h, w = size
    per_pixel = memory.bytes_per_image(model, size, backward=False) / (h * w)
    scale = math.sqrt(memory.current_budget() / max(per_pixel * h * w, 1))
    while scale > 0:
        candidate = (int(h * scale) // multiple * multiple, int(w * scale) // multiple * multiple)
        if min(candidate) < multiple:
            return None
        if _fits(model, candidate) >= 1:
            return candidate
        scale *= 0.9
    return None


def plan(model, image_size: tuple[int, int], default: int) -> ScoringPlan:
    """The scoring plan for an image of `image_size`: the largest batch (≤ `default`) that fits the budget
    at full size; if one image does not fit, the largest smaller size where it does. ExplainerError when
    the network takes one input size only, or no size down to its stride fits."""
    image_size = (int(image_size[0]), int(image_size[1]))
    limit = memory.current_budget()
    fit = _fits(model, image_size)
    if fit >= 1:
        batch = min(default, fit)
        note = "" if batch >= default else (
            f"Scored {batch} perturbed image{'s' if batch != 1 else ''} per batch (not {default}) to stay within "
            f"the memory budget of {_mb(limit)}.")
        return ScoringPlan(image_size, image_size, batch, note)
    per_image = memory.bytes_per_image(model, image_size, backward=False)
    h, w = image_size
    fixed = None not in tuple(inputs.summary(model).input_size)
    if fixed:
        raise ExplainerError(
            f"{METHOD} needs about {_mb(per_image)} per image for this model at {h}×{w}, more than the memory "
            f"budget of {_mb(limit)}, and the model only takes {h}×{w} images: raise the budget "
            "(SEGEXPLAIN_MEMORY_BUDGET_MB or explainers.memory.budget).")
    smaller = _smaller_size(model, image_size)
    if smaller is None:
        raise ExplainerError(
            f"{METHOD} needs about {_mb(per_image)} per image for this model at {h}×{w} and does not fit the "
            f"memory budget of {_mb(limit)} even at the network's smallest input size: raise the budget "
            "(SEGEXPLAIN_MEMORY_BUDGET_MB or explainers.memory.budget).")
    batch = min(default, _fits(model, smaller))
    note = (f"Scored at {smaller[0]}×{smaller[1]} instead of {h}×{w} (image, maps and region resized), "
            f"{batch} image{'s' if batch != 1 else ''} per batch: one {h}×{w} image needs about {_mb(per_image)}, "
            f"more than the memory budget of {_mb(limit)}.")
    return ScoringPlan(smaller, image_size, batch, note)


def resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H×W or H×W×C float array averaged down (box filter) to `size`: images and maps keep their mass."""
    from PIL import Image

    array = np.asarray(array, dtype=np.float32)
    h, w = size
    channels = array[..., None] if array.ndim == 2 else array
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(channels[..., c]))
                               .resize((w, h), Image.BOX)) for c in range(channels.shape[-1])], axis=-1)
    return out[..., 0] if array.ndim == 2 else out


def resize_region(region: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The region at `size` by the library's one region-resizing rule (`regions.to_grid`: thin parts kept)."""
    grid, _rule = regions.to_grid(np.asarray(region, dtype=bool), tuple(size))
    return grid
