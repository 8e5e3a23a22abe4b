"""Can a map be trusted? Adebayo et al.'s model-parameter randomisation test for a drawn region.

Why: deletion/insertion says which map moves the score, not whether a map reflects the network at all.
Adebayo et al. (NeurIPS 2018) re-initialise the weights layer by layer from the output towards the input
and compare each method's map with the original one: a map that stays the same while the network
becomes random shows the image (edges, colour blobs), not what the network learned.

How: the weights are randomised on a *copy* of the model (the user's model is never touched) through a
small engine interface, `RandomizationEngine`: "the weighted layers from output to input" and "the copy
with these layers re-initialised". `KerasEngine` implements it here; another framework adds its own
engine to `ENGINES`. Each step's maps come from the public `api.explain` on that copy, with the same
region, class, layer and options, so every method, its memory budget (`explainers.memory`) and its
progress work as they do for the user's model.

Measures (Adebayo et al.'s): Spearman rank correlation (`metrics.rank_correlation`) and SSIM
(`skimage.metrics.structural_similarity`, 7×7 uniform window, data range 1, the maps being in [0, 1])
between the original map and the map after each step; a random map (uniform noise per pixel, seeded)
against another one gives the floor. See docs/DESIGN.md for the verdict's threshold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from explainers import metrics, registry
from explainers.errors import ExplainerError

CASCADING, INDEPENDENT = "cascading", "independent"
MODES = (CASCADING, INDEPENDENT)
REINITIALISE, PERMUTE = "reinitialise", "permute"
INITS = (REINITIALISE, PERMUTE)
MAX_STEPS = 16  # more weighted layers than this are grouped into this many steps
RANDOM = "random"  # the floor's key in `spearman` and `ssim`
# The verdict: a method whose map keeps a Spearman correlation of at least this with its original at
# every step (in cascading mode: even with every layer random) "barely changes".
BARELY_CHANGES_RHO = 0.5
CHANGES = "changes as the network is randomised"
BARELY = "barely changes: this map shows the image more than the network"
FLAT = "no verdict: the trained network's map is flat (all zero) here, so there is nothing to compare"


class RandomizationEngine(Protocol):
    """What the check needs from a framework: layer names and a re-initialised copy."""

    def weighted_layers(self) -> list[str]:
        """Names of the layers that hold weights, from the output towards the input (unique names)."""

    def randomized(self, layers: Sequence[str], seed: int) -> Any:
        """A model to explain: a copy of the user's model with `layers` re-initialised (the same values
        for the same layer and seed), every other layer as trained. May return the same copy object
        each time; the user's model is never changed."""


class KerasEngine:
    """`RandomizationEngine` for Keras models: functional, Sequential, nested sub-models.

    One copy (`keras.models.clone_model`, else rebuilt from its config) whose variables are reassigned
    before each step, so compiled functions built for it are reused between steps (TensorFlow functions
    read variables, not their values at tracing time). Nested sub-models are walked into: their layers
    count one by one, under the names they have inside the sub-model (as `explainers.graph` names them).
    """

    def __init__(self, model, init: str = REINITIALISE) -> None:
        import keras

        from explainers import graph, working_size

        if init not in INITS:
            raise ExplainerError(f"init must be one of {', '.join(INITS)}, got {init!r}.")
        self.init = init
        try:
            copy = keras.models.clone_model(model)
        except Exception:  # noqa: BLE001 (some subclassed functional models only clone from their config)
            copy = model.__class__.from_config(model.get_config())
        originals = _leaf_layers(model)
        self._layers = _leaf_layers(copy)
        if len(originals) != len(self._layers) or len(model.weights) != len(copy.weights):
            raise ExplainerError("This model could not be copied for the randomisation check (its copy has "
                                 "other layers or weights).")
        copy.set_weights(model.get_weights())
        for layer, (h, w, skip) in graph._USER_GRIDS.get(model, {}).items():  # token grids given by the user
            graph.set_token_grid(copy, layer, (h, w), skip)
        chosen = working_size.chosen(model)  # a free-size model's copy works at the same size
        working_size.set_working_size(copy, chosen.longest, chosen.fit)
        self.model = copy
        self._trained = [[np.array(v) for v in layer.get_weights()] for layer in self._layers]
        self._names = [layer.name for layer in self._layers]
        self._current: tuple[tuple[str, ...], int] | None = None
        self._drawn: dict[tuple[int, int], list[np.ndarray]] = {}  # (layer index, seed) → its random weights

    def weighted_layers(self) -> list[str]:
        names = [n for n, layer in zip(self._names, self._layers, strict=True) if _randomizable(layer)]
        seen: set[str] = set()
        return [n for n in reversed(names) if not (n in seen or seen.add(n))]

    def randomized(self, layers: Sequence[str], seed: int):
        key = (tuple(layers), int(seed))
        if key == self._current:
            return self.model
        wanted = set(layers)
        for index, (name, layer) in enumerate(zip(self._names, self._layers, strict=True)):
            trained = self._trained[index]
            if name in wanted and _randomizable(layer):
                if (index, int(seed)) not in self._drawn:
                    rng = np.random.default_rng([int(seed), index])
                    self._drawn[index, int(seed)] = [self._random(layer, variable, value, rng) for variable, value
                                                     in zip(layer.weights, trained, strict=True)]
                layer.set_weights(self._drawn[index, int(seed)])
            else:
                layer.set_weights(trained)
        self._current = key
        return self.model

    def _random(self, layer, variable, value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A fresh draw from the layer's own initialiser for this weight (Adebayo et al.'s re-initialisation);
        a permutation of the trained values when there is none or `init` is "permute"."""
        if self.init == REINITIALISE:
            short = variable.name.split("/")[-1].split(":")[0]
            initializer = getattr(layer, f"{short}_initializer", None)
            if initializer is not None:
                import keras

                try:
                    config = initializer.get_config()
                    if "seed" in config:
                        config["seed"] = int(rng.integers(2**31 - 1))
                    fresh = type(initializer).from_config(config)
                    return np.asarray(keras.ops.convert_to_numpy(fresh(value.shape, dtype=str(value.dtype))))
                except Exception:  # noqa: BLE001 (an initialiser that cannot be rebuilt: permute instead)
                    pass
        return rng.permutation(value.ravel()).reshape(value.shape).astype(value.dtype)


def _leaf_layers(model) -> list:
    """Every layer that is not itself a model, in the model's (topological) order, nested ones expanded."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _randomizable(layer) -> bool:
    """A layer whose weights the network learned (not a preprocessing layer's statistics)."""
    import keras

    return bool(layer.weights) and not isinstance(layer, keras.layers.Normalization | keras.layers.Rescaling)


