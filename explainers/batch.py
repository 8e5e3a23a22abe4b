"""Batch mode: explain one region preset on every image of a folder, from the command line.

    python -m explainers.batch --model model.keras --images photos/ --method gradcam --method xrai \\
        --region class:cap --layer final_conv --out results/ --metrics --class-names background,cap,gills \\
        [--labels label_pngs/] [--engine ray [--address auto|ray://HOST:PORT] [--workers N]]

Why: comparing methods on one image in the dashboard does not tell whether a pattern holds over a data
set; this writes, per image, `<name>.npz` (every method's heatmap and layer map, the region, the fitted
image, the predicted labels and, with `--labels`, the ground truth), `<name>.png` (the image with the
region outlined, then one overlay per method), `<name>.json` (what was run, timings, with `--metrics`
the faithfulness numbers, and the size and SHA-256 of the two files), and for the whole run `run.json`
(settings, class names, which output belongs to which image) and `summary.csv` (one row per image and
method, plus the random baseline with `--metrics`). With `--labels`, each image's record and its
summary rows also hold its IoU per class (`iou_<class>`, empty for a class in neither the prediction
nor the truth; label value 255 is void and ignored) and `mean_iou` (`explainers.label_scores`); a label
file of another size than the image, or with a class the model lacks, is named in `truth_note`.
`explainers.dataset_analysis` reads these.

Nothing is lost or done twice: every file is written to a temporary name and renamed into place, and
an image's `.json` (its manifest entry) is written last. On a rerun an image is skipped only when its
`.json` is readable, was made with the same settings, and its `.npz` and `.png` still have the recorded
size and digest; anything incomplete or damaged (e.g. by a killed run) is redone (`--force` redoes all).
`summary.csv` is rebuilt from the manifest entries and replaced atomically. Output names are the image's
stem when that is unique and file-system safe, else a sanitised full file name with a short hash, so
`a.b.png`, `a.b.jpg` and `a_b_png.gif` get three names; long names are shortened the same way.

`--engine local` (default) runs in this process; `--engine ray` runs the same per-image work on Ray
actors that each load the model once (`explainers.ray_engine`), on a local Ray or on the cluster at
`--address`. Both write the same files from this process, so only it needs the input and output folders.

`--model` takes a `.keras` (or legacy `.h5`) file, loaded by the dashboard's safe loader
(`explainers.model_files`: limits checked before anything is allocated, Keras safe mode):
the library never imports the application's `models` package, so the built-in network must first be
saved as a `.keras` file by the application. `--region` is `whole` (every pixel; the class is
`--class`, else the most frequent predicted class, not counting one named "background"), `class:N` or
`class:NAME` (every pixel predicted as that class; images without such pixels are listed as skipped).
Exit codes: 0 done, 1 some images failed, 2 bad command line (unknown method, bad region, unreadable
model, no images, an output folder that overlaps the images or cannot be written, is being written by
another run, or holds another run's results), 3 the run stopped before the end (the output folder
could not be written, e.g. the disk is full; or the Ray cluster was lost): what was finished is
intact, and the same command resumes.

One run per folder, one set of settings per folder: a run holds an exclusive lock on `--out`
(`LOCK_FILE`, released by the OS even when the run is killed), so two runs at once on one folder
cannot interleave; and `run.json` records the run's identity (model digest, methods, region, class,
layer, target, metrics, class names, labels and images folders): a run with other settings on a
folder holding results refuses, naming what differs, unless `--force` says to replace them.
Files are checked before they are read (size, then the header's format and pixel count:
`images.check_image_file`); non-image files in `--images` are left out and named in the closing line
on stdout and in `run.json` (`skipped_files`). Text cells of summary.csv that a spreadsheet would take
for a formula start with `'`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from explainers import label_scores
from explainers.batch_work import (  # noqa: F401  (re-exported: the CLI's names for the per-image work)
    OUT_OF_MEMORY,
    PREVIEW_BAR,
    EngineLost,
    UsageError,
    Worker,
    load_model,
    local_engine,
    parse_class,
    preview,
    process_item,
    read_item,
    set_working_size,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CSV_FIELDS = (
    "image", "output", "status", "method", "class_index", "class_name", "region", "region_pixels", "layer",
    "seconds", "deletion_auc", "insertion_auc", "insertion_minus_deletion", "average_drop_pct",
    "increase_in_confidence", "mass_accuracy", "rank_accuracy", "energy_pointing_game", "pointing_game",
    "randomization_rho_min", "randomization_rho_last", "randomization_ssim_last", "note",
)
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.csv"
LOCK_FILE = ".segexplain-batch.lock"  # held (flock) by the run writing into the folder; the OS frees it on exit
FORMAT = "segexplain-batch/2"
MAX_NAME_BYTES = 120  # output base names longer than this (UTF-8) are shortened with a hash
ENGINES = ("local", "ray")
SUMMARY_SECONDS = 30.0  # summary.csv is rewritten at most this often during a run (and always at the end)
_RESERVED = {RUN_FILE, SUMMARY_FILE, LOCK_FILE}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # spreadsheet formula starts (OWASP CSV injection)
EXIT_STOPPED = 3  # the run stopped before the end (output not writable, Ray cluster lost); rerun to resume


def parse_region(spec: str, class_names: Sequence[str]) -> tuple[str, int | None]:
    """`whole` → ("whole", None); `class:3` or `class:cap` → ("class", 3). Raises UsageError otherwise."""
    text = spec.strip()
    if text == "whole":
        return "whole", None
    kind, sep, value = text.partition(":")
    if kind != "class" or not sep or not value:
        raise UsageError(
            f"--region {spec!r} is not understood: use 'whole', 'class:<index>' (e.g. class:1) "
            "or 'class:<name>' (e.g. class:cap, with --class-names)."
        )
    return "class", parse_class(value, class_names, "--region")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explainers.batch",
        description="Explain a region preset on every image of a folder; write maps, previews and summary.csv.",
    )
    parser.add_argument("--model", required=True, help="a .keras segmentation model file")
    parser.add_argument("--images", required=True, type=Path, help="folder of PNG/JPEG/... images")
    parser.add_argument("--method", action="append", dest="methods", metavar="METHOD",
                        help="a method name from explainers.registry, e.g. gradcam, seg-xres-cam, rise (repeat for "
                             "several); default gradcam")
    parser.add_argument("--region", default="whole", help="whole | class:<index> | class:<name> (default whole)")
    parser.add_argument("--class", dest="class_", default=None,
                        help="class to explain for --region whole (index or name; default: most frequent)")
    parser.add_argument("--layer", default=None, help="layer for CAM methods (default: the model's default layer)")
    parser.add_argument("--target", default="logits", choices=("logits", "probabilities"),
                        help="score the maps explain (default logits)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder (created if missing; must not be, contain or lie inside --images)")
    parser.add_argument("--labels", type=Path, default=None,
                        help="folder of ground-truth label PNGs (index or palette PNGs: class index per pixel, 255 = void), "
                             "matched by image stem; adds each image's IoU per class and mean IoU to its record and "
                             "summary.csv")
    parser.add_argument("--metrics", action="store_true", help="also compute faithfulness metrics")
    parser.add_argument("--metric-steps", type=int, default=20, help="deletion/insertion steps (default 20)")
    parser.add_argument("--metric-target", default="probabilities", choices=("logits", "probabilities"),
                        help="score the faithfulness metrics use (default probabilities)")
    parser.add_argument("--randomization-steps", type=int, default=0,
                        help="with --metrics: also run the randomisation check per image in this many steps (each "
                             "recomputes the maps once; default 0: not run)")
    parser.add_argument("--mean", default=None, help="R,G,B mean (0–1 scale) for a PyTorch file that has none "
                        "(default ImageNet's)")
    parser.add_argument("--std", default=None, help="R,G,B std (0–1 scale) for a PyTorch file that has none")
    parser.add_argument("--class-names", default="", help="comma-separated class names, in class-index order "
                        "(default: the names the model file stores, else none)")
    parser.add_argument("--working-size", type=int, default=512,
                        help="for a model that takes any input size: the longest side it works at (default 512, "
                             "never above the image's own; 0: the image's own size); each side becomes a multiple "
                             "of the network's output stride, and maps are resized back to the image")
    parser.add_argument("--fit", default="pad", choices=("stretch", "pad", "crop"),
                        help="how the image meets the working size: pad (default, aspect kept), stretch, or crop")
    parser.add_argument("--option", action="append", dest="options", default=[], metavar="METHOD.FIELD=VALUE",
                        help="a method's option, e.g. xrai.steps=20 or rise.masks=1000 (repeatable; every field of "
                             "the method's options class; 'auto' for a batch size chosen from memory)")
    parser.add_argument("--xrai-steps", type=int, default=None, help="same as --option xrai.steps=N (default 100)")
    parser.add_argument("--scorecam-channels", type=int, default=None,
                        help="same as --option scorecam.channels=N (default 64)")
    parser.add_argument("--force", action="store_true",
                        help="recompute images whose outputs already exist; replace the results of a run with other "
                             "settings in --out")
    parser.add_argument("--engine", default="local", choices=ENGINES,
                        help="local: this process (default); ray: Ray actors, each holding the model once")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (auto | ray://HOST:PORT); default: start a local Ray")
    parser.add_argument("--workers", type=int, default=None,
                        help="Ray actors (default: the CPUs of the local machine, or of the cluster)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per Ray task (default 4)")
    return parser


# ---------------------------------------------------------------------------------------------
# Model, folders and output names


def _stored_names(model, num_classes: int) -> list[str]:
    """The class names the model file stores (given > stored > numbered), when they fit its classes."""
    stored = list(getattr(model, "class_names", None) or [])
    if stored and len(stored) != num_classes:
        print(f"The model file stores {len(stored)} class names for {num_classes} classes: they are not used.",
              file=sys.stderr)
        return []
    return stored


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"--images {str(folder)!r} is not a folder.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"--images {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def skipped_files(folder: Path) -> list[str]:
    """Names of the files in `folder` the run leaves out because their extension is not an image's."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)


