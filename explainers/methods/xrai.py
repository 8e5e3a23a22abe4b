"""XRAI for a region, through the segmentation adapter, with PAIR's `saliency.core.XRAI`.

Why this shape: XRAI = Integrated Gradients (two baselines × `steps` gradient evaluations) ranked over
Felzenszwalb regions. Almost all the time is in those gradients and in the segmentation, so the
gradient of the adapter's region score is one compiled, batched function
(`scores.input_gradient_function`: fixed input signature, no retracing for new regions, classes or
batch sizes), and the segments, which depend only on the image, are computed once per image and handed
back to the library with `segments=`. The batch size defaults to what the memory budget allows
(`memory.choose_batch`), at most 50.

`call_model_function` (the `saliency.core` call-model function over that gradient) is shared with the
input-gradient methods in `methods_input`.

A caller that wants something on screen early (the dashboard) passes `preview`: it first gets PAIR's
XRAI at `preview_steps(steps)` steps, whose integration points are every d-th point of the full run's
(d divides steps − 1), so the full run then reuses those gradients (`_Reuse`); what the preview adds
is its own region selection (`benchmarks.xrai_speed` measures the whole: about 1.1× the run without).
Without `preview` the gradients are computed in the same order and the same batches (the preview's
points first, through PAIR's Integrated Gradients, then the rest), only the preview's region selection
is left out: so the batches, and the forward passes kept for them, are the same whether or not a run
shows a preview, and a caller can decide run by run.

In a process that keeps forward passes (`forward_cache.enable`, as the dashboard's worker does), each
gradient batch's forward pass is kept, and after `explainers.prepare_image` has laid in an image's
batches a new region or class costs only the backward passes: the same map, about 0.75× the time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import saliency.core as saliency
from saliency.core.xrai import _get_segments_felzenszwalb

from explainers import engine, forward_cache, memory
from explainers import options as opts
from explainers.caching import LRU, array_digest
from explainers.forward_cache import ForwardCache
from explainers.results import NON_FINITE_GRADIENTS, MapWarning, RawMap

ALGORITHMS = ("full", "fast")
DEFAULT_STEPS = 100
DEFAULT_BATCH_SIZE = 50
_SEGMENTS = LRU(16)  # shared by every dashboard session's thread


@dataclasses.dataclass(frozen=True)
class XRAIOptions:
    """`steps` IG points per baseline (≥ 2), `algorithm` "full" or "fast", `batch_size` (None: from memory)."""

    steps: int = opts.option(DEFAULT_STEPS, "XRAI integration steps", "Integrated-gradient steps per baseline (two "
                             "baselines). 100 is the usual choice.", low=2, high=500, step=10)
    algorithm: str = opts.option("full", "XRAI region selection", "'full' grows regions greedily by attribution "
                                 "density; 'fast' is much cheaper.", kind="choice", choices=ALGORITHMS)
    batch_size: int | None = opts.option(None, "batch size", "Images per pass; auto: the largest that fits the memory budget.", low=1, page=False, optional=True)

    def __post_init__(self) -> None:
        opts.set_field(self, "steps", opts.whole(self.steps, "steps", 2, "XRAI"))
        opts.choice(self.algorithm, "algorithm", "XRAI", ALGORITHMS)
        opts.set_field(self, "batch_size", opts.batch(self.batch_size, "batch_size", "XRAI"))


def call_model_function(model, target: str = "logits", progress: Callable[[], None] | None = None,
                        kept: ForwardCache | None = None):
    """A `saliency.core` call-model function; `call_model_args` holds `mask` (output size) and `class_index`.

    Non-finite gradients (a model whose logits overflow float32) are set to 0 before PAIR's code sees
    them, since its XRAI region selection fails on NaN gains; `call.nonfinite` counts how many were.
    With `kept` (a `forward_cache.ForwardCache`) each batch's forward pass is kept there and a batch
    seen before costs only its backward pass.
    """
    gradients = engine.of(model).input_gradients(target)

    def compute(x: np.ndarray, mask: np.ndarray, class_index: int) -> np.ndarray:
        if kept is not None:
            grads = kept.input_gradients(model, target, x, mask, class_index)
            if grads is not None:
                return grads
        return gradients(x, mask, class_index)

    def call(x_batch, call_model_args=None, expected_keys=None):
        args = call_model_args or {}
        grads = compute(np.asarray(x_batch, dtype=np.float32), np.asarray(args["mask"], dtype=np.float32),
                        int(args["class_index"]))
        bad = ~np.isfinite(grads)
        if bad.any():
            call.nonfinite += int(bad.sum())
            grads = np.where(bad, np.float32(0.0), grads)
        if progress is not None:
            progress()
        return {saliency.INPUT_OUTPUT_GRADIENTS: grads}

    call.nonfinite = 0
    return call


PREVIEW_FRACTION = 1 / 8  # a preview uses about this share of the full run's gradients
MIN_PREVIEW_STEPS = 4


def preview_steps(steps: int) -> int | None:
    """The step count of the preview of an XRAI run of `steps` steps, or None when there is none.

    PAIR integrates at `np.linspace(0, 1, steps)`; `linspace(0, 1, p)` is every d-th of those points
    exactly when d = (steps − 1) / (p − 1) is a whole number. Of those p, the one nearest to
    `PREVIEW_FRACTION` of `steps`, at least `MIN_PREVIEW_STEPS` and at most a quarter of `steps`
    (100 steps → 12: every 9th point)."""
    if steps < 4 * MIN_PREVIEW_STEPS:
        return None
    candidates = [(steps - 1) // d + 1 for d in range(2, steps) if (steps - 1) % d == 0]
    fitting = [p for p in candidates if MIN_PREVIEW_STEPS <= p <= steps // 4]
    return min(fitting, key=lambda p: abs(p - PREVIEW_FRACTION * steps)) if fitting else None


class _Reuse:
    """A call-model function that, while `remember` is on, keeps each input row's gradient by the row's
    float32 bytes, and serves rows it has seen from memory.

    The full run after a preview asks again for the preview's points (the same arithmetic on the same
    alphas gives the same float32 input); a row that differs in a single bit is computed afresh, so
    the maps never depend on the reuse. `rows` counts the gradients actually computed."""

    def __init__(self, call) -> None:
        self.call, self.known, self.rows, self.remember = call, {}, 0, True

    def __call__(self, x_batch, call_model_args=None, expected_keys=None):
        x = np.asarray(x_batch, dtype=np.float32)
        keys = [row.tobytes() for row in x]
        missing = [i for i, k in enumerate(keys) if k not in self.known]
        grads = np.empty_like(x)
        if missing:
            grads[missing] = self.call(x[missing], call_model_args, expected_keys)[saliency.INPUT_OUTPUT_GRADIENTS]
            self.rows += len(missing)
        for i, k in enumerate(keys):
            if k in self.known:
                grads[i] = self.known[k]
            elif self.remember:
                self.known[k] = grads[i].copy()
        return {saliency.INPUT_OUTPUT_GRADIENTS: grads}


def segments(image: np.ndarray) -> list[np.ndarray]:
    """The library's Felzenszwalb segments for this image, cached by its bytes (they depend on nothing else)."""
    return _SEGMENTS.get_or_compute(array_digest(image),
                                    lambda: _get_segments_felzenszwalb(np.array(image, dtype=np.float32)))


