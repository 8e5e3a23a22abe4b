"""Dataset-level answers from a batch run's per-image outputs (pure NumPy; files in, tables out).

    python -m explainers.dataset_analysis RESULTS [RESULTS ...] [--out DIR]

Why: one map says where the network looked for one image; an audit needs the pattern over a data set.
From the `.npz` / `.json` / `summary.csv` files of `explainers.batch` (several runs can be combined, e.g.
one per explained class) this computes:

- the **context-reliance matrix**: for explained class c and class k, the share of c's attribution
  mass (the sum of the non-negative heatmap) that lies on pixels of class k, once with the predicted
  labels and once with the ground truth where the run had `--labels`, averaged over the images whose
  explained class is c (each image counts once). Row c sums to 1. "The network finds the volva through
  the stipe" becomes the number in row volva, column stipe.
- per method, the **deletion and insertion scores** against the random baseline of the same images;
- per method, **can the maps be trusted** (`trust` table, with `--metrics`): the mean localisation
  scores on the ground truth of the explained class (relevance mass and rank accuracy, energy-based
  and plain pointing game) and of the randomisation check (lowest and last Spearman ρ, last SSIM), and
  the share of images whose map "barely changes" as the network is randomised, beside the random map;
- the images where the **methods disagree** most (1 − mean pairwise Pearson correlation of the maps)
  and where the **attribution falls mostly outside** the explained class (predicted labels);
- with `--labels`, the explained images **ranked by mean IoU**, worst first, with their IoU per class
  (`iou` table, from the records' numbers: `explainers.label_scores.ranking`).

Written to `DIR` (default `RESULTS/analysis`) as CSV files, plus Parquet copies when `pyarrow` is
installed: image_shares, context_matrix, faithfulness, trust, disagreement, outside, iou (see `TABLES`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from explainers import label_scores, records

SOURCES = ("predicted", "labelled")
TABLES = ("image_shares", "context_matrix", "faithfulness", "trust", "disagreement", "outside", "iou")
TRUST_COLUMNS = ("mass_accuracy", "rank_accuracy", "energy_pointing_game", "pointing_game", "randomization_rho_min",
                 "randomization_rho_last", "randomization_ssim_last")  # as `explainers.trust.COLUMNS`
BARELY_CHANGES_RHO = 0.5  # as `explainers.randomization.BARELY_CHANGES_RHO` (not imported: this module stays NumPy)
MOSTLY_OUTSIDE = 0.5  # an image is listed as "mostly outside" when less than half the mass is on its class


@dataclass
class ImageResult:
    """One explained image: its maps and label maps, as the batch run saved them."""

    run: Path
    image: str
    output: str
    class_index: int
    heatmaps: dict[str, np.ndarray]
    labels: np.ndarray
    truth: np.ndarray | None = None


@dataclass
class Run:
    """A batch run folder: class names, methods and summary rows."""

    folder: Path
    class_names: list[str]
    methods: list[str]
    summary: list[dict[str, str]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


def read_run(folder: str | Path) -> Run:
    """The run description of a batch output folder; ValueError with one sentence when it is not one."""
    folder = Path(folder)
    try:
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValueError(f"{folder} has no readable run.json: it is not a batch results folder.") from None
    summary: list[dict[str, str]] = []
    if (folder / "summary.csv").is_file():
        with (folder / "summary.csv").open(newline="", encoding="utf-8") as handle:
            summary = list(csv.DictReader(handle))
    records = []
    for output in dict.fromkeys(info.get("outputs", {}).values()):
        try:
            record = json.loads((folder / f"{output}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if record.get("status") == "ok":
            records.append(record)
    return Run(folder, list(info.get("class_names", [])), list(info.get("methods", [])), summary, records)


def images_of(run: Run) -> Iterable[ImageResult]:
    """The explained images of a run, one at a time (a large run does not fit in memory at once)."""
    for record in run.records:
        path = run.folder / f"{record['output']}.npz"
        try:
            with np.load(path, allow_pickle=False) as saved:
                heatmaps = {m: saved[f"heatmap_{records.array_key(m)}"] for m in run.methods
                            if f"heatmap_{records.array_key(m)}" in saved.files}
                truth = saved["truth"] if "truth" in saved.files else None
                yield ImageResult(run.folder, record["image"], record["output"], int(record["class_index"]),
                                  heatmaps, saved["labels"], truth)
        except (OSError, ValueError, KeyError):
            continue


def class_shares(heatmap: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of the non-negative attribution mass on each class's pixels (NaN when the map is all zero)."""
    mass = np.clip(np.nan_to_num(np.asarray(heatmap, np.float64)), 0, None)
    if mass.shape != labels.shape:
        raise ValueError(f"heatmap {mass.shape} and labels {labels.shape} differ in shape")
    total = mass.sum()
    if total <= 0:
        return np.full(num_classes, np.nan)
    valid = (labels >= 0) & (labels < num_classes)
    return np.bincount(labels[valid].ravel(), weights=mass[valid].ravel(), minlength=num_classes) / total