def check_folders(images: Path, out: Path, labels: Path | None = None) -> None:
    """Refuse an output folder that is, contains or lies inside the images (or labels), or cannot be written."""
    out_real = out.expanduser().resolve()
    for option, folder in (("--images", images), ("--labels", labels)):
        if folder is None:
            continue
        real = folder.expanduser().resolve()
        if out_real == real or out_real.is_relative_to(real) or real.is_relative_to(out_real):
            raise UsageError(
                f"--out {str(out)!r} overlaps {option} {str(folder)!r}: outputs would mix with or overwrite "
                "the inputs; choose an output folder outside it."
            )
    if out_real.exists() and not out_real.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file, not a folder.")
    try:
        out_real.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_real, prefix=".write-check-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"--out {str(out)!r} cannot be created or written ({reason}); choose another folder.") from None


def _safe_char(ch: str) -> bool:
    return ch.isalnum() or ch in "-_+()[]"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def _hashed_name(file_name: str) -> str:
    """Sanitised full file name (dots and unsafe characters → `_`), shortened, plus a hash of the name."""
    clean = "".join(ch if _safe_char(ch) else "_" for ch in file_name)
    encoded = clean.encode("utf-8", "surrogateescape")[: MAX_NAME_BYTES - 11]
    return f"{encoded.decode('utf-8', 'ignore')}-{_short_hash(file_name)}"


