"""How faithful is a map to the model? Deletion/insertion curves, Average Drop and Increase in Confidence.

Side-by-side maps invite "which one should I believe?". These scores answer it for the drawn
region: a map is faithful when removing the pixels it ranks highest destroys the region score fast
(deletion) and revealing them first restores it fast (insertion). Everything here takes a
`score_fn(images) -> scores` callable (a batch of float images in, one region score per image out),
so it is independent of how the score is computed and testable with any model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from explainers.errors import ExplainerError

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Curve:
    """Region score after removing (deletion) or revealing (insertion) a growing fraction of pixels."""

    kind: str
    fractions: np.ndarray
    scores: np.ndarray
    auc: float


@dataclass(frozen=True)
class Faithfulness:
    """All faithfulness numbers of one map for one region, class and image.

    `note` says how the scores were made when the memory budget changed that (smaller batches, or a
    smaller image: `faithfulness_plan`), "" otherwise.
    """

    method: str
    deletion: Curve
    insertion: Curve
    average_drop: float
    increase_in_confidence: bool
    note: str = ""


def blurred(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """The replacement for removed pixels: a strongly blurred copy keeps colour statistics, not shapes."""
    from scipy.ndimage import gaussian_filter

    image = np.asarray(image, dtype=np.float32)
    sigma = sigma if sigma is not None else max(image.shape[:2]) / 12.0
    return gaussian_filter(image, sigma=(sigma, sigma, 0), mode="nearest")


def pixel_order(heatmap: np.ndarray) -> np.ndarray:
    """Flat pixel indices from most to least important; ties keep raster order, so it is deterministic."""
    return np.argsort(-np.asarray(heatmap, dtype=np.float64).ravel(), kind="stable")


def _curve(
    kind: str, image: np.ndarray, heatmap: np.ndarray, score_fn: ScoreFn, steps: int, base: np.ndarray
) -> Curve:
    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape[:2]
    if heatmap.shape != (h, w):
        raise ExplainerError(
            f"The map has shape {heatmap.shape} but the image is {h}×{w}: compute it for this image."
        )
    if steps < 1:
        raise ExplainerError("Use at least one step for deletion and insertion curves.")
    order = pixel_order(heatmap)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * h * w).astype(int)
    rank = np.empty(h * w, dtype=np.int64)
    rank[order] = np.arange(h * w)
    chosen = rank.reshape(h, w)[None] < counts[:, None, None]  # (steps+1, H, W): pixels already taken
    start, end = (image, base) if kind == "deletion" else (base, image)
    batch = np.where(chosen[..., None], end[None], start[None]).astype(np.float32)
    scores = np.asarray(score_fn(batch), dtype=np.float64).reshape(-1)
    auc = float(np.sum((scores[1:] + scores[:-1]) / 2 * np.diff(fractions)))
    return Curve(kind=kind, fractions=fractions, scores=scores, auc=auc)


def deletion_curve(
    image: np.ndarray, heatmap: np.ndarray, score_fn: ScoreFn, steps: int = 20, base: np.ndarray | None = None
) -> Curve:
    """Replace the highest-ranked pixels by the blurred image, step by step; lower area is better."""
    return _curve("deletion", image, heatmap, score_fn, steps, blurred(image) if base is None else base)


def insertion_curve(
    image: np.ndarray, heatmap: np.ndarray, score_fn: ScoreFn, steps: int = 20, base: np.ndarray | None = None
) -> Curve:
    """Start from the blurred image and reveal the highest-ranked pixels first; higher area is better."""
    return _curve("insertion", image, heatmap, score_fn, steps, blurred(image) if base is None else base)


def average_drop(full_score: float, masked_score: float) -> float:
    """Chattopadhay et al.'s drop in %, max(0, Y - O) / Y · 100, for one image; needs a positive score Y."""
    if not full_score > 0:
        raise ExplainerError(
            "Average Drop needs a positive region score on the full image: use the probability target, "
            "or a region the network predicts as this class."
        )
    return float(max(0.0, full_score - masked_score) / full_score * 100.0)