def map_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps over pixels (NaN when one of them is constant)."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    norm = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / norm if norm > 0 else math.nan


def _name(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def analyse_images(results: Iterable[ImageResult], class_names: Sequence[str]) -> dict[str, list[dict]]:
    """image_shares, disagreement and outside rows from the per-image maps."""
    k = len(class_names)
    shares, disagreement, outside = [], [], []
    for item in results:
        c = item.class_index
        base = {"run": str(item.run), "image": item.image, "output": item.output, "explained_class": c,
                "explained_name": _name(class_names, c)}
        for method, heat in item.heatmaps.items():
            for source, labels in (("predicted", item.labels), ("labelled", item.truth)):
                if labels is None:
                    continue
                values = class_shares(heat, labels, k)
                for j in range(k):
                    shares.append({**base, "method": method, "source": source, "class": j,
                                   "class_name": _name(class_names, j), "share": float(values[j])})
                if source == "predicted" and not np.isnan(values[c]):
                    outside.append({**base, "method": method, "inside_share": float(values[c]),
                                    "outside_share": float(1 - values[c]),
                                    "mostly_outside": bool(values[c] < MOSTLY_OUTSIDE)})
        methods = sorted(item.heatmaps)
        if len(methods) >= 2:
            pairs = [map_correlation(item.heatmaps[a], item.heatmaps[b]) for a, b in combinations(methods, 2)]
            finite = [p for p in pairs if not math.isnan(p)]
            mean = float(np.mean(finite)) if finite else math.nan
            disagreement.append({**base, "methods": " ".join(methods), "mean_correlation": mean,
                                 "disagreement": 1 - mean if finite else math.nan})
    disagreement.sort(key=lambda r: -r["disagreement"] if not math.isnan(r["disagreement"]) else math.inf)
    outside.sort(key=lambda r: -r["outside_share"])
    return {"image_shares": shares, "disagreement": disagreement, "outside": outside}


def context_matrix(share_rows: Iterable[dict]) -> list[dict]:
    """Mean share per (method, source, explained class, class) over images; NaN shares are left out."""
    groups: dict[tuple, list[float]] = {}
    names: dict[tuple, tuple[str, str]] = {}
    for row in share_rows:
        if math.isnan(row["share"]):
            continue
        key = (row["method"], row["source"], row["explained_class"], row["class"])
        groups.setdefault(key, []).append(row["share"])
        names[key] = (row["explained_name"], row["class_name"])
    return [{"method": m, "source": s, "explained_class": c, "explained_name": names[(m, s, c, j)][0],
             "class": j, "class_name": names[(m, s, c, j)][1], "mean_share": float(np.mean(v)), "images": len(v)}
            for (m, s, c, j), v in sorted(groups.items())]


def matrix(rows: Iterable[dict], method: str, source: str, num_classes: int) -> np.ndarray:
    """The context-reliance matrix of one method and label source as a K×K array (NaN: no image)."""
    out = np.full((num_classes, num_classes), np.nan)
    for row in rows:
        if row["method"] == method and row["source"] == source:
            c, j = int(row["explained_class"]), int(row["class"])
            if 0 <= c < num_classes and 0 <= j < num_classes:
                out[c, j] = float(row["mean_share"])
    return out


def top_images(share_rows: Iterable[dict], method: str, source: str, explained_class: int, class_index: int,
               count: int = 10) -> list[dict]:
    """The images with the largest share in one matrix cell (those contributing most to its mean)."""
    picked = [r for r in share_rows if r["method"] == method and r["source"] == source
              and int(r["explained_class"]) == explained_class and int(r["class"]) == class_index
              and not math.isnan(float(r["share"]))]
    return sorted(picked, key=lambda r: -float(r["share"]))[:count]


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _spread(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if not math.isnan(v)], np.float64)
    if arr.size == 0:
        return {"mean": math.nan, "median": math.nan, "p10": math.nan, "p90": math.nan}
    return {"mean": float(arr.mean()), "median": float(np.median(arr)), "p10": float(np.percentile(arr, 10)),
            "p90": float(np.percentile(arr, 90))}


