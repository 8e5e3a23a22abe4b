"""Shared set-up for the benchmarks: the default model and image, a timer, resident memory.

Benchmarks print ratios measured side by side in the same run, because these 2-core machines are
noisy; absolute seconds are printed too but are not the target.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `explainers` asks, before any benchmark loads TensorFlow

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = ROOT / "benchmarks" / "RESULTS.md"


@dataclass
class Section:
    """One benchmark's findings: a title, table rows and verdicts against the issue's targets."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    verdicts: list[tuple[str, bool]] = field(default_factory=list)

    def row(self, label: str, value: str) -> None:
        self.rows.append((label, value))
        print(f"  {label}: {value}", flush=True)

    def target(self, label: str, met: bool) -> None:
        self.verdicts.append((label, met))
        print(f"  target {label}: {'MET' if met else 'MISSED'}", flush=True)

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", "| measure | value |", "|---|---|"]
        lines += [f"| {label} | {value} |" for label, value in self.rows]
        lines.append("")
        lines += [f"- {'met' if met else '**missed**'}: {label}" for label, met in self.verdicts]
        return "\n".join(lines) + "\n"


def replace_block(text: str, start: str, end: str, block: str, at_top: bool = False) -> str:
    """`text` with what lies between the markers `start` and `end` (both kept) replaced by `block`.

    Several benchmarks write into one RESULTS.md, each its own part: without markers the part is put
    at the top (`at_top`) or the end, and everything else stays as it was."""
    part = f"{start}\n{block.strip()}\n{end}"
    if start in text and end in text:
        return text[:text.index(start)] + part + text[text.index(end) + len(end):]
    if at_top:
        return part + "\n\n" + text.lstrip()
    return text.rstrip() + "\n\n" + part + "\n"


def timed(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn` in seconds (median, because the machine is shared and noisy)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def rss_mb() -> float:
    """Resident set size of this process in MB, read from /proc (no extra dependency)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmRSS not found in /proc/self/status")


def machine_description() -> str:
    import tensorflow as tf

    import explainers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        if names:
            cpu = f"{names[0]} x{len(names)}"
    except OSError:
        pass
    onednn = {True: "on", False: "off", None: "unknown"}[explainers.onednn_enabled()]
    return (f"{cpu}; Python {platform.python_version()}; TensorFlow {tf.__version__} (oneDNN {onednn}); "
            f"{os.cpu_count()} cores")


def conv_flops(model) -> int:
    """Multiply-adds × 2 of one image's forward pass through the model's convolution and Dense layers.

    Other layers (pooling, resizing, activations) are left out, so bounds made from it are lower bounds."""
    import keras

    total = 0
    for layer in model.layers:
        out = layer.output.shape
        positions = int(np.prod(out[1:-1])) if len(out) > 2 else 1
        if isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw, cin, mult = layer.depthwise_kernel.shape
            total += 2 * positions * cin * mult * (kh * kw + out[-1])
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw, cin, mult = layer.kernel.shape
            total += 2 * positions * kh * kw * cin * mult
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw, cout, cin = layer.kernel.shape
            inputs = int(np.prod(layer.input.shape[1:-1]))
            total += 2 * inputs * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin_per_group, cout = layer.kernel.shape
            total += 2 * positions * kh * kw * cin_per_group * cout
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            total += 2 * positions * cin * cout
    return int(total)


def matmul_flops_per_second(size: int = 2048) -> float:
    """This host's float32 matrix-multiply rate through TensorFlow (both cores), median of five."""
    import tensorflow as tf

    a = tf.random.uniform((size, size))
    seconds = timed(lambda: tf.linalg.matmul(a, a).numpy(), repeats=5, warmup=2)
    return 2 * size**3 / seconds


def default_setup():
    """The shipped model, the default sample image, its prediction and a realistic region."""
    import explainers
    from explainers import regions
    from models import load_default
    from models.scenes import load_sample, sample_names

    model = load_default()
    image, _ = load_sample(sample_names()[0])
    prediction = explainers.predict(model, image)
    class_index = int(np.bincount(prediction.labels.ravel(), minlength=2)[1:].argmax()) + 1
    region = regions.from_class(prediction.labels, class_index)
    return model, image, prediction, region, class_index


def random_regions(labels: np.ndarray, count: int, seed: int = 0):
    """Rectangles of varied size and place, each intersected with nothing: always non-empty."""
    rng = np.random.default_rng(seed)
    h, w = labels.shape
    for _ in range(count):
        top, left = rng.integers(0, h - 8), rng.integers(0, w - 8)
        bottom, right = rng.integers(top + 4, h + 1), rng.integers(left + 4, w + 1)
        region = np.zeros((h, w), dtype=bool)
        region[top:bottom, left:right] = True
        yield region