def evaluate(
    maps: Mapping[str, np.ndarray],
    image: np.ndarray,
    score_fn: ScoreFn,
    steps: int = 20,
    random_baseline: bool = True,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Faithfulness]:
    """Every faithfulness number for every map, plus a random map as the chance baseline.

    Average Drop and Increase in Confidence mask the image by the map (pixel values × map), as in
    Chattopadhay et al.; the full-image and masked scores come from the same `score_fn` batch, and
    the blurred image is made once for all maps. `progress` gets the fraction of maps done.
    """
    image = np.asarray(image, dtype=np.float32)
    maps = dict(maps)
    if random_baseline:
        maps["random"] = np.random.default_rng(seed).random(image.shape[:2]).astype(np.float32)
    base = blurred(image)
    names = list(maps)
    masked = np.stack([image] + [image * _unit(maps[name])[..., None] for name in names])
    scores = np.asarray(score_fn(masked), dtype=np.float64).reshape(-1)
    full, rest = scores[0], scores[1:]
    results = {}
    for name, masked_score in zip(names, rest, strict=True):
        results[name] = Faithfulness(
            method=name,
            deletion=deletion_curve(image, maps[name], score_fn, steps, base),
            insertion=insertion_curve(image, maps[name], score_fn, steps, base),
            average_drop=average_drop(full, masked_score) if full > 0 else float("nan"),
            increase_in_confidence=bool(masked_score > full),
        )
        if progress is not None:
            progress(len(results) / len(names))
    return results


def ranking(results: Mapping[str, Faithfulness]) -> list[dict]:
    """Rows for a table, best first: insertion AUC minus deletion AUC (higher means more faithful)."""
    rows = [
        {
            "method": name,
            "deletion_auc": r.deletion.auc,
            "insertion_auc": r.insertion.auc,
            "insertion_minus_deletion": r.insertion.auc - r.deletion.auc,
            "average_drop_pct": r.average_drop,
            "increase_in_confidence": r.increase_in_confidence,
        }
        for name, r in results.items()
    ]
    return sorted(rows, key=lambda row: -row["insertion_minus_deletion"])


def _unit(heatmap: np.ndarray) -> np.ndarray:
    heatmap = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0, None)
    peak = heatmap.max()
    return heatmap / peak if peak > 0 else heatmap


# ------------------------------------------------------------------ glue to a Keras model and the API
# Imports of the TensorFlow side stay inside the functions, so the curves above remain usable (and
# testable) with any score function and without loading a model.

SCORE_BATCH_SIZE = 32  # images per forward pass, unless the memory budget allows fewer