def faithfulness_table(summary_rows: Iterable[dict]) -> list[dict]:
    """Per method: spread of deletion and insertion AUCs, and how often it beats the random map.

    Deletion: lower is better; insertion: higher is better. "Beats random" compares the method with
    the random baseline of the same image (run and image)."""
    by_method: dict[str, dict[tuple, tuple[float, float]]] = {}
    for row in summary_rows:
        if row.get("status") != "ok" or not row.get("deletion_auc"):
            continue
        key = (row.get("run", ""), row["image"])
        by_method.setdefault(row["method"], {})[key] = (_number(row["deletion_auc"]), _number(row["insertion_auc"]))
    random = by_method.get("random", {})
    table = []
    for method in sorted(by_method, key=lambda m: (m == "random", m)):
        scores = by_method[method]
        deletion = [d for d, _ in scores.values()]
        insertion = [i for _, i in scores.values()]
        row = {"method": method, "images": len(scores),
               **{f"deletion_{k}": v for k, v in _spread(deletion).items()},
               **{f"insertion_{k}": v for k, v in _spread(insertion).items()}}
        paired = [(scores[k], random[k]) for k in scores if k in random]
        if method != "random" and paired:
            row["beats_random_deletion"] = float(np.mean([s[0] < r[0] for s, r in paired]))
            row["beats_random_insertion"] = float(np.mean([s[1] > r[1] for s, r in paired]))
            row["deletion_minus_random"] = float(np.mean([s[0] - r[0] for s, r in paired]))
            row["insertion_minus_random"] = float(np.mean([s[1] - r[1] for s, r in paired]))
        table.append(row)
    return table


def trust_table(summary_rows: Iterable[dict]) -> list[dict]:
    """Per method (the random map last): images with trust numbers, the mean of each trust column over the
    images that have it, and the share of images whose map barely changes (lowest ρ ≥ the threshold)."""
    by_method: dict[str, dict[str, list[float]]] = {}
    for row in summary_rows:
        if row.get("status") != "ok" or not any(row.get(c) not in (None, "") for c in TRUST_COLUMNS):
            continue
        values = by_method.setdefault(row["method"], {"images": []})
        values["images"].append(1.0)
        for column in TRUST_COLUMNS:
            number = _number(row.get(column))
            if not math.isnan(number):
                values.setdefault(column, []).append(number)
    table = []
    for method in sorted(by_method, key=lambda m: (m == "random", m)):
        values = by_method[method]
        row: dict[str, Any] = {"method": method, "images": len(values["images"])}
        for column in TRUST_COLUMNS:
            row[column] = float(np.mean(values[column])) if values.get(column) else math.nan
        rhos = values.get("randomization_rho_min", [])
        row["barely_changes_share"] = float(np.mean([r >= BARELY_CHANGES_RHO for r in rhos])) if rhos else math.nan
        table.append(row)
    return table


