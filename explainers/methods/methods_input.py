"""Input-gradient attributions for a region: Integrated Gradients, SmoothGrad, Guided IG and Blur IG.

Why this shape: all four are PAIR `saliency.core` methods that only need ∂(region score)/∂(input), so
they run through the same compiled, batched adapter gradient as XRAI (`xrai.call_model_function`);
there is no second gradient path to keep in step. Like XRAI they are layer-free.

Settings (the same for every model, so maps are comparable):
- Integrated Gradients: straight path from a black baseline (zeros) to the image, `steps` points.
- SmoothGrad: mean of the plain input gradients at `samples` noisy copies of the image, noise
  σ = `noise` × (max − min of the image), as in Smilkov et al. (PAIR's `magnitude=False`; the squared
  variant is not used). The noise comes from NumPy's legacy generator seeded with `seed`, so a map is
  reproducible; the global generator's state is restored afterwards.
- Guided IG (Kapishnikov et al.): black baseline, `steps` steps, PAIR's defaults fraction 0.25 and
  max_dist 0.02.
- Blur IG (Xu et al.): path from a Gaussian blur of σ = `max_sigma` to the image, `steps` evenly
  spaced σ values (PAIR's `sqrt=False`), gradient step 0.01.
The attribution has the image's shape (H×W×C); the map is |attribution| summed over the colour
channels (`to_heatmap`), which the API divides by its maximum. Path methods take `PathOptions`
(steps, batch size: None = what the memory budget allows, at most 25), SmoothGrad `SmoothGradOptions`.

saliency 0.2.1's Guided IG calls `np.quantile(..., interpolation=...)`, a keyword NumPy 2 removed; on
such NumPy versions this module points that one module's `np` at a thin proxy whose `quantile` maps
the keyword to `method=` (same values, same result). Nothing else in NumPy or saliency is changed.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import threading
from collections.abc import Callable

import numpy as np
import saliency.core as saliency
import saliency.core.guided_ig as _guided_ig

from explainers import memory
from explainers import options as opts
from explainers.errors import ExplainerError
from explainers.methods import xrai
from explainers.results import RawMap

INPUT_METHODS = ("integrated-gradients", "smoothgrad", "guided-ig", "blur-ig")
DEFAULT_STEPS = 50
DEFAULT_BATCH_SIZE = 25
DEFAULT_SAMPLES = 25
DEFAULT_NOISE = 0.15
GUIDED_FRACTION = 0.25
GUIDED_MAX_DIST = 0.02
BLUR_MAX_SIGMA = 50.0
BLUR_GRAD_STEP = 0.01
_RNG_LOCK = threading.Lock()


class _NumpyWithLegacyQuantile:
    """Forwards every attribute to NumPy, except `quantile`, which accepts the old `interpolation=`."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, *args, interpolation=None, **kwargs):
        if interpolation is not None:
            kwargs.setdefault("method", interpolation)
        return np.quantile(a, q, *args, **kwargs)


if "interpolation" not in inspect.signature(np.quantile).parameters and _guided_ig.np is np:
    _guided_ig.np = _NumpyWithLegacyQuantile()


@dataclasses.dataclass(frozen=True)
class PathOptions:
    """Integrated Gradients, Guided IG, Blur IG: `steps` path points (≥ 2), `batch_size` (None: memory)."""

    steps: int = opts.option(DEFAULT_STEPS, "path steps", "Path points of the integral (one gradient each).",
                             low=2, high=500, step=10)
    batch_size: int | None = opts.option(None, "batch size", "Images per pass; auto: the largest that fits the memory budget.", low=1, page=False, optional=True)

    def __post_init__(self) -> None:
        opts.set_field(self, "steps", opts.whole(self.steps, "steps", 2, "Integrated Gradients"))
        opts.set_field(self, "batch_size", opts.batch(self.batch_size, "batch_size", "Integrated Gradients"))


@dataclasses.dataclass(frozen=True)
class SmoothGradOptions:
    """`samples` noisy copies (≥ 1), `noise` σ as a fraction of the value range (≥ 0), `seed` of the noise."""

    samples: int = opts.option(DEFAULT_SAMPLES, "SmoothGrad samples", "Noisy copies averaged by SmoothGrad (one "
                               "gradient each).", low=1, high=500, step=5)
    noise: float = opts.option(DEFAULT_NOISE, "SmoothGrad noise", "σ of the noise as a fraction of the value "
                               "range.", kind="float", low=0.0, page=False)
    seed: int = opts.option(0, "SmoothGrad seed", "Seed of the noise.", low=0, page=False)

    def __post_init__(self) -> None:
        opts.set_field(self, "samples", opts.whole(self.samples, "samples", 1, "SmoothGrad"))
        opts.set_field(self, "noise", opts.number(self.noise, "noise", "SmoothGrad", 0.0))
        opts.set_field(self, "seed", opts.whole(self.seed, "seed", 0, "SmoothGrad"))


