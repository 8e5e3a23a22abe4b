"""Per-image trust numbers for the batch CLI's `--metrics` and `explainers.dataset_analysis`.

Why a module: the batch run writes one row per image and method; these are the columns it adds, from
the randomisation check (`randomization`) and, where the image has ground truth, the localisation
scores (`localization`) of each map on the true pixels of the explained class. The "random" row gets
the random map's numbers (the chance level, the floor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from explainers import localization, randomization

COLUMNS = ("mass_accuracy", "rank_accuracy", "energy_pointing_game", "pointing_game", "randomization_rho_min",
           "randomization_rho_last", "randomization_ssim_last")
RANDOM = randomization.RANDOM


def image_rows(model, image: np.ndarray, region: np.ndarray, class_index: int, explanations: Mapping[str, Any],
               truth: np.ndarray | None, *, layer: str | None = None, target: str = "logits",
               options: Mapping[str, Any] | None = None, steps: int = 4, seed: int = 0) -> dict[str, dict]:
    """method (and "random") → the trust columns available for this image (`COLUMNS`' names).

    `steps` = 0 skips the randomisation check; without `truth` (or no true pixel of the class) there
    are no localisation columns."""
    rows: dict[str, dict] = {m: {} for m in (*explanations, RANDOM)}
    target_mask = None if truth is None else np.asarray(truth) == int(class_index)
    if target_mask is not None and target_mask.any():
        heatmaps = {m: e.heatmap for m, e in explanations.items()}
        heatmaps[RANDOM] = localization.random_map(target_mask.shape, seed)
        for m, heat in heatmaps.items():
            rows[m].update(localization.scores(heat, target_mask))
    if steps > 0 and explanations:
        methods: Sequence[str] = tuple(explanations)
        check = randomization.randomization_check(
            model, image, region, class_index, layer, methods, seed, max_steps=steps, target=target,
            options={m: o for m, o in (options or {}).items() if m in methods}, keep_maps=False)
        for m in (*methods, RANDOM):
            rows[m].update(randomization_rho_min=float(min(check.spearman[m])),
                           randomization_rho_last=float(check.spearman[m][-1]),
                           randomization_ssim_last=float(check.ssim[m][-1]))
    return rows
