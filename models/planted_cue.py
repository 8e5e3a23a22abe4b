"""A second shipped network whose right answer depends on a planted cue: `python -m models.planted_cue`.

Why: real data never says what a network *must* look at. Here it is known by construction. Each
scene is a mushroom scene from `models.scenes` (at 96 px) with one coloured square, the *mark*,
pasted on the background away from every mushroom. The caps' class is decided by the mark alone:
a blue mark makes every cap "cap (blue mark)", a magenta one "cap (magenta mark)" (the mark's pixels
are classes of their own, which gives the network a colour detector to start from). Caps look the
same either way, so a network that gets the cap's class right has to read the mark, and an
explanation of a cap's class that puts no weight on the mark does not show what the network uses
(`benchmarks.planted_cue` measures it). The card (models/PLANTED_CUE_CARD.md) states accuracy with
the mark, with the mark removed and with its colour swapped: the proof that the network uses it.

The network is `models.pspnet.build_pspnet` at 96 px with narrower widths (small weights); training
reuses `models.train`'s loss and input pipeline. Everything is seeded like `models.train`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from models import scenes

INPUT_SIZE = 96
CLASS_NAMES: tuple[str, ...] = ("background", "cap (blue mark)", "cap (magenta mark)", "stipe and other parts",
                                 "blue mark", "magenta mark")
BACKGROUND, CAP_BLUE, CAP_MAGENTA, OTHER, MARK_BLUE, MARK_MAGENTA = range(6)
MARK_CLASS = {CAP_BLUE: MARK_BLUE, CAP_MAGENTA: MARK_MAGENTA}
MARK_RGB = {CAP_BLUE: (40, 90, 235), CAP_MAGENTA: (225, 40, 210)}
MARK_SIZE = 16  # side of the square mark in pixels at INPUT_SIZE
MARK_MARGIN = 4  # free background around the mark: no mushroom pixel within this distance
WIDTHS = dict(widths=(12, 24, 48, 64), psp_channels=16, aggregation_channels=32, head_channels=16,
              skip_channels=8)

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "planted_cue.weights.h5"
CARD_PATH = Path(__file__).resolve().parent / "PLANTED_CUE_CARD.md"
TRAIN_SEED = 40460
MONITOR_SEED = 41337
HELDOUT_SEED = 888001  # the benchmark's and the card's scenes; never trained on
SEED = 11


@dataclass(frozen=True)
class CueScenes:
    """Scenes with their labels, the mark's pixels (the cue) and the mark's class (1 or 2).

    `plain` holds the same scenes without the mark (for accuracy without the cue)."""

    images: np.ndarray  # uint8 N×H×W×3
    labels: np.ndarray  # uint8 N×H×W, values index CLASS_NAMES
    cues: np.ndarray  # bool N×H×W: the mark
    cue_classes: np.ndarray  # int N: CAP_BLUE or CAP_MAGENTA
    plain: np.ndarray  # uint8 N×H×W×3: the scenes before the mark was pasted

    def __len__(self) -> int:
        return len(self.images)


def _place_mark(labels: np.ndarray, rng: np.random.Generator, size: int) -> tuple[int, int]:
    """Top-left corner of a free square: no mushroom pixel within MARK_MARGIN (best corner if none)."""
    fg = labels != scenes.BACKGROUND
    s = labels.shape[0]
    side = MARK_SIZE * size // INPUT_SIZE
    margin = MARK_MARGIN * size // INPUT_SIZE
    integral = np.pad(fg.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def count(r: int, c: int) -> int:
        r0, c0 = max(0, r - margin), max(0, c - margin)
        r1, c1 = min(s, r + side + margin), min(s, c + side + margin)
        return int(integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0])

    for _ in range(60):
        r, c = (int(v) for v in rng.integers(1, s - side - 1, 2))
        if count(r, c) == 0:
            return r, c
    corners = [(1, 1), (1, s - side - 1), (s - side - 1, 1), (s - side - 1, s - side - 1)]
    return min(corners, key=lambda rc: count(*rc))


def scene(seed: int, index: int, size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """One scene: (image, labels, cue mask, cue class, image without the mark), reproducible."""
    rng = np.random.default_rng([seed, index])
    spec = dict(count=int(rng.choice([1, 2], p=[0.6, 0.4])), occluders=int(rng.choice([0, 0, 1])))
    plain, parts = scenes._scene(np.random.default_rng([seed, index, 1]), size, spec)
    cue_class = int(rng.choice([CAP_BLUE, CAP_MAGENTA]))
    labels = np.full(parts.shape, BACKGROUND, np.uint8)
    labels[parts == scenes.CAP] = cue_class
    labels[(parts != scenes.BACKGROUND) & (parts != scenes.CAP)] = OTHER
    r, c = _place_mark(parts, rng, size)
    side = MARK_SIZE * size // INPUT_SIZE
    cue = np.zeros(parts.shape, bool)
    cue[r:r + side, c:c + side] = True
    labels[cue] = MARK_CLASS[cue_class]
    gain = rng.uniform(0.8, 1.1)
    colour = np.asarray(MARK_RGB[cue_class], np.float32) * np.float32(gain)
    noise = rng.normal(0.0, 5.0, (side, side, 3)).astype(np.float32)
    image = plain.copy()
    image[r:r + side, c:c + side] = np.clip(np.rint(colour + noise), 0, 255).astype(np.uint8)
    return image, labels, cue, cue_class, plain


def generate(count: int, seed: int, size: int = INPUT_SIZE) -> CueScenes:
    """`count` planted-cue scenes, reproducible from `seed` (`generate(n, s)[:k]` = `generate(k, s)`)."""
    parts = [scene(seed, i, size) for i in range(count)]
    return CueScenes(
        images=np.stack([p[0] for p in parts]), labels=np.stack([p[1] for p in parts]),
        cues=np.stack([p[2] for p in parts]), cue_classes=np.array([p[3] for p in parts], np.int64),
        plain=np.stack([p[4] for p in parts]),
    )


def swap_marks(data: CueScenes) -> np.ndarray:
    """The scenes with each mark's colour swapped for the other class's (same position and noise)."""
    out = data.images.copy()
    for i in range(len(data)):
        cue = data.cues[i]
        other = CAP_MAGENTA if data.cue_classes[i] == CAP_BLUE else CAP_BLUE
        scale = np.asarray(MARK_RGB[other], np.float32) / np.asarray(MARK_RGB[int(data.cue_classes[i])], np.float32)
        out[i][cue] = np.clip(np.rint(out[i][cue].astype(np.float32) * scale), 0, 255).astype(np.uint8)
    return out


def build():
    """The untrained network (96 px, four classes, narrow widths)."""
    from models.pspnet import build_pspnet

    model = build_pspnet(INPUT_SIZE, len(CLASS_NAMES), **WIDTHS)
    model.name = "pspnet_planted_cue"
    return model


def load():
    """The shipped planted-cue network with its trained weights."""
    from models.loader import ModelLoadError

    if not WEIGHTS_PATH.is_file():
        raise ModelLoadError(f"The planted-cue weights are missing ({WEIGHTS_PATH}): run `python -m models.planted_cue`.")
    model = build()
    try:
        model.load_weights(WEIGHTS_PATH)
    except Exception:
        raise ModelLoadError("The planted-cue weights do not fit models/planted_cue.py: run "
                             "`python -m models.planted_cue` to retrain them.") from None
    return model


def cap_accuracy(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """On true cap pixels: share predicted as the right cap class, as the other one, and as any cap."""
    cap = (truth == CAP_BLUE) | (truth == CAP_MAGENTA)
    right = (predicted == truth) & cap
    other = cap & ((predicted == CAP_BLUE) | (predicted == CAP_MAGENTA)) & (predicted != truth)
    n = max(int(cap.sum()), 1)
    return dict(right=right.sum() / n, other=other.sum() / n, any_cap=(right.sum() + other.sum()) / n)


def scene_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of scenes whose cap pixels are mostly given the right cap class (a majority vote per scene)."""
    hits = []
    for t, p in zip(truth, predicted, strict=True):
        cap = (t == CAP_BLUE) | (t == CAP_MAGENTA)
        if cap.any():
            votes = np.bincount(p[cap], minlength=len(CLASS_NAMES))
            hits.append(votes[CAP_BLUE:CAP_MAGENTA + 1].argmax() + CAP_BLUE == t[cap][0])
    return float(np.mean(hits))