def _keras_engine(model, init: str) -> RandomizationEngine | None:
    try:
        import keras
    except ImportError:
        return None
    return KerasEngine(model, init) if isinstance(model, keras.Model) else None


# Engine factories, tried in order: (model, init) → engine or None (not this framework's model).
ENGINES: list[Callable[[Any, str], RandomizationEngine | None]] = [_keras_engine]


def engine_for(model, init: str = REINITIALISE) -> RandomizationEngine:
    """The engine for `model`'s framework (ExplainerError when none accepts it)."""
    for factory in ENGINES:
        engine = factory(model, init)
        if engine is not None:
            return engine
    raise ExplainerError(f"The randomisation check has no engine for a {type(model).__name__} model.")


def group_layers(layers: Sequence[str], max_steps: int | None = MAX_STEPS) -> list[tuple[str, ...]]:
    """Consecutive groups (output first) of about equal size: one layer per step up to `max_steps`."""
    if max_steps is not None and max_steps < 1:
        raise ExplainerError(f"max_steps must be at least 1, got {max_steps}.")
    n = len(layers)
    count = n if max_steps is None else min(n, int(max_steps))
    bounds = [round(i * n / count) for i in range(count + 1)] if count else [0]
    return [tuple(layers[bounds[i]:bounds[i + 1]]) for i in range(count)]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two maps in [0, 1] (Wang et al. 2004, as `skimage.metrics.structural_similarity` with a
    uniform 7×7 window, or the largest odd window that fits a smaller map; data range 1)."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ExplainerError(f"SSIM compares two maps of one H×W shape, got {a.shape} and {b.shape}.")
    side = min(7, min(a.shape) - (1 - min(a.shape) % 2))
    if side < 3:
        raise ExplainerError(f"SSIM needs maps of at least 3×3 pixels, got {a.shape}.")
    return float(structural_similarity(a, b, win_size=side, data_range=1.0))


@dataclass(frozen=True)
class Verdict:
    method: str
    changes: bool | None  # None: no verdict (the original map is flat)
    lowest_rho: float
    text: str


@dataclass
class RandomizationResult:
    """One randomisation check. `steps[k]`: the layer names random at step k (in cascading mode every
    layer so far, output first; in independent mode that step's layers only). `spearman[m][k]` and
    `ssim[m][k]`: method m's map after step k against its original map; key `RANDOM` is the floor.
    `maps[m][k]` the map after step k and `original[m]` the map of the trained network (H×W in [0, 1])."""

    mode: str
    layer: str | None
    class_index: int
    methods: tuple[str, ...]
    steps: list[tuple[str, ...]]
    groups: list[tuple[str, ...]]
    spearman: dict[str, list[float]]
    ssim: dict[str, list[float]]
    original: dict[str, np.ndarray]
    maps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    seed: int = 0
    init: str = REINITIALISE
    seconds: float = 0.0

    def labels(self) -> list[str]:
        """A short label per step: the layers that step adds ("a" or "a … b (n layers)")."""
        return [g[0] if len(g) == 1 else f"{g[0]} … {g[-1]} ({len(g)} layers)" for g in self.groups]

    def verdict(self, method: str) -> Verdict:
        original = self.original[method]
        if original.size and original.min() == original.max():
            return Verdict(method, None, float("nan"), FLAT)
        return verdict(method, self.spearman[method])

    def rows(self) -> list[dict]:
        """One row per method (and the floor) and step: method, step (1-based), layers, spearman, ssim."""
        return [dict(method=m, step=k + 1, layers=" ".join(self.groups[k]), spearman=self.spearman[m][k],
                     ssim=self.ssim[m][k]) for m in (*self.methods, RANDOM) for k in range(len(self.steps))]