def output_names(files: Sequence[Path]) -> dict[Path, str]:
    """Base name of each image's outputs: unique, deterministic, short, and safe as a file name.

    The stem is kept when no other image has it and it is plain (safe characters and inner dots only,
    at most `MAX_NAME_BYTES` bytes); otherwise the name comes from the full file name plus a hash of it,
    so two images never share outputs and adding images never renames a kept stem."""
    stems: dict[str, int] = {}
    for path in files:
        stems[path.stem] = stems.get(path.stem, 0) + 1

    def plain(stem: str) -> bool:
        return (bool(stem) and not stem.startswith(".") and len(stem.encode("utf-8", "surrogateescape"))
                <= MAX_NAME_BYTES and all(_safe_char(ch) or ch == "." for ch in stem)
                and f"{stem}.json" not in _RESERVED)

    names = {p: p.stem if stems[p.stem] == 1 and plain(p.stem) else _hashed_name(p.name) for p in files}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {p: (n if counts[n] == 1 else _hashed_name(f"{p.name}/{n}")) for p, n in names.items()}


def _label_file(labels: Path | None, image: Path) -> Path | None:
    """The ground-truth PNG of an image: `<labels>/<stem>.png`, else `<labels>/<file name>`."""
    if labels is None:
        return None
    for candidate in (labels / f"{image.stem}.png", labels / image.name):
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# Atomic files


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it into place."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Previews


