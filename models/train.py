"""Train the default network from scratch on generated scenes: `python -m models.train [--epochs N]`.

Why a script and not a notebook: the shipped weights must be reproducible on a CPU in minutes, and
the model card's numbers (timing, per-class IoU on held-out scenes) come from the same run that
wrote the weights. Everything is seeded; seeds of training, monitoring and held-out scenes never
overlap (scene streams are keyed by (seed, index), see `models.scenes.generate`).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # TensorFlow leaves oneDNN off on some CPUs (see explainers/__init__)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import CLASS_NAMES  # noqa: E402
from models.pspnet import INPUT_SIZE, WEIGHTS_PATH, build_pspnet  # noqa: E402
from models.scenes import generate  # noqa: E402

TRAIN_SEED = 20260   # training scenes
MONITOR_SEED = 31337  # small per-epoch progress check (not used for any choice of weights)
HELDOUT_SEED = 777001  # held-out evaluation in the model card and the tests; never trained on
SEED = 7  # weights initialisation, shuffling, augmentation
CARD_PATH = Path(__file__).resolve().parent / "MODEL_CARD.md"


def confusion(truth: np.ndarray, predicted: np.ndarray, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Pixel confusion matrix, rows = truth, columns = prediction."""
    idx = truth.astype(np.int64).ravel() * num_classes + predicted.astype(np.int64).ravel()
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class intersection over union: TP / (TP + FP + FN)."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def predict_labels(model: keras.Model, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Arg-max labels for a batch of uint8 images (one compiled call per chunk)."""
    infer = tf.function(lambda x: tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32))
    out = [infer(tf.constant(images[i:i + batch], tf.float32)).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.uint8)


