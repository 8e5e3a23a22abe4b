"""Shared set-up of the batch CLI tests (local engine, Ray, safety): a tiny model file, a folder of
random images, the CLI's arguments and the rows of a run's summary.csv."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from helpers_models import random_image, tiny_seg_model
from PIL import Image


def model_and_images(root: Path, sizes: Iterable[int], *, seed: int = 0, pattern: str = "img{}.png",
                     model_size: int = 16) -> tuple[Path, Path]:
    """`root/tiny.keras` (input `model_size`²) and `root/images` with one random PNG per entry of `sizes`."""
    model_path = root / "tiny.keras"
    tiny_seg_model(size=model_size).save(model_path)
    images = root / "images"
    images.mkdir()
    for i, size in enumerate(sizes):
        Image.fromarray(random_image(size, seed=seed + i)).save(images / pattern.format(i))
    return model_path, images


def cli_args(model_path: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model_path), "--images", str(images), "--out", str(out), *extra]


def summary_rows(out: Path, drop: tuple[str, ...] = ()) -> list[dict]:
    """summary.csv's rows, without the columns in `drop` (e.g. the timings, which differ run to run)."""
    with (out / "summary.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(handle)]
