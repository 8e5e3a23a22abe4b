"""Batch run at scale: the local engine (one process) vs the Ray engine (two workers) on the same scenes.

Both engines explain the same generated scenes with the shipped network, the same methods and the
faithfulness metrics, into fresh folders; wall time includes loading the model (and starting Ray),
as a user would see it. The ratio is measured in the same run; on a shared 2-core machine two Ray
workers can at best double the rate, and other processes' load lowers it. The summaries of the two
runs are compared (timings aside): the benchmark also checks that Ray gives the same results.

Run: `python -m benchmarks.batch_scale [--quick] [--count N] [--write]` (default 200 scenes; --quick 12);
`--write` puts the section into benchmarks/RESULTS.md (replacing an earlier one): this benchmark takes
minutes, so `benchmarks.run_all` does not run it.

`--pinned` measures scaling that means something on a small machine: the local engine on one core
(`os.sched_setaffinity`) with TensorFlow on one thread (TF_NUM_INTRAOP/INTEROP_THREADS=1), against Ray
with 2 workers each pinned the same way to a core of its own (`explainers.ray_engine.PIN_ENV`). Both run
as `python -m explainers.batch` subprocesses; the throughput is taken between the first and the last
image written (start-up apart), and per-image cost and peak memory are reported. It prints one summary
line and, with `--write`, replaces only its own part of RESULTS.md (between the `batch_scale_pinned`
markers). Target: Ray with 2 pinned workers ≥ 1.8× the pinned local engine.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS_PATH, Section

METHODS = ("gradcam", "gradcam++", "hirescam")


def _rows(out: Path) -> list[dict]:
    with (out / "summary.csv").open(newline="") as handle:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(handle)]


def _timed_run(argv: list[str]) -> float:
    from explainers import batch

    start = time.perf_counter()
    code = batch.main(argv)
    if code != 0:
        raise RuntimeError(f"batch run failed with exit code {code}")
    return time.perf_counter() - start


def run(quick: bool = False, count: int | None = None, workers: int = 2, metric_steps: int = 10) -> Section:
    from models import CLASS_NAMES, export, scenes

    count = count or (12 if quick else 200)
    section = Section(f"Batch run: local engine vs Ray ({workers} workers), {count} generated scenes")
    work = Path(tempfile.mkdtemp(prefix="segexplain-scale-"))
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short path: Ray's socket names have a length limit
    os.environ.setdefault("SEGEXPLAIN_RAY_TMP", ray_tmp)
    try:
        model = export.export(work / "model.keras")
        scenes.write_folder(work / "scenes", count, seed=7)
        common = ["--model", str(model), "--images", str(work / "scenes" / "images"),
                  "--labels", str(work / "scenes" / "labels"), "--class-names", ",".join(CLASS_NAMES),
                  "--metrics", "--metric-steps", str(metric_steps)]
        for method in METHODS:
            common += ["--method", method]
        local = _timed_run([*common, "--out", str(work / "local")])
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        ray = _timed_run([*common, "--out", str(work / "ray"), "--engine", "ray", "--workers", str(workers),
                          "--batch-size", "4"])
        same = _rows(work / "local") == _rows(work / "ray")
        section.row("images", str(count))
        section.row("methods", f"{', '.join(METHODS)} + deletion/insertion ({metric_steps} steps)")
        section.row("local engine, 1 process", f"{local:.1f} s, {count / local:.2f} images/s")
        section.row(f"Ray engine, {workers} workers", f"{ray:.1f} s, {count / ray:.2f} images/s")
        section.row("Ray / local throughput", f"{local / ray:.2f}×")
        section.row("per-image cost, one worker (local, incl. start-up)", f"{local / count:.3f} s")
        section.row("peak resident memory of the local run's process (model + one image's work)", f"{peak_mb:.0f} MB")
        section.row("CPU cores on this machine", f"{os.cpu_count()} (shared with other jobs while measured)")
        section.target("Ray and local summaries identical (timings aside)", same)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return section


PINNED_START, PINNED_END = "<!-- batch_scale_pinned:start -->", "<!-- batch_scale_pinned:end -->"


def _pinned_run(argv: list[str], out: Path, env: dict, core: int | None) -> dict:
    """One batch run as a subprocess (pinned to `core` when given): wall time, steady throughput, memory."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "explainers.batch", *argv, "--out", str(out)], cwd=root, env=env,
                          preexec_fn=pin, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"batch run failed ({done.returncode}): {done.stderr[-500:]}")
    stamps = sorted(p.stat().st_mtime for p in out.glob("*.json") if p.name != "run.json")
    steady = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall": wall, "rate": steady, "per_image": 1 / steady, "peak_mb": max(peak, before) / 1024}


