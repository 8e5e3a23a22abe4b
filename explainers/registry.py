"""The method registry: one record per method, the only list of methods in the project.

A record says what a method is called and how it is shown (`name`, `label`), how it runs (`family`:
"cam" methods share the one compiled pass of `cams`, the others have a `run` function), whether it
needs a layer and whether it is slow, its options dataclass (defaults and checks live there), how it
is normalised, and its progress text (`status`). The API, the dashboard, the export, the batch CLI and
the benchmarks read methods, labels, defaults and descriptions from here.

Adding a method: write one module (its maths, its options class, `run` or a CAM subclass) and add one
`Method(...)` line below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from explainers import cams, methods_input, rise, scorecam, segxrescam, xrai
from explainers import options as opts
from explainers.errors import ExplainerError

CAM = "cam"  # one shared forward+backward pass (gradient CAMs)
SCORE_CAM = "score-cam"  # masked forward passes, at a layer
ATTRIBUTION = "attribution"  # input gradients, layer-free
PERTURBATION = "perturbation"  # random masks, layer-free, no gradients


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    label: str
    family: str
    layer_free: bool
    slow: bool
    options: type = opts.NoOptions
    normalise: str = "max"  # "max": ReLU then / max; "minmax": (x − min) / (max − min)
    make_cam: Callable[[Any], cams.CAM] | None = None  # family CAM: options → CAM object of the shared pass
    run: Callable[..., Any] | None = None  # other families: (model, inputs, layer, options, progress) → RawMap
    status: Callable[[Any], str] | None = None  # progress heading of a slow method
    previews: bool = False  # `run` takes `preview=` and may hand out an early, cheaper map first

    @property
    def short_label(self) -> str:
        """The label without its citation ("Seg-Grad-CAM")."""
        return self.label.split(" (")[0]

    def make_options(self, value: Any = None) -> Any:
        """The options object from an instance, a dict of its fields, or None (defaults); validated."""
        return opts.from_value(self.options, value, self.label)

    def defaults(self) -> dict[str, Any]:
        """The default value of every option, e.g. {"steps": 100, "algorithm": "full", "batch_size": None}."""
        return opts.as_dict(self.options())


_P = methods_input.PathOptions
_TABLE = (
    Method("gradcam", "Grad-CAM", CAM, False, False, make_cam=cams.plain(cams.GradCAM)),
    Method("gradcam++", "Grad-CAM++", CAM, False, False, cams.GradCAMPlusPlusOptions, make_cam=cams.gradcampp),
    Method("xrai", "XRAI", ATTRIBUTION, True, True, xrai.XRAIOptions, "minmax", run=xrai.run, status=xrai.status,
           previews=True),
    Method("vinogradova", "Seg-Grad-CAM (Vinogradova et al.)", CAM, False, False, make_cam=cams.plain(cams.SegGradCAM)),
    Method("hirescam", "HiResCAM", CAM, False, False, make_cam=cams.plain(cams.HiResCAM)),
    Method("layercam", "LayerCAM", CAM, False, False, make_cam=cams.plain(cams.LayerCAM)),
    Method("xgradcam", "XGrad-CAM", CAM, False, False, make_cam=cams.plain(cams.XGradCAM)),
    Method("contrastive-gradcam", "Contrastive Grad-CAM (after MinMax-CAM)", CAM, False, False,
           make_cam=cams.plain(cams.ContrastiveGradCAM)),
    Method("seg-xres-cam", "Seg-XRes-CAM (Hasany et al.)", CAM, False, False, segxrescam.SegXResCAMOptions,
           make_cam=segxrescam.make),
    Method("scorecam", "Score-CAM", SCORE_CAM, False, True, scorecam.ScoreCAMOptions, run=scorecam.run,
           status=scorecam.status),
    Method("integrated-gradients", "Integrated Gradients", ATTRIBUTION, True, True, _P,
           run=methods_input.runner("integrated-gradients"), status=methods_input.status("integrated-gradients")),
    Method("smoothgrad", "SmoothGrad", ATTRIBUTION, True, True, methods_input.SmoothGradOptions,
           run=methods_input.runner("smoothgrad"), status=methods_input.status("smoothgrad")),
    Method("guided-ig", "Guided Integrated Gradients", ATTRIBUTION, True, True, _P,
           run=methods_input.runner("guided-ig"), status=methods_input.status("guided-ig")),
    Method("blur-ig", "Blur Integrated Gradients", ATTRIBUTION, True, True, _P,
           run=methods_input.runner("blur-ig"), status=methods_input.status("blur-ig")),
    Method("rise", "RISE (Petsiuk et al.)", PERTURBATION, True, True, rise.RISEOptions, "minmax", run=rise.run,
           status=rise.status),
)

METHODS: dict[str, Method] = {m.name: m for m in _TABLE}
ALL_METHODS: tuple[str, ...] = tuple(METHODS)
DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "xrai", "vinogradova")  # the default view
CAM_METHODS: tuple[str, ...] = tuple(m.name for m in _TABLE if m.family == CAM)
FAST_METHODS: tuple[str, ...] = tuple(m.name for m in _TABLE if not m.slow)
SLOW_METHODS: tuple[str, ...] = tuple(m.name for m in _TABLE if m.slow)
LAYER_FREE_METHODS: tuple[str, ...] = tuple(m.name for m in _TABLE if m.layer_free)
METHOD_LABELS: dict[str, str] = {m.name: m.label for m in _TABLE}


def get(name: str) -> Method:
    if name not in METHODS:
        raise ExplainerError(f"Unknown method {name!r}: choose from {', '.join(ALL_METHODS)}.")
    return METHODS[name]


def label(name: str) -> str:
    return METHODS[name].label if name in METHODS else name


def check_methods(methods: str | Sequence[str], allowed: Sequence[str] = ALL_METHODS) -> tuple[str, ...]:
    """The methods as a tuple without repeats, or an ExplainerError naming the unknown ones."""
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in allowed]
    if unknown or not methods:
        raise ExplainerError(
            f"Unknown or missing method(s) {unknown or list(methods)}: choose from {', '.join(allowed)}."
        )
    return methods


def options_for(methods: Sequence[str], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated options object of every method in `methods` (defaults where `given` has none)."""
    given = dict(given or {})
    stray = [name for name in given if name not in METHODS]
    if stray:
        raise ExplainerError(f"Options given for unknown method(s) {', '.join(stray)}: use method names such as "
                             f"{', '.join(ALL_METHODS[:4])}.")
    return {name: METHODS[name].make_options(given.get(name)) for name in methods}


def default(method: str, option: str) -> Any:
    """One option's default, e.g. `default("scorecam", "channels")` → 64."""
    return get(method).defaults()[option]
