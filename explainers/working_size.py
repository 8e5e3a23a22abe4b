"""The size a free-input-size network works at, and the way back to the image as the user gave it.

Why: a network with input `(None, None, 3)` accepts any size in its signature, but a decoder that
concatenates a downsampled-then-upsampled branch with a skip fails unless each side is a multiple of
its output stride (a 300×451 photo gives 75×113 against 76×116). So `inputs.prepare` runs such a model
at a working size: aspect ratio kept, longest side `longest` (never above the image's own), each side a
multiple of the stride found from the model itself (`output_stride`), and the image fitted by
stretching, padding or cropping. `api` resizes every map back to the image's own size.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np

from explainers.caching import PerModel
from explainers.errors import ExplainerError

FITS = ("stretch", "pad", "crop")
DEFAULT_LONGEST = 512
DEFAULT_FIT = "pad"
PROBE = 512  # probe sides for the stride: a multiple of every power-of-two stride up to 512
_STRIDES = PerModel()
_CHOSEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class WorkingSize:
    """The user's choice: longest side of the working image (None: run at the image's own size) and the fit."""

    longest: int | None = DEFAULT_LONGEST
    fit: str = DEFAULT_FIT

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ExplainerError(f"Unknown fit {self.fit!r}: use one of {', '.join(FITS)}.")
        if self.longest is not None and (isinstance(self.longest, bool) or int(self.longest) < 1):
            raise ExplainerError(f"The working size {self.longest!r} is not a positive number of pixels: use e.g. 512.")


def set_working_size(model, longest: int | None = DEFAULT_LONGEST, fit: str = DEFAULT_FIT) -> WorkingSize:
    """Choose how a free-size `model` is run: longest side (None: the image's own size, unchanged) and
    fit ("stretch", "pad" or "crop"). Fixed-size models ignore it."""
    chosen = WorkingSize(None if longest is None else int(longest), fit)
    _CHOSEN[model] = chosen
    return chosen


def chosen(model) -> WorkingSize:
    """The working size chosen for `model` (default: longest side 512, pad)."""
    try:
        return _CHOSEN.get(model, WorkingSize())
    except TypeError:  # an object that cannot be weakly referenced
        return WorkingSize()


def _spatial_sizes(model, side_h: int, side_w: int) -> list[tuple[int, int]]:
    import keras

    from explainers import graph

    flat = graph.flatten(model)
    probe = keras.Model(flat.input, [*flat.taps.values(), flat.logits])
    spec = keras.KerasTensor((1, side_h, side_w, flat.input.shape[-1] or 3))
    outputs = keras.tree.flatten(probe.compute_output_spec(spec))
    return [(int(o.shape[1]), int(o.shape[2])) if len(o.shape) == 4 and None not in o.shape[1:3] else (0, 0)
            for o in outputs]


def output_stride(model) -> int:
    """The network's own output stride: the largest input/output ratio among its layer outputs whose size
    follows the input's (a global pooling to 1×1 does not count), from a symbolic pass at two probe
    sizes (shapes only, nothing computed). 1 for fixed-size models; 32 when shapes cannot be inferred."""

    def find() -> int:
        try:
            small = _spatial_sizes(model, PROBE, PROBE)
            large = _spatial_sizes(model, 2 * PROBE, 2 * PROBE)
        except Exception:  # a graph whose shapes cannot be inferred symbolically
            return 32
        ratios = [PROBE / h for (h, w), (h2, w2) in zip(small, large, strict=True)
                  if h and w and (h2, w2) == (2 * h, 2 * w)]
        return max(1, round(max(ratios, default=1.0)))

    return _STRIDES.get(model, "stride", find)


def _multiple(value: float, stride: int, rounding) -> int:
    return max(stride, int(rounding(value / stride)) * stride)


@dataclass(frozen=True)
class Plan:
    """How one image of `image_size` becomes the working image of `size` and how maps go back.

    `scaled`: the image resized with its aspect ratio kept; pad places it at `offset` inside `size`, crop
    takes `size` from it at `offset`; stretch resizes it to `size` directly."""

    image_size: tuple[int, int]
    size: tuple[int, int]
    scaled: tuple[int, int]
    offset: tuple[int, int]
    fit: str
    stride: int

    @property
    def identity(self) -> bool:
        return self.size == self.image_size and self.scaled == self.image_size

    def describe(self) -> str:
        h, w = self.size
        return (f"worked at {w}×{h} px ({self.fit}; sides multiples of the network's output stride "
                f"{self.stride}), maps resized back to {self.image_size[1]}×{self.image_size[0]}")

    def to_work(self, image: np.ndarray) -> np.ndarray:
        """The H×W×C image (float) as the network's working input."""
        if self.identity:
            return image
        if self.fit == "stretch":
            return _resize(image, self.size)
        scaled = _resize(image, self.scaled)
        return self._place(scaled, 0.0)

    def region_to_work(self, region: np.ndarray) -> np.ndarray:
        """A bool H×W region on the working image (nearest neighbour; pad adds no pixel)."""
        from explainers import regions

        if self.identity:
            return region
        if self.fit == "stretch":
            return regions.resample_nearest(region, self.size)
        return self._place(regions.resample_nearest(region, self.scaled), False)

    def _place(self, scaled: np.ndarray, fill) -> np.ndarray:
        top, left = self.offset
        h, w = self.size
        if self.fit == "crop":
            return scaled[top:top + h, left:left + w]
        out = np.full((h, w, *scaled.shape[2:]), fill, dtype=scaled.dtype)
        out[top:top + self.scaled[0], left:left + self.scaled[1]] = scaled
        return out

    def to_image(self, values: np.ndarray, nearest: bool = False, fill: float = 0.0) -> np.ndarray:
        """A map (h×w or h×w×C) at the working size back on the image as given; with crop the parts
        outside the crop get `fill`."""
        from explainers import regions

        if self.identity:
            return values
        resize = (lambda a, s: regions.resample_nearest(a, s)) if nearest else _resize
        if self.fit == "stretch":
            return resize(values, self.image_size)
        top, left = self.offset
        if self.fit == "pad":
            window = values[top:top + self.scaled[0], left:left + self.scaled[1]]
        else:
            window = np.full((*self.scaled, *values.shape[2:]), fill, dtype=values.dtype)
            window[top:top + self.size[0], left:left + self.size[1]] = values
        return resize(window, self.image_size)


def _resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import tensorflow as tf

    arr = np.asarray(values, np.float32)
    if arr.shape[:2] == tuple(size):
        return arr
    flat = arr.ndim == 2
    out = tf.image.resize(arr[..., None] if flat else arr, size, method="bilinear", antialias=True).numpy()
    return out[..., 0] if flat else out


def plan_for(image_size: tuple[int, int], stride: int, choice: WorkingSize) -> Plan:
    """The plan for an image of `image_size` (pure arithmetic; see the module docstring)."""
    height, width = (int(v) for v in image_size)
    stride = max(1, int(stride))
    if choice.longest is None:  # the image's own size, as before
        return Plan((height, width), (height, width), (height, width), (0, 0), choice.fit, stride)
    longest = max(stride, min(int(choice.longest), max(height, width)))
    scale = longest / max(height, width)
    rh, rw = max(1, round(height * scale)), max(1, round(width * scale))
    if choice.fit == "stretch":
        size = (_multiple(rh, stride, round), _multiple(rw, stride, round))
        return Plan((height, width), size, size, (0, 0), "stretch", stride)
    if choice.fit == "pad":
        size = (_multiple(rh, stride, math.ceil), _multiple(rw, stride, math.ceil))
        offset = ((size[0] - rh) // 2, (size[1] - rw) // 2)
        return Plan((height, width), size, (rh, rw), offset, "pad", stride)
    size = (_multiple(rh, stride, math.floor), _multiple(rw, stride, math.floor))
    grow = max(size[0] / rh, size[1] / rw, 1.0)  # a side shorter than one stride: scale up to cover it
    scaled = (max(size[0], math.ceil(rh * grow)), max(size[1], math.ceil(rw * grow)))
    offset = ((scaled[0] - size[0]) // 2, (scaled[1] - size[1]) // 2)
    return Plan((height, width), size, scaled, offset, "crop", stride)


def plan(model, image_size: tuple[int, int], input_size: tuple[int | None, int | None]) -> Plan | None:
    """The plan for `model` (None for a fixed-size model: `fit_image` already gave its size)."""
    if None not in tuple(input_size):
        return None
    choice = chosen(model)
    stride = output_stride(model) if choice.longest is not None else 1
    return plan_for(image_size, stride, choice)