def run_pinned(count: int = 48, workers: int = 2, methods: tuple[str, ...] = METHODS) -> Section:
    from models import CLASS_NAMES, export, scenes

    cores = sorted(os.sched_getaffinity(0))
    section = Section(f"Batch scaling, one core per worker: local engine vs Ray ({workers} workers), {count} scenes")
    work = Path(tempfile.mkdtemp(prefix="segexplain-pinned-"))
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    try:
        model = export.export(work / "model.keras")
        scenes.write_folder(work / "scenes", count, seed=7)
        argv = ["--model", str(model), "--images", str(work / "scenes" / "images"),
                "--class-names", ",".join(CLASS_NAMES), "--metrics", "--metric-steps", "10"]
        for method in methods:
            argv += ["--method", method]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
               "SEGEXPLAIN_RAY_TMP": ray_tmp, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        local = _pinned_run(argv, work / "local", env, cores[0])
        ray = _pinned_run([*argv, "--engine", "ray", "--workers", str(workers), "--batch-size", "2"], work / "ray",
                          {**env, "SEGEXPLAIN_PIN_ONE_CORE": "1"}, None)
        ratio = ray["rate"] / local["rate"]
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        section.row("images, methods", f"{count}; {', '.join(methods)} + deletion/insertion (10 steps)")
        section.row("local engine, 1 core, 1 TF thread", f"{local['rate']:.2f} images/s steady "
                    f"({local['per_image'] * 1000:.0f} ms per image), {local['wall']:.1f} s wall incl. start-up")
        section.row(f"Ray, {workers} workers, 1 core + 1 TF thread each", f"{ray['rate']:.2f} images/s steady "
                    f"({ray['per_image'] * 1000:.0f} ms per image per cluster), {ray['wall']:.1f} s wall incl. Ray start")
        section.row("Ray / local throughput (steady)", f"{ratio:.2f}×")
        section.row("Ray / local, wall time incl. start-up", f"{local['wall'] / ray['wall']:.2f}×")
        section.row("peak resident memory of a run's largest process", f"{local['peak_mb']:.0f} MB (local), "
                    f"{ray['peak_mb']:.0f} MB (largest child so far, the Ray run's driver or a worker)")
        section.row("machine", f"{len(cores)} cores usable, load average {load} at the end")
        section.target(f"Ray with {workers} pinned workers ≥ 1.8× the pinned local engine", ratio >= 1.8)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    print(f"batch_scale --pinned: local {local['rate']:.2f} img/s, Ray×{workers} {ray['rate']:.2f} img/s, "
          f"ratio {ratio:.2f}× (target 1.8×), load {load}")
    return section


def write_pinned(markdown: str) -> None:
    from benchmarks.common import replace_block

    note = "Written by `python -m benchmarks.batch_scale --pinned --write` (not by run_all).\n\n"
    RESULTS_PATH.write_text(replace_block(RESULTS_PATH.read_text(encoding="utf-8"), PINNED_START, PINNED_END,
                                          note + markdown), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with 12 scenes")
    parser.add_argument("--count", type=int, default=None, help="number of scenes (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (default 2)")
    parser.add_argument("--metric-steps", type=int, default=10, help="deletion/insertion steps (default 10)")
    parser.add_argument("--write", action="store_true", help="put the section into benchmarks/RESULTS.md")
    parser.add_argument("--pinned", action="store_true",
                        help="one core and one TensorFlow thread per worker: local engine vs Ray (default 48 scenes)")
    args = parser.parse_args()
    if args.pinned:
        section = run_pinned(count=args.count or (8 if args.quick else 48), workers=args.workers)
        print(section.markdown())
        if args.write:
            write_pinned(section.markdown())
        return
    section = run(quick=args.quick, count=args.count, workers=args.workers, metric_steps=args.metric_steps)
    print(section.markdown())
    if args.write:
        write_section(section.markdown())


def write_section(markdown: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it), leaving the others as they are."""
    text = RESULTS_PATH.read_text(encoding="utf-8")
    marker = "## Batch run: local engine vs Ray"
    note = "(written by `python -m benchmarks.batch_scale --write`, not by run_all)\n\n"
    if marker in text:
        head, rest = text.split(marker, 1)
        tail = rest.split("\n## ", 1)
        text = head + (f"## {tail[1]}" if len(tail) == 2 else "")
    text = text.rstrip("\n") + "\n\n" + markdown.replace("\n\n", "\n\n" + note, 1)
    RESULTS_PATH.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