def xrai_map(
    model,
    image: np.ndarray,
    mask: np.ndarray,
    class_index: int,
    target: str = "logits",
    steps: int = DEFAULT_STEPS,
    algorithm: str = "full",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[float], None] | None = None,
    notes: list[MapWarning] | None = None,
    preview: Callable[[np.ndarray, int], None] | None = None,
) -> np.ndarray:
    """Raw XRAI attribution (H×W) of the adapter's region score; `mask` is at the model's output size.

    Settings are assumed valid (`XRAIOptions` checks them). When the model's gradients were not
    finite, a warning saying so is appended to `notes` (if given). `preview(raw map, its steps)`, if
    given, first receives PAIR's XRAI at `preview_steps(steps)` steps (see the module docstring).
    """
    x = np.asarray(image, dtype=np.float32)
    if float(np.ptp(x)) == 0.0:
        # Both baselines equal the image (zero IG) and Felzenszwalb's min-max scaling would divide by 0.
        if progress is not None:
            progress(1.0)
        return np.zeros(x.shape[:2], dtype=np.float32)
    early = preview_steps(steps)
    total = 2 * steps + 1  # gradient rows of the two baselines, then segments + selection (as much as a row)
    done = [0]

    def tick(rows: int) -> None:
        done[0] += rows
        if progress is not None:
            progress(min(done[0] / total, 1.0))

    call = call_model_function(model, target,
                               kept=forward_cache.active() if engine.of(model).keeps_forward_passes else None)
    counted = _Reuse(call) if early is not None else call

    def counting(x_batch, call_model_args=None, expected_keys=None):
        before = counted.rows if early is not None else 0
        out = counted(x_batch, call_model_args, expected_keys)
        tick(counted.rows - before if early is not None else len(x_batch))
        return out

    args = {"mask": mask, "class_index": class_index}

    def run(run_steps: int) -> np.ndarray:
        params = saliency.XRAIParameters(steps=run_steps, algorithm=algorithm)
        return np.asarray(saliency.XRAI().GetMask(
            x, counting, args, segments=segments(image), batch_size=batch_size, extra_parameters=params),
            dtype=np.float32)

    def coarse_first(run_steps: int) -> None:
        for baseline in (np.full_like(x, np.min(x)), np.full_like(x, np.max(x))):  # XRAI's default baselines
            saliency.IntegratedGradients().GetMask(x, counting, args, x_baseline=baseline, x_steps=run_steps,
                                                   batch_size=batch_size)

    if early is not None:
        if preview is not None:
            preview(run(early), early)
        else:  # the same gradients, in the same batches, without the preview's region selection
            coarse_first(early)
        counted.remember = False
    result = run(steps)
    if call.nonfinite and notes is not None:
        notes.append(nonfinite_warning(call.nonfinite))
    if progress is not None:
        progress(1.0)
    return result