def region_score_function(model, region, class_index: int, target: str = "logits",
                          batch_size: int | None = None) -> ScoreFn:
    """`score_fn(images) -> scores`: the adapter's region score of `class_index` for a batch of images.

    `region` is a bool H×W mask at image size (put on the output grid by the same rule as `explain`);
    images are float N×H×W×C (or one H×W×C) in the model's input range. The score is the compiled,
    batched region score of the model's engine (`engine.Engine.region_scores`; Keras: compiled once), run `batch_size` images at a time
    (None: `SCORE_BATCH_SIZE` capped by the memory budget, `memory`).
    """
    from explainers import engine, inputs, memory, regions, working_size
    from explainers.errors import framework_errors

    summary = inputs.summary(model)
    region = np.asarray(region)
    h, w = summary.input_size
    if region.ndim != 2 or (h is not None and region.shape[0] != h) or (w is not None and region.shape[1] != w):
        raise ExplainerError(
            f"The region has shape {region.shape} but the model takes {h}×{w} images: "
            "pass a boolean mask of the (fitted) image's height × width."
        )
    region = inputs.region(region, region.shape)
    class_index = inputs.class_index(class_index, summary.num_classes)
    inputs.target(target)
    if not (batch_size is None or (isinstance(batch_size, int) and batch_size >= 1)):
        raise ExplainerError("Use a batch size of at least 1 for the region score.")
    plan = working_size.plan(model, region.shape, (h, w))  # a free-size model scores at its working size
    plan = None if plan is None or plan.identity else plan
    work = region if plan is None else plan.region_to_work(region)
    batch_size, _ = memory.choose_batch(model, work.shape, "The faithfulness score", batch_size, SCORE_BATCH_SIZE,
                                        backward=False)
    grid, _ = regions.to_grid(work, inputs.output_size(model, work.shape))
    fn = engine.of(model).region_scores(target)
    mask = grid.astype(np.float32)

    def score_fn(images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.shape[1:3] != region.shape:
            raise ExplainerError(
                f"The images are {batch.shape[1]}×{batch.shape[2]} but the region is "
                f"{region.shape[0]}×{region.shape[1]}: score images of the region's size."
            )
        if plan is not None:
            batch = np.stack([plan.to_work(one) for one in batch]) if len(batch) else batch
        with framework_errors(batch.shape[1:3]):
            parts = [fn(batch[i:i + batch_size], mask, class_index) for i in range(0, len(batch), batch_size)]
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)

    return score_fn


def evaluate_explanations(
    model,
    image,
    region,
    class_index: int,
    explanations: Mapping[str, object],
    steps: int = 20,
    target: str = "probabilities",
    random_baseline: bool = True,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Faithfulness]:
    """`evaluate` for the heatmaps of `explain(...)`'s Explanations, scored by the model on this region.

    The default target is the class probability (not the logits the maps usually explain): Average Drop
    and Increase in Confidence are defined on probabilities, and a probability score is positive. Pass
    `target="logits"` to score the logits instead (Average Drop is then NaN when the full score is ≤ 0).
    Within the memory budget (`faithfulness_plan.plan`): the perturbed images go in batches that fit;
    when one image does not, image, maps and region are scored at a smaller size, and each result's
    `note` says how it ran.
    """
    from explainers import faithfulness_plan, inputs, working_size

    arr = inputs.image(model, image).astype(np.float32)
    maps = {}
    for name, explanation in explanations.items():
        heatmap = getattr(explanation, "heatmap", explanation)
        maps[name] = np.asarray(heatmap, dtype=np.float32)
        if maps[name].shape != arr.shape[:2]:
            raise ExplainerError(f"The map {name!r} has shape {maps[name].shape} but the image is "
                                 f"{arr.shape[0]}×{arr.shape[1]}: compute it for this image.")
    if random_baseline and "random" in maps:
        raise ExplainerError("'random' is the name of the chance baseline: rename that map.")
    region = np.asarray(region)
    if region.shape != arr.shape[:2]:
        raise ExplainerError(f"The region has shape {region.shape} but the image is {arr.shape[0]}×{arr.shape[1]}: "
                             "pass a boolean mask of the (fitted) image's height × width.")
    working = working_size.plan(model, arr.shape[:2], inputs.summary(model).input_size)
    scored = arr.shape[:2] if working is None or working.identity else working.size  # what the network sees
    how = faithfulness_plan.plan(model, scored, SCORE_BATCH_SIZE)
    if how.reduced:
        arr = faithfulness_plan.resize(arr, how.size)
        maps = {name: faithfulness_plan.resize(heatmap, how.size) for name, heatmap in maps.items()}
        region = faithfulness_plan.resize_region(inputs.region(region, region.shape), how.size)
    score_fn = region_score_function(model, region, class_index, target, batch_size=how.batch_size)
    results = evaluate(maps, arr, score_fn, steps=steps, random_baseline=random_baseline, seed=seed, progress=progress)
    if how.note:
        results = {name: dataclasses.replace(result, note=how.note) for name, result in results.items()}
    return results