class _Progress:
    """A one-line text progress bar on stderr: done/total, elapsed seconds, images per second."""

    def __init__(self, total: int, stream=None, width: int = 30) -> None:
        self.total, self.width, self.stream = total, width, stream or sys.stderr
        self.start = time.perf_counter()

    def show(self, done: int, label: str, fresh: int = 0) -> None:
        filled = int(self.width * done / max(self.total, 1))
        elapsed = time.perf_counter() - self.start
        rate = f"{fresh / elapsed:5.2f} img/s" if fresh and elapsed > 0 else " " * 11
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {elapsed:6.1f}s {rate} {label[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------------
# The per-image work (the same code on every engine)


_ALIASES = (("xrai_steps", "xrai", "steps"), ("scorecam_channels", "scorecam", "channels"))  # old flags


def method_options(args) -> dict[str, dict[str, Any]]:
    """{method: {field: value}} from `--option METHOD.FIELD=VALUE` and the old flags (`--xrai-steps`,
    `--scorecam-channels`, which win as they name one option each); UsageError on a bad name or value."""
    from explainers import registry
    from explainers.errors import ExplainerError

    try:
        given = registry.options_from_text(getattr(args, "options", None) or [])
        for flag, method, field in _ALIASES:
            if getattr(args, flag, None) is not None:
                given.setdefault(method, {})[field] = getattr(args, flag)
                registry.get(method).make_options(given[method])
    except ExplainerError as error:
        raise UsageError(f"--option: {error}") from None
    return given


def _xrai_steps(args) -> int:
    from explainers import registry

    return method_options(args).get("xrai", {}).get("steps", registry.default("xrai", "steps"))


def _scorecam_channels(args) -> int:
    from explainers import registry

    return method_options(args).get("scorecam", {}).get("channels", registry.default("scorecam", "channels"))


def _settings(args, methods, region_spec, class_names) -> dict:
    """Everything an output depends on: resuming skips an image only when all of it is unchanged."""
    return {
        "model_sha256": _file_digest(args.model), "class_names": list(class_names),
        "methods": list(methods), "region": region_spec, "class": args.class_, "layer": args.layer,
        "target": args.target, "metrics": bool(args.metrics), "metric_steps": args.metric_steps,
        "metric_target": args.metric_target, "randomization_steps": args.randomization_steps,
        "xrai_steps": _xrai_steps(args), "scorecam_channels": _scorecam_channels(args),
        "method_options": method_options(args),
        "mean": getattr(args, "mean", None), "std": getattr(args, "std", None),
        "working_size": getattr(args, "working_size", 512), "fit": getattr(args, "fit", "pad"),
        "labels": str(args.labels.resolve()) if args.labels else None,
        # with labels: how the IoU is scored, so images of a run made before it are redone on resume
        **({"label_scores": label_scores.FORMAT} if args.labels else {}),
    }


# ---------------------------------------------------------------------------------------------
# Manifest, summary, resume


def store(out: Path, result: dict[str, Any], settings: dict) -> dict:
    """Write one image's files atomically, its manifest entry (`<output>.json`) last; return the record."""
    record = dict(result["record"])
    name = record["output"]
    files = {}
    for kind in ("npz", "png"):
        data = result.get(kind)
        if data is not None:
            atomic_write(out / f"{name}.{kind}", data)
            files[kind] = {"bytes": len(data), "sha256": _digest(data)}
    record["files"] = files
    record["settings"] = settings
    atomic_write(out / f"{name}.json", json.dumps(record, indent=1, default=float).encode("utf-8"))
    return record


def _intact(out: Path, name: str, entry: dict) -> bool:
    path = out / name
    try:
        return path.stat().st_size == entry["bytes"] and _file_digest(path) == entry["sha256"]
    except (OSError, KeyError, TypeError):
        return False


def done_record(out: Path, name: str, settings: dict, image: str | None = None) -> dict | None:
    """The saved record when this image's outputs exist, intact, for the same settings; else None."""
    meta = out / f"{name}.json"
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("settings") != settings:
        return None
    if image is not None and record.get("image") != image:
        return None
    status = str(record.get("status", ""))
    if status == "ok":
        files = record.get("files") or {}
        if set(files) != {"npz", "png"} or not all(_intact(out, f"{name}.{k}", files[k]) for k in files):
            return None
    return record if status.startswith(("ok", "skipped")) else None


def _csv_rows(record: dict) -> list[dict]:
    base = {k: record.get(k) for k in ("image", "output", "status", "class_index", "class_name", "region",
                                       "region_pixels")}
    base.update(label_scores.summary_cells(record))  # with --labels: mean_iou, iou_<class>, truth_note
    if not record.get("rows"):
        return [dict(base)]
    return [{**base, **row} for row in record["rows"]]


def csv_cell(value: Any) -> Any:
    """A summary cell: text that a spreadsheet would read as a formula (starting with = + - @, tab or
    carriage return, e.g. an image named `=HYPERLINK(...).png`) gets a leading `'`, as OWASP advises;
    numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write_summary(out: Path, records: Iterable[dict]) -> None:
    """summary.csv: one row per image and method (one row for a skipped or failed image), atomically; with
    `--labels` also the image's `mean_iou`, `iou_<class>` (empty: class in neither map) and `truth_note`."""
    records = list(records)
    fields = (*CSV_FIELDS[:-1], *label_scores.summary_columns(records), CSV_FIELDS[-1])
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writerow({f: csv_cell(f) for f in fields})  # the header through the same guard: class names are in it
    for record in records:
        for row in _csv_rows(record):
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
    atomic_write(out / SUMMARY_FILE, text.getvalue().encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# The run


def _validate(args) -> dict[str, Any]:
    """Check the command line and load the model once; everything a run needs, or UsageError."""
    from explainers import registry
    from explainers.errors import ExplainerError

    methods = tuple(dict.fromkeys(args.methods or ["gradcam"]))
    unknown = [m for m in methods if m not in registry.ALL_METHODS]
    if unknown:
        raise UsageError(f"--method {', '.join(unknown)}: unknown; choose from {', '.join(registry.ALL_METHODS)}.")
    class_names = [c.strip() for c in args.class_names.split(",") if c.strip()]
    try:  # early, so a mistake is told before the model loads; a name may still be one the file stores
        parse_region(args.region, class_names)
        if args.class_ is not None:
            parse_class(args.class_, class_names, "--class")
    except UsageError:
        if class_names:
            raise
    if args.metric_steps < 1 or (args.xrai_steps or 2) < 2 or (args.scorecam_channels or 1) < 1:
        raise UsageError("--metric-steps must be ≥ 1, --xrai-steps ≥ 2 and --scorecam-channels ≥ 1.")
    chosen_options = method_options(args)
    if args.batch_size < 1 or (args.workers is not None and args.workers < 1):
        raise UsageError("--batch-size and --workers must be ≥ 1.")
    if args.working_size < 0:
        raise UsageError("--working-size must be ≥ 0 (0: the image's own size).")
    if args.randomization_steps < 0:
        raise UsageError("--randomization-steps must be ≥ 0 (0: no randomisation check).")
    if args.address and args.engine != "ray":
        raise UsageError("--address is for --engine ray.")
    if args.labels is not None and not args.labels.is_dir():
        raise UsageError(f"--labels {str(args.labels)!r} is not a folder.")
    files = _image_files(args.images)
    check_folders(args.images, args.out, args.labels)
    preprocessing = {}
    try:
        from explainers.torch_files import parse_triple

        for key in ("mean", "std"):
            if getattr(args, key) is not None:
                preprocessing[key] = parse_triple(getattr(args, key), f"--{key}")
    except ExplainerError as error:
        raise UsageError(str(error)) from None
    model, summary = load_model(args.model, preprocessing)
    if getattr(model, "file_preprocessing", None) is not None:  # once, here: workers load the file again
        print(f"{Path(args.model).name}: {model.file_preprocessing.describe()}", file=sys.stderr)
    if class_names and len(class_names) != summary.num_classes:
        raise UsageError(f"--class-names lists {len(class_names)} names but the model has {summary.num_classes} classes.")
    class_names = class_names or _stored_names(model, summary.num_classes)
    region = parse_region(args.region, class_names)
    wanted = [i for i in (region[1], parse_class(args.class_, class_names, "--class") if args.class_ else None)
              if i is not None]
    for index in wanted:
        if not 0 <= index < summary.num_classes:
            raise UsageError(f"Class {index} is out of range: the model has classes 0 to {summary.num_classes - 1}.")
    needs_layer = any(m not in registry.LAYER_FREE_METHODS for m in methods)
    if args.layer is not None and needs_layer:
        from explainers import graph

        try:
            graph.check_layer(model, args.layer)
        except ExplainerError as error:
            raise UsageError(f"--layer: {error}") from None
    options = {"methods": methods, "region": region, "region_spec": args.region, "class": args.class_,
               "class_names": class_names, "layer": args.layer, "target": args.target, "metrics": bool(args.metrics),
               "metric_steps": args.metric_steps, "metric_target": args.metric_target,
               "randomization_steps": args.randomization_steps,
               "xrai_steps": _xrai_steps(args), "scorecam_channels": _scorecam_channels(args),
               "method_options": chosen_options,
               "preprocessing": preprocessing, "working_size": (args.working_size, args.fit)}
    return {"files": files, "options": options, "num_classes": summary.num_classes,
            "settings": _settings(args, methods, args.region, class_names)}


def _engine(args) -> Callable[..., Iterator[dict]]:
    if args.engine == "local":
        return local_engine
    from explainers import ray_engine

    ray_engine.require_ray()
    return ray_engine.ray_engine


def lock_folder(out: Path):
    """Hold the output folder for this run (an open file with an exclusive `flock`; the OS releases it
    when the process ends, even when killed). A second run on the same folder gets a UsageError."""
    import fcntl

    handle = open(out / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UsageError(
            f"--out {str(out)!r} is being written by another batch run ({holder}): wait for it to end, or "
            "choose another output folder."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    return handle


def _option_of(key: str) -> str:
    return {"model_sha256": "--model (another file)", "images": "--images", "class": "--class",
            "methods": "--method", "method_options": "--option"}.get(key, "--" + key.replace("_", "-"))


def check_identity(out: Path, identity: dict, force: bool) -> None:
    """Refuse to mix or replace another run's results: when `out` holds a run.json made with other
    settings (model, methods, region, layer, ..., images folder), say which differ; `--force` replaces."""
    try:
        earlier = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(earlier, dict) or not isinstance(earlier.get("settings"), dict):
        return
    before = {**earlier["settings"], "images": earlier.get("images")}
    differ = [key for key in identity if key in before and before[key] != identity[key]]
    if differ and not force:
        raise UsageError(
            f"--out {str(out)!r} holds the results of a run with other settings ({', '.join(map(_option_of, differ))} "
            f"{'differ' if len(differ) > 1 else 'differs'}): choose another output folder, or pass --force to replace those results."
        )


def _stopped(out: Path, error: BaseException, saved: int) -> str:
    if isinstance(error, EngineLost):
        return (f"The run stopped because {error}: the {saved} images finished so far are saved intact in "
                f"{str(out)!r}; run the same command again to resume.")
    reason = getattr(error, "strerror", None) or type(error).__name__
    return (f"The run stopped because {str(out)!r} cannot be written ({reason}): the {saved} images finished so far "
            "are saved intact; free some space (or fix the folder) and run the same command again to resume.")


def run(args) -> int:
    """Run the batch described by parsed arguments; returns the exit code (UsageError → caller)."""
    if args.engine == "ray":
        from explainers import ray_engine

        ray_engine.require_ray()  # before any work: the message names the package to install
    plan = _validate(args)
    lock = lock_folder(args.out)
    try:
        return _run_locked(args, plan)
    finally:
        lock.close()


def _run_locked(args, plan: dict[str, Any]) -> int:
    files, settings, out = plan["files"], plan["settings"], args.out
    check_identity(out, {**settings, "images": str(args.images.resolve())}, args.force)
    skipped = skipped_files(args.images)
    names = output_names(files)
    names_of = {p.name: names[p] for p in files}
    class_names = plan["options"]["class_names"] or [str(i) for i in range(plan["num_classes"])]
    run_info = {"format": FORMAT, "images": str(args.images.resolve()),
                "labels": str(args.labels.resolve()) if args.labels else None, "class_names": class_names,
                "num_classes": plan["num_classes"], "methods": list(plan["options"]["methods"]),
                "method_keys": {m: m.replace("+", "p") for m in plan["options"]["methods"]},
                "outputs": names_of, "settings": settings, "skipped_files": skipped}
    atomic_write(out / RUN_FILE, json.dumps(run_info, indent=1).encode("utf-8"))
    records: dict[str, dict] = {}
    todo = []
    for path in files:
        record = None if args.force else done_record(out, names[path], settings, image=path.name)
        if record is not None:
            records[path.name] = record
        else:
            label_path = _label_file(args.labels, path)
            item = {"image": path.name, "output": names[path], "path": str(path),
                    "labels_path": str(label_path) if label_path else None}
            if args.labels and label_path is None:  # said in the record, so a missing file is not a silent gap
                wanted = " or ".join(dict.fromkeys((f"{path.stem}.png", path.name)))
                item["truth_error"] = f"no ground truth: --labels holds no {wanted}."
            todo.append(item)
    order = [p.name for p in files]

    def ordered() -> list[dict]:
        return [records[n] for n in order if n in records]

    bar = _Progress(len(files))
    bar.show(len(records), "resuming" if records else "starting")
    engine = _engine(args)
    fresh, last_summary = 0, time.monotonic()
    stopped: BaseException | None = None
    try:
        for result in engine(Path(args.model), plan["options"], todo, address=args.address, workers=args.workers,
                             batch_size=args.batch_size):
            try:
                record = store(out, result, settings)
            except OSError as error:  # disk full, quota, folder gone: stop, keep what is written
                stopped = error
                break
            records[record["image"]] = record
            fresh += 1
            bar.show(len(records), record["image"], fresh)
            if time.monotonic() - last_summary >= SUMMARY_SECONDS:  # O(rows) each: not after every image
                write_summary(out, ordered())
                last_summary = time.monotonic()
    except EngineLost as error:
        stopped = error
    finally:
        try:
            write_summary(out, ordered())
        except OSError as error:
            stopped = stopped or error
        bar.close()
    if stopped is not None:
        sys.stderr.write(_stopped(out, stopped, len(records)) + "\n")
        return EXIT_STOPPED
    statuses = [str(r.get("status", "")) for r in records.values()]
    failures = sum(s.startswith("error") for s in statuses)
    line = (f"{len(records)} images: {sum(s == 'ok' for s in statuses)} explained, "
            f"{sum(s.startswith('skipped') for s in statuses)} skipped (no pixel of the class), {failures} failed")
    if skipped:
        shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        line += f"; not images, left out: {shown}"
    print(line + f". Results in {str(out)}.")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"{parser.prog}: error: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
