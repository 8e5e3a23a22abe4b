"""Checking the inputs every method shares, once: model, image, region, class and target.

Why its own module: `explain`, the faithfulness scores and the batch CLI all need the same checks and
the same region on the model's output grid; the maths modules then assume clean inputs. Every
message says what the user should change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explainers import engine, graph, model_files, regions, working_size
from explainers.caching import PerModel
from explainers.errors import ExplainerError
from explainers.results import REGION_RESIZED, REGION_TOUCHED, MapWarning

TARGETS = ("logits", "probabilities")


@dataclass(frozen=True)
class Inputs:
    """Validated inputs: float image H×W×C, the region at image size and on the output grid.

    For a free-size model `image` and `region` are at the working size of `plan` (`working_size`), whose
    `to_image` puts a map back on the image as given; `plan` is None for fixed-size models."""

    image: np.ndarray
    region: np.ndarray
    grid: np.ndarray
    class_index: int
    target: str
    summary: graph.ModelSummary
    grid_warning: MapWarning | None
    plan: working_size.Plan | None = None

    def to_image(self, values: np.ndarray) -> np.ndarray:
        """A map at the working size on the image as the user gave it (unchanged without a plan)."""
        return values if self.plan is None else self.plan.to_image(values)


def summary(model) -> graph.ModelSummary:
    return engine.of(model).summary()


def image(model, image, model_summary: graph.ModelSummary | None = None) -> np.ndarray:
    """The image as an array with the model's channels and input size, or an ExplainerError."""
    model_summary = model_summary or summary(model)
    arr = np.asarray(image)
    if arr.ndim == 2 and model_summary.channels == 1:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] != model_summary.channels:
        raise ExplainerError(
            f"The image has shape {arr.shape} but the model expects {model_summary.channels} channel(s): "
            "pass an H×W×3 uint8 RGB image, or convert it with explainers.fit_image(model, image)."
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ExplainerError(f"The image has dtype {arr.dtype}: pass a uint8 image with values 0-255.")
    h, w = model_summary.input_size
    if (h is not None and arr.shape[0] != h) or (w is not None and arr.shape[1] != w):
        raise ExplainerError(
            f"The image is {arr.shape[0]}×{arr.shape[1]} but the model takes {h}×{w}: "
            "resize it first with explainers.fit_image(model, image)."
        )
    if not np.all(np.isfinite(arr)):
        raise ExplainerError("The image contains NaN or infinite values: pass a uint8 image with values 0-255.")
    if None in (h, w):  # free-size models: every layer output at the working size, before anything runs
        fitted = working_size.plan(model, arr.shape[:2], (h, w))
        model_files.check_run_size(model, *fitted.size)
    return arr


def region(region, image_shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(region)
    if arr.shape != tuple(image_shape):
        raise ExplainerError(
            f"The region has shape {arr.shape} but the image is {image_shape[0]}×{image_shape[1]}: "
            "draw the region on this image (a boolean mask of the image's height × width)."
        )
    arr = arr.astype(bool)
    if not arr.any():
        raise ExplainerError("The region is empty: draw over at least one pixel of the predicted mask.")
    return arr


def class_index(value, num_classes: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ExplainerError(f"The class index {value!r} is not an integer: pass 0 to {num_classes - 1}.")
    if not 0 <= int(value) < num_classes:
        raise ExplainerError(
            f"Class index {value} is out of range: this model has {num_classes} classes, "
            f"so pass 0 to {num_classes - 1}."
        )
    return int(value)


def target(value: str) -> str:
    if value not in TARGETS:
        raise ExplainerError(f"Unknown target {value!r}: use 'logits' (default) or 'probabilities'.")
    return value


_OUTPUT_SIZES = PerModel()


def output_size(model, image_size: tuple[int, int]) -> tuple[int, int]:
    """The output grid for an image of this size (static models: from the graph; dynamic: inferred once)."""

    def infer() -> tuple[int, int]:
        return engine.of(model).output_size(tuple(image_size))

    return _OUTPUT_SIZES.get(model, tuple(image_size), infer)


def grid_warning(rule: str, size: tuple[int, int]) -> MapWarning | None:
    """The warning for how `regions.to_grid` resized a region (None when it did not)."""
    h, w = size
    if rule == "nearest":
        return MapWarning(REGION_RESIZED, f"The region was resized to the model's {h}×{w} output grid (nearest "
                                          "neighbour).")
    if rule == "touched":
        return MapWarning(REGION_TOUCHED, f"The region was resized to the model's {h}×{w} output grid (every "
                                          "cell it touches).")
    return None


def prepare(model, image_in, region_in, class_in, target_in: str) -> Inputs:
    """Check everything once; a free-size model's image and region go to its working size
    (`working_size`), and the region onto the model's output grid."""
    model_summary = summary(model)
    arr = image(model, image_in, model_summary)
    mask = region(region_in, arr.shape[:2])
    index = class_index(class_in, model_summary.num_classes)
    target(target_in)
    work = arr.astype(np.float32)
    fitted = working_size.plan(model, arr.shape[:2], model_summary.input_size)
    if fitted is not None and not fitted.identity:
        work, mask = fitted.to_work(work), fitted.region_to_work(mask)
        if not mask.any():
            raise ExplainerError(f"The region lies outside the {fitted.size[1]}×{fitted.size[0]} crop the network "
                                 "works on: draw it nearer the middle, or choose the fit 'pad' or 'stretch'.")
    size = output_size(model, work.shape[:2])
    grid, rule = regions.to_grid(mask, size)
    return Inputs(image=work, region=mask, grid=grid, class_index=index, target=target_in,
                  summary=model_summary, grid_warning=grid_warning(rule, size), plan=fitted)