def analyse(folders: Sequence[str | Path]) -> dict[str, Any]:
    """All tables for one or more batch runs (which must share class names)."""
    runs = [read_run(f) for f in folders]
    names = runs[0].class_names
    for run in runs[1:]:
        if run.class_names != names:
            raise ValueError(f"{run.folder} has other class names than {runs[0].folder}: analyse them separately.")
    tables = {"image_shares": [], "disagreement": [], "outside": [], "iou": []}
    summary = []
    for run in runs:
        tables["iou"].extend(label_scores.ranking(run.records, str(run.folder)))
        for key, rows in analyse_images(images_of(run), names).items():
            tables[key].extend(rows)
        summary.extend({**row, "run": str(run.folder)} for row in run.summary)
    tables["disagreement"].sort(key=lambda r: -r["disagreement"] if not math.isnan(r["disagreement"]) else math.inf)
    tables["outside"].sort(key=lambda r: -r["outside_share"])
    tables["iou"].sort(key=lambda r: (r["mean_iou"], r["image"]))
    tables["context_matrix"] = context_matrix(tables["image_shares"])
    tables["faithfulness"] = faithfulness_table(summary)
    tables["trust"] = trust_table(summary)
    methods = list(dict.fromkeys(m for run in runs for m in run.methods))
    return {"class_names": names, "methods": methods, "tables": tables}


def write_tables(result: dict[str, Any], out: str | Path) -> list[Path]:
    """CSV files (and Parquet when pyarrow is installed) of every table, plus analysis.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        rows = result["tables"][name]
        fields = list(dict.fromkeys(k for row in rows for k in row)) or ["empty"]
        path = out / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            continue
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), out / f"{name}.parquet")
            written.append(out / f"{name}.parquet")
    (out / "analysis.json").write_text(json.dumps({"class_names": result["class_names"],
                                                   "methods": result["methods"], "tables": list(TABLES)}, indent=1),
                                       encoding="utf-8")
    return written


def read_table(folder: str | Path, name: str) -> list[dict]:
    """A table written by `write_tables`, numbers parsed back (for the dashboard)."""
    with (Path(folder) / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key, value in row.items():
            if key in ("explained_class", "class", "images"):
                row[key] = int(value)
            elif key in ("share", "mean_share", "inside_share", "outside_share", "disagreement", "mean_correlation",
                         label_scores.MEAN_COLUMN) or (name == "iou" and key.startswith("iou_")):
                row[key] = _number(value)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explainers.dataset_analysis", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="batch output folder(s)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default RESULTS/analysis)")
    args = parser.parse_args(argv)
    try:
        result = analyse(args.results)
    except ValueError as error:
        parser.error(str(error))
    paths = write_tables(result, args.out or args.results[0] / "analysis")
    print(f"{len(result['tables']['disagreement']) or len({r['image'] for r in result['tables']['outside']})} "
          f"images analysed; wrote {', '.join(p.name for p in paths)} to {paths[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------------------------------------
# Opening results for a viewer (the dashboard): whole tables and one image's arrays


def run_folders(folder: str | Path) -> list[Path]:
    """The batch runs in `folder`: itself when it holds run.json, else its subfolders that do."""
    folder = Path(folder)
    if (folder / "run.json").is_file():
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "run.json").is_file())


def open_results(folder: str | Path) -> dict[str, Any]:
    """Tables of a results folder: written ones (analysis.json there) or computed from its runs.

    Raises ValueError with one sentence when the folder holds neither."""
    folder = Path(folder)
    if (folder / "analysis.json").is_file():
        info = json.loads((folder / "analysis.json").read_text(encoding="utf-8"))
        return {"class_names": info["class_names"], "methods": info["methods"],
                "tables": {name: read_table(folder, name) for name in TABLES if (folder / f"{name}.csv").is_file()}}
    runs = run_folders(folder) if folder.is_dir() else []
    if not runs:
        raise ValueError(f"{folder.name or folder} holds no batch results (run.json) and no analysis (analysis.json).")
    return analyse(runs)


def image_arrays(run: str | Path, output: str) -> dict[str, Any]:
    """The fitted image, explained region, class, predicted labels and (when saved) ground truth of one
    batch output."""
    with np.load(Path(run) / f"{output}.npz", allow_pickle=False) as saved:
        if "image" not in saved.files:
            raise ValueError(f"{output}.npz has no image (made by an older batch run): rerun the batch.")
        return {"image": saved["image"], "region": saved["region"].astype(bool),
                "class_index": int(saved["class_index"]) if "class_index" in saved.files else None,
                "labels": saved["labels"] if "labels" in saved.files else None,
                "truth": saved["truth"] if "truth" in saved.files else None}