def _calls(method: str, steps: int, batch_size: int, samples: int) -> int:
    """How many gradient batches a method asks for (for progress reporting)."""
    if method == "smoothgrad":
        return samples
    if method == "guided-ig":
        return steps
    return math.ceil(steps / batch_size)


def attribution(
    model,
    image: np.ndarray,
    mask: np.ndarray,
    class_index: int,
    method: str,
    target: str = "logits",
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    samples: int = DEFAULT_SAMPLES,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Raw H×W×C attribution of the adapter's region score; `mask` is the region at the model's output size."""
    if method not in INPUT_METHODS:
        raise ExplainerError(f"Unknown input-gradient method {method!r}: choose from {', '.join(INPUT_METHODS)}.")
    x = np.asarray(image, dtype=np.float32)
    total, done = _calls(method, steps, batch_size, samples), [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(min(done[0] / total, 1.0))

    call = xrai.call_model_function(model, target, tick)
    args = {"mask": mask, "class_index": int(class_index)}
    if method == "integrated-gradients":
        result = saliency.IntegratedGradients().GetMask(
            x, call, args, x_baseline=np.zeros_like(x), x_steps=steps, batch_size=batch_size
        )
    elif method == "smoothgrad":
        with _RNG_LOCK:  # PAIR draws the noise from NumPy's global generator: seed it, then restore it
            state = np.random.get_state()  # noqa: NPY002
            np.random.seed(seed)  # noqa: NPY002
            try:
                result = saliency.GradientSaliency().GetSmoothedMask(
                    x, call, args, stdev_spread=noise, nsamples=samples, magnitude=False
                )
            finally:
                np.random.set_state(state)  # noqa: NPY002
    elif method == "guided-ig":
        result = saliency.GuidedIG().GetMask(
            x, call, args, x_baseline=np.zeros_like(x), x_steps=steps, fraction=GUIDED_FRACTION,
            max_dist=GUIDED_MAX_DIST,
        )
    else:
        result = saliency.BlurIG().GetMask(
            x, call, args, max_sigma=BLUR_MAX_SIGMA, steps=steps, grad_step=BLUR_GRAD_STEP, sqrt=False,
            batch_size=batch_size,
        )
    if progress is not None:
        progress(1.0)
    return np.asarray(result, dtype=np.float32)


def to_heatmap(attr: np.ndarray) -> np.ndarray:
    """H×W×C attribution → H×W map: absolute value summed over the channels (not yet normalised)."""
    attr = np.nan_to_num(np.asarray(attr, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.abs(attr).sum(axis=-1) if attr.ndim == 3 else np.abs(attr)


_LABELS = {"integrated-gradients": "Integrated Gradients", "smoothgrad": "SmoothGrad",
           "guided-ig": "Guided Integrated Gradients", "blur-ig": "Blur Integrated Gradients"}


def _how(method: str, options) -> str:
    if method == "smoothgrad":
        return f"mean gradient over {options.samples} noisy copies, noise {options.noise:g} × the value range"
    path = {"integrated-gradients": "the straight path from a black image", "guided-ig": "the guided path from a "
            "black image", "blur-ig": f"the path from a blurred (σ={BLUR_MAX_SIGMA:g}) image"}[method]
    return f"{options.steps} steps on {path}"


def runner(method: str):
    """The registry's entry point for one of `INPUT_METHODS`."""

    def run(model, inputs, layer, options, progress=None) -> RawMap:
        warnings = []
        if isinstance(options, PathOptions):
            options, warnings = memory.resolve(model, inputs, options, _LABELS[method], DEFAULT_BATCH_SIZE)
            steps, batch_size, samples, noise, seed = options.steps, options.batch_size, 1, 0.0, 0
        else:
            memory.fitting_batch(model, inputs.image.shape[:2], _LABELS[method])  # one image at a time
            steps, batch_size, samples, noise, seed = 2, 1, options.samples, options.noise, options.seed
        raw = attribution(model, inputs.image, inputs.grid, inputs.class_index, method, inputs.target, steps,
                          batch_size, samples, noise, seed, progress)
        text = (f"{_LABELS[method]} attributes to input pixels (layer-free) of the adapter's region score "
                f"(class {inputs.target}; {_how(method, options)}); |attribution| summed over colour channels, "
                "divided by its maximum.")
        return RawMap(heatmap=to_heatmap(raw), layer_map=None, options=options, description=text, warnings=warnings)

    return run


def status(method: str):
    def text(options) -> str:
        if method == "smoothgrad":
            return f"SmoothGrad: {options.samples} noisy samples…"
        return f"{_LABELS[method]}: {options.steps} steps…"

    return text
