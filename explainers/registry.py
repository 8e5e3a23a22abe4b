"""The method registry: one record per method, the only list of methods in the project.

A record says what a method is called and how it is shown (`name`, `label`), how it runs (`family`:
"cam" methods share the one compiled pass of `cams`, the others have a `run` function), whether it
needs a layer and whether it is slow, its options dataclass (defaults and checks live there), how it
is normalised, and its progress text (`status`). The API, the dashboard, the export, the batch CLI and
the benchmarks read methods, labels, defaults and descriptions from here.

Besides how it runs, a record carries what the page and the library would otherwise guess from its name
(its traits): the score it explains (`score`, None for a method that explains none), how the drawn region
enters it (`region`), the units it shares with other methods (`units`), whether it prepares the image
(`prepares`), whether its map depends on the score's scale (`scale_dependent`) and which methods give the
same map, and why (`same_as`).

Adding a method: write one module (its maths, its options class, `run` or a CAM subclass; shipped ones live in
`explainers/methods/`) and add one `Method(...)` line below, or call `register(Method(...))` from outside (`unregister(name)` removes it).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from explainers import options as opts
from explainers.errors import ExplainerError
from explainers.methods import cams, methods_input, rise, scorecam, segxrescam, xrai

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
    # Traits (what the page and the notes say about the method; nothing here changes its maths):
    score: str | None = "adapter"  # the score it explains: "adapter", "region sum", "contrastive"; None: no score
    region: str = "averaged"  # how the region enters: "averaged" (channel weights averaged over it: blind to it
    #   when only position-wise layers follow the layer), "position-wise" (each position by its own gradient),
    #   "input" (scores of changed inputs), "none"
    units: str = ""  # methods with the same non-empty units have raw maps of one scale (the page's common scale)
    prepares: bool = False  # has image-only work (slow) the page asks for before a region is drawn
    scale_dependent: bool = False  # its map changes when the score is multiplied by a constant
    same_as: tuple[tuple[str, str], ...] = ()  # (other method, why their maps are equal by construction)

    @property
    def short_label(self) -> str:
        """The label without its citation ("Seg-Grad-CAM")."""
        return self.label.split(" (")[0]

    @property
    def differentiates(self) -> bool:
        """Whether the method takes a gradient of its score (Score-CAM and RISE read theirs by forward passes)."""
        return self.score is not None and self.family not in (SCORE_CAM, PERTURBATION)

    def make_options(self, value: Any = None) -> Any:
        """The options object from an instance, a dict of its fields, or None (defaults); validated."""
        return opts.from_value(self.options, value, self.label)

    def defaults(self) -> dict[str, Any]:
        """The default value of every option, e.g. {"steps": 100, "algorithm": "full", "batch_size": None}."""
        return opts.as_dict(self.options())


_P = methods_input.PathOptions
# Gradient CAMs of the adapter's score whose weights are linear in the gradient: activation × gradient of one score.
_LINEAR = "activation × gradient of the adapter score"
_SCALE_FREE = ("Seg-Grad-CAM scores the class summed over the region; the adapter's Grad-CAM scores it averaged over "
               "the output grid. The two scores differ by a constant factor, which Grad-CAM's channel weights carry "
               "through and the normalisation removes, so the maps are equal by construction (Humer et al.).")
_TABLE = (
    Method("gradcam", "Grad-CAM", CAM, False, False, make_cam=cams.plain(cams.GradCAM), units=_LINEAR,
           same_as=(("vinogradova", _SCALE_FREE),)),
    Method("gradcam++", "Grad-CAM++", CAM, False, False, cams.GradCAMPlusPlusOptions, make_cam=cams.gradcampp,
           scale_dependent=True),
    Method("xrai", "XRAI", ATTRIBUTION, True, True, xrai.XRAIOptions, "minmax", run=xrai.run, status=xrai.status,
           previews=True, region="input", prepares=True),
    Method("vinogradova", "Seg-Grad-CAM (Vinogradova et al.)", CAM, False, False, make_cam=cams.plain(cams.SegGradCAM),
           score="region sum", same_as=(("gradcam", _SCALE_FREE),)),
    Method("hirescam", "HiResCAM", CAM, False, False, make_cam=cams.plain(cams.HiResCAM), units=_LINEAR,
           region="position-wise"),
    Method("layercam", "LayerCAM", CAM, False, False, make_cam=cams.plain(cams.LayerCAM), units=_LINEAR,
           region="position-wise"),
    Method("xgradcam", "XGrad-CAM", CAM, False, False, make_cam=cams.plain(cams.XGradCAM), units=_LINEAR),
    Method("contrastive-gradcam", "Contrastive Grad-CAM (after MinMax-CAM)", CAM, False, False,
           make_cam=cams.plain(cams.ContrastiveGradCAM), score="contrastive"),
    Method("seg-xres-cam", "Seg-XRes-CAM (Hasany et al.)", CAM, False, False, segxrescam.SegXResCAMOptions,
           make_cam=segxrescam.make, score="region sum", region="position-wise"),
    Method("scorecam", "Score-CAM", SCORE_CAM, False, True, scorecam.ScoreCAMOptions, run=scorecam.run,
           status=scorecam.status, region="input"),
    Method("integrated-gradients", "Integrated Gradients", ATTRIBUTION, True, True, _P,
           run=methods_input.runner("integrated-gradients"), status=methods_input.status("integrated-gradients"),
           region="input"),
    Method("smoothgrad", "SmoothGrad", ATTRIBUTION, True, True, methods_input.SmoothGradOptions,
           run=methods_input.runner("smoothgrad"), status=methods_input.status("smoothgrad"), region="input"),
    Method("guided-ig", "Guided Integrated Gradients", ATTRIBUTION, True, True, _P,
           run=methods_input.runner("guided-ig"), status=methods_input.status("guided-ig"), region="input"),
    Method("blur-ig", "Blur Integrated Gradients", ATTRIBUTION, True, True, _P,
           run=methods_input.runner("blur-ig"), status=methods_input.status("blur-ig"), region="input"),
    Method("rise", "RISE (Petsiuk et al.)", PERTURBATION, True, True, rise.RISEOptions, "minmax", run=rise.run,
           status=rise.status, region="input"),
)

METHODS: dict[str, Method] = {m.name: m for m in _TABLE}
DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "xrai", "vinogradova")  # the default view
# Derived name lists, rebuilt by `register` / `unregister` (read them as `registry.X` at call time).
ALL_METHODS: tuple[str, ...] = ()
CAM_METHODS: tuple[str, ...] = ()  # family CAM: the gradient CAMs of the one shared pass
LAYER_FREE_METHODS: tuple[str, ...] = ()
METHOD_LABELS: dict[str, str] = {}


def _derive() -> None:
    """Rebuild the derived lists from `METHODS` (the label dict is updated in place: modules hold it)."""
    global ALL_METHODS, CAM_METHODS, LAYER_FREE_METHODS
    records = tuple(METHODS.values())
    ALL_METHODS = tuple(METHODS)
    CAM_METHODS = tuple(m.name for m in records if m.family == CAM)
    LAYER_FREE_METHODS = tuple(m.name for m in records if m.layer_free)
    METHOD_LABELS.clear()
    METHOD_LABELS.update({m.name: m.label for m in records})


_derive()


# name → the module that registered it (`register`), for methods added from outside the package. A process that
# explains on another one's behalf (the dashboard's worker, a Ray actor) imports these modules first (`modules_for`,
# `import_modules`): a method is one module plus one registration, so importing the module registers it there too.
REGISTERED_BY: dict[str, str] = {}


def register(method: Method, module: str | None = None) -> Method:
    """Add a method from outside the package (e.g. a plug-in module); its name must be new and it must
    say how it runs (`make_cam` for family "cam", else `run`). `module` (default: the calling module's
    name) is the importable module whose import registers it: other processes import it by that name."""
    if not isinstance(method, Method):
        raise ExplainerError(f"register() takes a registry.Method, got {type(method).__name__}.")
    if method.name in METHODS:
        raise ExplainerError(f"A method named {method.name!r} is registered already: unregister it first.")
    if (method.make_cam if method.family == CAM else method.run) is None:
        raise ExplainerError(f"{method.name}: a method of family {method.family!r} needs "
                             f"{'make_cam' if method.family == CAM else 'run'}.")
    METHODS[method.name] = method
    REGISTERED_BY[method.name] = module if module is not None else sys._getframe(1).f_globals.get("__name__", "")
    _derive()
    return method


def unregister(name: str) -> None:
    """Remove a method added by `register` (the shipped ones stay: they are the defaults' basis)."""
    if name in {m.name for m in _TABLE}:
        raise ExplainerError(f"{name!r} is a shipped method and cannot be unregistered.")
    REGISTERED_BY.pop(name, None)
    if METHODS.pop(name, None) is not None:
        _derive()


def modules_for(methods: Sequence[str]) -> tuple[tuple[str, str | None], ...]:
    """(module name, the `sys.path` entry it was imported from or None) of each module that registered one of
    `methods` from outside the package: what a worker process or Ray actor imports before it explains them.
    Only modules imported in this process (`sys.modules`) and importable by name (not `__main__`); shipped
    methods need none. Plain names and paths: no code is pickled."""
    found: list[tuple[str, str | None]] = []
    for name in dict.fromkeys(methods):
        module = REGISTERED_BY.get(name)
        loaded = sys.modules.get(module or "")
        if not module or module == "__main__" or loaded is None or any(m == module for m, _ in found):
            continue
        found.append((module, _import_root(module, getattr(loaded, "__file__", None))))
    return tuple(found)


def _import_root(module: str, path: str | None) -> str | None:
    """The folder `module` is found under (its file's folder, one level up per dot of its name)."""
    if not path:
        return None
    root = os.path.dirname(os.path.abspath(path))
    if os.path.basename(path).startswith("__init__."):
        root = os.path.dirname(root)
    for _ in range(module.count(".")):
        root = os.path.dirname(root)
    return root


def import_modules(modules: Sequence[tuple[str, str | None]]) -> None:
    """Import, by name, the modules that registered methods in the process that sent them (`modules_for`), so
    their methods are registered here too; a module imported already is left alone. Its folder is added to the
    end of `sys.path` when it is not there (a Ray actor starts with the package's path only)."""
    for module, root in modules:
        if module in sys.modules:
            continue
        if root and os.path.isdir(root) and root not in sys.path:
            sys.path.append(root)
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ExplainerError(f"The module {module!r} that registered a method could not be imported in this "
                                 f"process ({error}); make it importable here (e.g. on PYTHONPATH).") from None


def common_units(methods: Sequence[str]) -> dict[str, str]:
    """method → its units, for the given methods that share units with another method of the registry."""
    counts: dict[str, int] = {}
    for m in METHODS.values():
        if m.units:
            counts[m.units] = counts.get(m.units, 0) + 1
    return {name: METHODS[name].units for name in methods
            if name in METHODS and METHODS[name].units and counts[METHODS[name].units] > 1}


def why_same(first: str, second: str) -> str | None:
    """Why two methods give the same map by construction (from either record), or None."""
    for a, b in ((first, second), (second, first)):
        if a in METHODS:
            for other, why in METHODS[a].same_as:
                if other == b:
                    return why
    return None


def get(name: str) -> Method:
    """The record of `name`, or an ExplainerError naming the methods."""
    if name not in METHODS:
        raise ExplainerError(f"Unknown method {name!r}: choose from {', '.join(ALL_METHODS)}.")
    return METHODS[name]


def label(name: str) -> str:
    """The method's label (the name itself for an unknown one)."""
    return METHODS[name].label if name in METHODS else name


def check_methods(methods: str | Sequence[str], allowed: Sequence[str] | None = None) -> tuple[str, ...]:
    """The methods as a tuple without repeats, or an ExplainerError naming the unknown ones
    (`allowed`: default every registered method)."""
    allowed = ALL_METHODS if allowed is None else allowed
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


def options_from_text(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{method: {field: value}} from "METHOD.FIELD=VALUE" texts (the batch CLI's `--option`), each value
    parsed by its field's kind and the whole set checked by the method's options class."""
    given: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        name, dot, field = key.strip().partition(".")
        if not sep or not dot or not name or not field:
            raise ExplainerError(f"{item!r} is not METHOD.FIELD=VALUE (e.g. xrai.steps=20).")
        method = get(name)
        given.setdefault(name, {})[field] = opts.parse(method.options, field, text.strip(), method.label)
    for name, fields in given.items():
        get(name).make_options(fields)  # the options class's own checks, one sentence
    return given