def nonfinite_warning(count: int) -> MapWarning:
    return MapWarning(NON_FINITE_GRADIENTS,
                      f"{count} non-finite input gradient value(s) (e.g. overflowing logits) were set to 0.")


def run(model, inputs, layer: str | None, options: XRAIOptions, progress=None,
        preview: Callable[[RawMap], None] | None = None) -> RawMap:
    """The registry's entry point: XRAI of the adapter score for validated `inputs`; `preview`, if
    given, first receives the RawMap of the preview run (see the module docstring)."""
    options, warnings = memory.resolve(model, inputs, options, "XRAI", DEFAULT_BATCH_SIZE)

    def described(raw: np.ndarray, steps: int, notes: list[MapWarning]) -> RawMap:
        text = (
            f"XRAI attributes to input pixels (layer-free): Integrated Gradients of the adapter's region "
            f"score (class {inputs.target}; {steps} steps; baselines filled with the image's min and max), "
            f"ranked over Felzenszwalb regions ('{options.algorithm}'), rescaled to [0, 1]."
        )
        if steps != options.steps:
            text += f" Preview: {steps} of the {options.steps} steps; the full map follows."
        run_options = options if steps == options.steps else dataclasses.replace(options, steps=steps)
        return RawMap(heatmap=raw, layer_map=None, options=run_options, description=text, warnings=list(notes),
                      preview=steps != options.steps)

    early = None if preview is None else (lambda raw, steps: preview(described(raw, steps, list(warnings))))
    raw = xrai_map(model, inputs.image, inputs.grid, inputs.class_index, inputs.target, options.steps,
                   options.algorithm, options.batch_size, progress, notes=warnings, preview=early)
    return described(raw, options.steps, warnings)


def status(options: XRAIOptions) -> str:
    return f"XRAI: {options.steps} steps × 2 baselines…"