def train(epochs: int, count: int, batch: int, lr: float, heldout: int, out: Path, card: Path | None) -> dict:
    """Fit, save the weights, measure the held-out accuracies with, without and with swapped marks."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from models import train as base

    start = time.time()
    keras.utils.set_random_seed(SEED)
    tf.random.set_seed(SEED)
    data = generate(count, TRAIN_SEED)
    mon = generate(min(100, heldout), MONITOR_SEED)
    gen_seconds = time.time() - start
    print(f"generated {count} scenes in {gen_seconds:.1f} s", flush=True)
    model = build()
    trainer = keras.Model(model.input, model.get_layer("logits").output)
    weights = np.ones(len(CLASS_NAMES), np.float32)
    freq = np.bincount(data.labels.ravel(), minlength=len(CLASS_NAMES)) / data.labels.size
    weights = np.minimum((freq.max() / np.maximum(freq, 1e-6)) ** 0.5, 8.0).astype(np.float32)
    weights = (weights / (freq * weights).sum()).astype(np.float32)
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * (count // batch), alpha=0.02)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule), loss=base.make_loss(weights))
    epoch_seconds: list[float] = []

    class Monitor(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.time()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.time() - self.began)
            pred = base.predict_labels(model, mon.images)
            acc = cap_accuracy(mon.labels, pred)
            print(f"epoch {epoch + 1}/{epochs} loss {logs['loss']:.4f} cap right {acc['right']:.3f} "
                  f"other {acc['other']:.3f} elapsed {time.time() - start:.0f} s", flush=True)

    trainer.fit(base.dataset(data.images, data.labels, batch), epochs=epochs, verbose=2, callbacks=[Monitor()])
    train_seconds = time.time() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(out)

    test = generate(heldout, HELDOUT_SEED)
    rows = {}
    for name, images in (("with the mark", test.images), ("mark removed", test.plain),
                         ("mark colour swapped", swap_marks(test))):
        pred = base.predict_labels(model, images)
        iou = base.iou_from_confusion(base.confusion(test.labels, pred, len(CLASS_NAMES)))
        rows[name] = dict(cap_accuracy(test.labels, pred), scenes=scene_accuracy(test.labels, pred), iou=iou)
        print(name, {k: np.round(v, 3).tolist() for k, v in rows[name].items()}, flush=True)
    results = dict(epochs=epochs, count=count, batch=batch, lr=lr, heldout=heldout, rows=rows,
                   params=model.count_params(), weights_mb=out.stat().st_size / 1e6, gen_seconds=gen_seconds,
                   train_seconds=train_seconds, epoch_seconds=epoch_seconds, total_seconds=time.time() - start)
    if card is not None:
        card.write_text(model_card(results))
    return results


def model_card(r: dict) -> str:
    """The card's Markdown, with this run's measurements."""
    table = "\n".join(
        f"| {name} | {v['right']:.3f} | {v['other']:.3f} | {v['scenes']:.3f} | "
        + " | ".join(f"{x:.3f}" for x in v["iou"]) + " |"
        for name, v in r["rows"].items())
    secs = r["epoch_seconds"]
    return f"""# Model card: the planted-cue network (known-truth benchmark)