def evaluate(model: keras.Model, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-class IoU of the model on labelled scenes."""
    return iou_from_confusion(confusion(masks, predict_labels(model, images)))


def class_weights(masks: np.ndarray, power: float = 0.5, cap: float = 12.0) -> np.ndarray:
    """Inverse-frequency weights (softened by `power`, capped) so thin ring and volva count."""
    freq = np.bincount(masks.ravel(), minlength=len(CLASS_NAMES)) / masks.size
    w = np.minimum((freq.max() / np.maximum(freq, 1e-6)) ** power, cap)
    return (w / (freq * w).sum()).astype(np.float32)


def make_loss(weights: np.ndarray, dice_weight: float = 0.5):
    """Class-weighted cross-entropy on logits plus a soft Dice term over the foreground classes."""
    w = tf.constant(weights)
    num_classes = len(weights)

    def loss(y_true, logits):
        y = tf.cast(tf.reshape(y_true, tf.shape(logits)[:-1]), tf.int32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        ce = tf.reduce_sum(ce * tf.gather(w, y)) / tf.reduce_sum(tf.gather(w, y))
        probs = tf.nn.softmax(logits)
        onehot = tf.one_hot(y, num_classes)
        inter = tf.reduce_sum(probs * onehot, axis=(0, 1, 2))
        total = tf.reduce_sum(probs + onehot, axis=(0, 1, 2))
        dice = 1.0 - (2.0 * inter + 1.0) / (total + 1.0)
        return ce + dice_weight * tf.reduce_mean(dice[1:])

    return loss


def dataset(images: np.ndarray, masks: np.ndarray, batch: int) -> tf.data.Dataset:
    """Shuffled batches with random left-right flips (scenes are mirror-symmetric in distribution)."""

    def flip(x, y):
        do = tf.random.uniform(()) < 0.5
        x = tf.cond(do, lambda: tf.reverse(x, [1]), lambda: x)
        y = tf.cond(do, lambda: tf.reverse(y, [1]), lambda: y)
        return tf.cast(x, tf.float32), y

    ds = tf.data.Dataset.from_tensor_slices((images, masks[..., None]))
    ds = ds.shuffle(len(images), seed=SEED, reshuffle_each_iteration=True)
    return ds.map(flip, num_parallel_calls=1).batch(batch, drop_remainder=True).prefetch(2)


def pass_milliseconds(model: keras.Model, repeats: int = 30) -> float:
    """Median time of one compiled forward+backward pass (batch 1, gradient to the input)."""
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, INPUT_SIZE, INPUT_SIZE, 3)), tf.float32)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_mean(model(x, training=False)[..., 1])
        return tape.gradient(score, x)

    step(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(x).numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def train(epochs: int, scenes: int, batch: int, lr: float, heldout: int, out: Path,
          card: Path | None) -> dict:
    """Generate data, fit, save weights, evaluate on held-out scenes, write the card; return the numbers."""
    start = time.time()
    keras.utils.set_random_seed(SEED)  # seeds Python's random, NumPy's global state and TensorFlow
    tf.random.set_seed(SEED)
    images, masks = generate(scenes, TRAIN_SEED)
    mon_images, mon_masks = generate(min(100, heldout), MONITOR_SEED)
    gen_seconds = time.time() - start
    print(f"generated {scenes} training scenes in {gen_seconds:.1f} s", flush=True)

    model = build_pspnet()
    trainer = keras.Model(model.input, model.get_layer("logits").output)
    steps = epochs * (scenes // batch)
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps, alpha=0.02)
    weights = class_weights(masks)
    print("class weights", np.round(weights, 2).tolist(), flush=True)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule), loss=make_loss(weights))

    epoch_seconds: list[float] = []

    class Monitor(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.time()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.time() - self.began)
            iou = evaluate(model, mon_images, mon_masks)
            print(f"epoch {epoch + 1}/{epochs} loss {logs['loss']:.4f} monitor mIoU {np.nanmean(iou):.3f} "
                  f"per class {np.round(iou, 3).tolist()} elapsed {time.time() - start:.0f} s", flush=True)

    trainer.fit(dataset(images, masks, batch), epochs=epochs, verbose=2, callbacks=[Monitor()])
    train_seconds = time.time() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(out)

    test_images, test_masks = generate(heldout, HELDOUT_SEED)
    iou = evaluate(model, test_images, test_masks)
    results = dict(
        epochs=epochs, scenes=scenes, batch=batch, lr=lr, heldout=heldout, params=model.count_params(),
        gen_seconds=gen_seconds, train_seconds=train_seconds, total_seconds=time.time() - start,
        iou=iou, miou=float(np.nanmean(iou)), pass_ms=pass_milliseconds(model), weights=weights,
        weights_mb=out.stat().st_size / 1e6, epoch_seconds=epoch_seconds,
    )
    print(f"held-out IoU {np.round(iou, 3).tolist()} mIoU {results['miou']:.3f}; "
          f"total {results['total_seconds']:.0f} s; {results['pass_ms']:.1f} ms per pass", flush=True)
    if card is not None:
        card.write_text(model_card(model, results))
    return results


def model_card(model: keras.Model, r: dict) -> str:
    """The model card's Markdown, filled in with this run's measurements."""
    rows = "\n".join(f"| {name} | {v:.3f} |" for name, v in zip(CLASS_NAMES, r["iou"], strict=True))
    convs = ", ".join(layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    cpu = platform.processor() or platform.machine()
    secs = r["epoch_seconds"]
    return f"""# Model card: default PSPNet for mushroom parts

*Written by `python -m models.train --epochs {r['epochs']}` on {date.today().isoformat()}; every number
below was measured in that run.*

## What it is

A small PSPNet-style segmentation network with a VGG-style backbone, trained to label every pixel of
a procedurally generated mushroom scene as one of {len(CLASS_NAMES)} classes: {', '.join(CLASS_NAMES)}.
It exists to make the attribution methods of segexplain interesting to compare out of the box; it has
never seen a photograph and is not meant to identify real mushrooms (never use it to judge edibility).

## Architecture

- Input: {INPUT_SIZE}×{INPUT_SIZE}×3 float image in [0, 255]; a `Rescaling` layer divides by 255.
- Backbone: four VGG-style blocks of 3×3 ReLU convolutions, widths 16-32-64-128 (2, 2, 3, 3 convs),
  2×2 max pooling after blocks 1-3, so `block4_conv3` is at stride 8 ({INPUT_SIZE // 8}×{INPUT_SIZE // 8}).
- Pyramid pooling: `psp_level1..4` average-pool block 4 into 1×1, 2×2, 3×3, 6×6 bins, apply a 1×1
  conv (`psp_levelK_conv`, 32 channels) and upsample bilinearly back (`psp_levelK`); `concat` joins
  them with block 4; `aggregation` is a 3×3 conv (64 channels).
- Head: the aggregation is upsampled ×4 to stride 2 and joined with `skip_conv` (a 1×1 conv, 16
  channels, on `block2_conv2`) so thin parts like the ring survive; `final_conv` (3×3, 32 channels)
  is the last conv before the 1×1 `classifier`; `logits` upsamples its output ×2 to input
  resolution (pre-softmax); `softmax` is a separate activation layer and the model's only output.
- Convolutions: {convs}.
- Parameters: {r['params']:,}. Weights file: {r['weights_mb']:.2f} MB.
- Speed: {r['pass_ms']:.1f} ms per compiled forward+backward pass (batch 1, gradient to the input,
  median of 30, `tf.function`) on this machine ({cpu}, {os.cpu_count()} cores).

## Training

- Data: {r['scenes']} scenes from `models.scenes.generate({r['scenes']}, seed={TRAIN_SEED})` at
  {INPUT_SIZE}×{INPUT_SIZE}: 1-4 mushrooms of nine species (ring and volva only on some), convex, flat
  and conical caps in brown, red with white spots, white and yellow, gills only when seen from below,
  soil / grass / leaf-litter backgrounds, look-alike distractors (autumn leaves, stones, berries),
  occluders in front (grass, leaves, twigs), lighting gradients and sensor noise. Random left-right
  flips during training.
- Loss: class-weighted cross-entropy on the logits (weights ∝ frequency^-0.5, capped, per class
  {', '.join(f'{w:.2f}' for w in r['weights'])}) plus 0.5 × soft Dice over the five foreground classes.
- Optimiser: Adam, learning rate {r['lr']:g} with cosine decay over {r['epochs']} epochs, batch {r['batch']}.
- Seeds: weights/shuffling/augmentation {SEED} (`keras.utils.set_random_seed`, NumPy, TensorFlow);
  per-epoch progress printed on 100 scenes of seed {MONITOR_SEED} (not used to pick weights).
- Time: {r['total_seconds'] / 60:.1f} min wall clock on this CPU for the whole run (scene generation
  {r['gen_seconds']:.0f} s, training until the weights were saved {r['train_seconds'] / 60:.1f} min),
  while the machine's 2 cores were shared with other work: an epoch took {min(secs):.0f} s at best
  and {max(secs):.0f} s at worst (median {np.median(secs):.0f} s), so on an idle machine the run takes
  about {(r['gen_seconds'] + r['epochs'] * min(secs)) / 60:.0f} min. TensorFlow on CPU is not bit-for-bit
  deterministic across thread schedules, so a rerun reproduces these numbers closely, not exactly.

## Evaluation on held-out scenes

{r['heldout']} scenes from `generate({r['heldout']}, seed={HELDOUT_SEED})`, a seed never used in training.
IoU = TP / (TP + FP + FN) per class over all pixels of the split.

| class | IoU |
|---|---|
{rows}
| **mean** | **{r['miou']:.3f}** |

## Known weaknesses

- Tiny mushrooms (a few pixels tall) and thin rings lose detail at the stride-8 backbone.
- Heavy occlusion and look-alike distractors (red berries, white stones, autumn leaves) cause errors;
  the gallery has such failure cases on purpose.
- Real photographs are out of distribution: expect poor segmentations on them.

Reproduce: `python -m models.train --epochs {r['epochs']}` (rewrites the weights and this card).
"""


def run_training_cli(argv: list[str] | None, description: str, train_fn, weights: Path, card: Path, quick_name: str,
                     scenes: int, lr: float) -> None:
    """The command line both shipped networks are trained by (same flags, their own defaults and files)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--scenes", type=int, default=scenes)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--heldout", type=int, default=300)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 64 scenes, 1 epoch, written to a temporary path, no card")
    parser.add_argument("--out", type=Path, default=None, help="weights path (default: the shipped file)")
    args = parser.parse_args(argv)
    if args.quick:
        out = args.out or Path(os.environ.get("TMPDIR", "/tmp")) / quick_name
        train_fn(1, 64, args.batch, args.lr, 32, out, card=None)
    else:
        train_fn(args.epochs, args.scenes, args.batch, args.lr, args.heldout, args.out or weights,
                 card=card if args.out is None else None)


def main(argv: list[str] | None = None) -> None:
    run_training_cli(argv, __doc__.splitlines()[0], train, WEIGHTS_PATH, CARD_PATH, "pspnet_quick.weights.h5",
                     scenes=4000, lr=2e-3)


if __name__ == "__main__":
    main()