def verdict(method: str, rhos: Sequence[float]) -> Verdict:
    """"changes" when the map's Spearman ρ with its original falls below `BARELY_CHANGES_RHO` at some step."""
    lowest = float(min(rhos)) if len(rhos) else 1.0
    changes = lowest < BARELY_CHANGES_RHO
    return Verdict(method, changes, lowest, CHANGES if changes else BARELY)


def randomization_check(
    model,
    image,
    region,
    class_index: int,
    layer: str | None = None,
    methods: Sequence[str] = ("gradcam", "gradcam++", "vinogradova"),
    seed: int = 0,
    *,
    mode: str = CASCADING,
    max_steps: int | None = MAX_STEPS,
    init: str = REINITIALISE,
    target: str = "logits",
    options: Mapping[str, Any] | None = None,
    keep_maps: bool = True,
    progress: Callable[[float], None] | None = None,
    engine: RandomizationEngine | None = None,
) -> RandomizationResult:
    """Randomise the weights of a copy of `model` step by step from the output (`mode` "cascading":
    cumulatively; "independent": one group at a time, the rest as trained) and compare each method's
    map with the trained network's (Adebayo et al. 2018). Same region, class, layer (None: the default
    layer) and `options` as `api.explain`. Weighted layers are grouped into at most `max_steps` steps.
    Deterministic for a `seed` (the re-initialised weights and the floor's random maps).
    `progress(fraction)` in [0, 1] over the whole check (slow methods report inside each step)."""
    from explainers import api, graph

    if mode not in MODES:
        raise ExplainerError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    methods = tuple(registry.check_methods(methods))
    engine = engine if engine is not None else engine_for(model, init)
    start = time.perf_counter()
    trained = engine.randomized((), seed)
    if layer is None and any(not registry.get(m).layer_free for m in methods):
        layer = graph.default_layer(trained)
    groups = group_layers(engine.weighted_layers(), max_steps)
    if not groups:
        raise ExplainerError("This model has no weighted layer to randomise.")
    if mode == CASCADING:
        steps = [tuple(name for g in groups[:k + 1] for name in g) for k in range(len(groups))]
    else:
        steps = list(groups)
    total = len(steps) + 1

    def run(net, index: int) -> dict:
        part = None if progress is None else (lambda f: progress(min((index + f) / total, 1.0)))
        out = api.explain(net, image, region, class_index, layer, methods, target=target, options=options,
                          progress=part)
        if progress is not None:
            progress((index + 1) / total)
        return out

    first = run(trained, 0)
    original = {m: first[m].heatmap for m in methods}
    rng = np.random.default_rng([int(seed), 7])
    shape = next(iter(original.values())).shape
    floor = rng.random(shape)
    spearman: dict[str, list[float]] = {m: [] for m in (*methods, RANDOM)}
    similarity: dict[str, list[float]] = {m: [] for m in (*methods, RANDOM)}
    maps: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    notes: dict[str, list[str]] = {m: [] for m in methods}
    for index, names in enumerate(steps, start=1):
        got = run(engine.randomized(names, seed), index)
        for m in methods:
            heat = got[m].heatmap
            spearman[m].append(metrics.rank_correlation(original[m], heat))
            similarity[m].append(ssim(original[m], heat))
            if keep_maps:
                maps[m].append(heat)
            notes[m].extend(f"step {index}: {w.message}" for w in got[m].warnings)
        other = rng.random(shape)
        spearman[RANDOM].append(metrics.rank_correlation(floor, other))
        similarity[RANDOM].append(ssim(floor, other))
    engine.randomized((), seed)  # the copy back to the trained weights
    return RandomizationResult(
        mode=mode, layer=layer if any(not registry.get(m).layer_free for m in methods) else None,
        class_index=int(class_index), methods=methods, steps=steps, groups=groups, spearman=spearman,
        ssim=similarity, original=original, maps=maps, warnings={m: v for m, v in notes.items() if v}, seed=seed,
        init=init, seconds=time.perf_counter() - start)


def aggregate(results: Sequence[Mapping[str, Sequence[float]]]) -> dict[str, list[float]]:
    """Mean per method and step over several checks' `spearman` (or `ssim`) curves of the same length."""
    out: dict[str, list[float]] = {}
    for name in dict.fromkeys(k for r in results for k in r):
        curves = [list(r[name]) for r in results if name in r]
        length = min(len(c) for c in curves)
        out[name] = [float(np.mean([c[k] for c in curves])) for k in range(length)]
    return out