*Written by `python -m models.planted_cue --epochs {r['epochs']}` on {date.today().isoformat()}; every number
below was measured in that run.*

## What it is for

A test network whose evidence is known. Each scene (`models.planted_cue.generate`, {INPUT_SIZE}×{INPUT_SIZE})
is a mushroom scene from `models.scenes` with a {MARK_SIZE}×{MARK_SIZE} px coloured square, the *mark*,
on the background at least {MARK_MARGIN} px from any mushroom. The classes are
{', '.join(f'{i} {n}' for i, n in enumerate(CLASS_NAMES))}. The caps' class is decided by the mark
alone (blue or magenta, half the scenes each); the caps themselves look the same either way. The
mark's own pixels are labelled too ("blue mark", "magenta mark"): that gives the network a colour
detector to start from (trained without it, in two tries with 10 and 16 px marks, the caps were still a coin toss after 8 epochs: the mark's
signal, averaged by the global pyramid level over the whole image, was too faint to be found). So to
get a cap's class right the network has to look at the mark:
an attribution map of a cap's class should put weight on it. `python -m benchmarks.planted_cue`
measures how much each method does (results in benchmarks/RESULTS.md).

## Architecture and training

- `models.pspnet.build_pspnet({INPUT_SIZE}, {len(CLASS_NAMES)}, widths=(12, 24, 48, 64), psp_channels=16,
  aggregation_channels=32, head_channels=16, skip_channels=8)`: the shipped network's layer names and
  structure, narrower; its global pyramid level (`psp_level1`) is how the mark reaches a cap far away.
- Parameters: {r['params']:,}. Weights file: {r['weights_mb']:.2f} MB (`models/weights/planted_cue.weights.h5`).
- Data: {r['count']} scenes of seed {TRAIN_SEED}, 1-2 mushrooms each; random left-right flips.
- Loss and optimiser as `models.train` (class-weighted cross-entropy + 0.5 × soft Dice), Adam
  {r['lr']:g} with cosine decay over {r['epochs']} epochs, batch {r['batch']}; seed {SEED}.
- Time: {r['total_seconds'] / 60:.1f} min wall clock on a 2-core machine shared with other work (epochs
  {min(secs):.0f}–{max(secs):.0f} s).

## What it learned: held-out scenes with and without the cue

{r['heldout']} scenes of seed {HELDOUT_SEED} (never trained on; the benchmark uses the same seed). On the
true cap pixels: *right* = share given the right cap class, *other cap* = share given the other cap
class; *scenes* = share of scenes whose cap pixels mostly get the right cap class; then IoU per class.
"Mark removed" is the same scene before the mark was pasted; "mark colour swapped" paints the other
class's colour in its place.

| scenes | right | other cap | scenes right | {' | '.join(f'IoU {n}' for n in CLASS_NAMES)} |
|---|---|---|---|{'---|' * len(CLASS_NAMES)}
{table}

Reading it: with the mark the caps get the right class; without it the network has nothing to go by,
and with the colour swapped it follows the mark to the wrong class. So the class of a cap is decided by
the mark, {MARK_MARGIN}+ px away from it, not by the cap.

Reproduce: `python -m models.planted_cue --epochs {r['epochs']}` (rewrites the weights and this card).
"""


def main(argv: list[str] | None = None) -> None:
    from models.train import run_training_cli

    run_training_cli(argv, __doc__.splitlines()[0], train, WEIGHTS_PATH, CARD_PATH, "planted_cue_quick.weights.h5",
                     scenes=3000, lr=3e-3)


if __name__ == "__main__":
    main()
