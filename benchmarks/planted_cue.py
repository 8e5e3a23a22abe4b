"""Known-truth benchmark: does each method point at the planted cue the network must read?

The planted-cue network (`models.planted_cue`) decides a cap's class from a coloured mark elsewhere in
the scene (its card shows it: remove the mark and the cap's class is a coin toss, swap its colour and
the class follows). For each held-out scene the network gets right, every method explains the true
cap pixels for their class; we report the share of the map's relevance on the mark
(`localization.mass_accuracy`, which equals the energy-based pointing game for the square mark) and
the pointing-game hit rate on the mark (tolerance `TOLERANCE` px: Zhang et al.'s 15 px at 224 px
scaled to 96 px), beside a random map's, plus the share on the explained cap itself for context.
Layer methods run at each of `LAYERS`.

Run: `python -m benchmarks.planted_cue [--scenes 100] [--write]`; `--quick` is the smoke run CI uses
(a few scenes, small settings for the slow methods).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from benchmarks.common import RESULTS_PATH, replace_block

LAYERS = ("final_conv", "block4_conv3")
TOLERANCE = 6
START, END = "<!-- planted_cue:start -->", "<!-- planted_cue:end -->"
QUICK_OPTIONS = {"xrai": {"steps": 4}, "scorecam": {"channels": 4}, "rise": {"masks": 40}, "integrated-gradients": {"steps": 4},
                 "guided-ig": {"steps": 4}, "blur-ig": {"steps": 4}, "smoothgrad": {"samples": 3}}


def run(scenes: int = 100, methods: Sequence[str] | None = None, quick: bool = False,
        layers: Sequence[str] = LAYERS, progress: bool = True) -> dict:
    """Scores per (method, layer) row over `scenes` correctly classified held-out scenes."""
    import numpy as np

    import explainers
    from explainers import localization, registry
    from models import planted_cue as pc

    model = pc.load()
    methods = tuple(registry.ALL_METHODS if methods is None else methods)
    options = QUICK_OPTIONS if quick else None
    options = {k: v for k, v in (options or {}).items() if k in methods}
    rows: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    used = skipped = 0
    index = 0
    start = time.perf_counter()
    while used < scenes:
        image, labels, cue, cue_class, _plain = pc.scene(pc.HELDOUT_SEED, index)
        index += 1
        truth = labels == cue_class
        predicted = explainers.predict(model, image).labels
        votes = np.bincount(predicted[truth], minlength=len(pc.CLASS_NAMES))
        if not truth.any() or votes[pc.CAP_BLUE:pc.CAP_MAGENTA + 1].argmax() + pc.CAP_BLUE != cue_class:
            skipped += 1  # the network did not read the mark here: nothing known to explain
            continue
        used += 1
        layer_free = [m for m in methods if registry.get(m).layer_free]
        layered = [m for m in methods if not registry.get(m).layer_free]
        runs = [(None, layer_free)] + [(layer, layered) for layer in layers]
        for layer, names in runs:
            if not names:
                continue
            began = time.perf_counter()
            maps = explainers.explain(model, image, truth, cue_class, layer or LAYERS[0], names, options=options)
            spent = time.perf_counter() - began
            for name, explanation in maps.items():
                key = name if layer is None else f"{name} @ {layer}"
                _score(rows.setdefault(key, {}), explanation.heatmap, cue, truth)
                seconds[key] = seconds.get(key, 0.0) + spent / len(names)
        _score(rows.setdefault("random", {}), localization.random_map(truth.shape, seed=index), cue, truth)
        if progress:
            print(f"  scene {used}/{scenes} ({time.perf_counter() - start:.0f} s)", flush=True)
    table = [dict(method=key, **{k: float(np.mean(v)) for k, v in scores.items()},
                  seconds=seconds.get(key, 0.0) / used) for key, scores in rows.items()]
    return dict(rows=table, scenes=used, skipped=skipped, seconds=time.perf_counter() - start, quick=quick,
                cue_share_of_image=float(pc.MARK_SIZE ** 2 / pc.INPUT_SIZE ** 2), seed=pc.HELDOUT_SEED)


def _score(into: dict[str, list[float]], heat, cue, truth) -> None:
    from explainers import localization

    into.setdefault("cue_share", []).append(localization.mass_accuracy(heat, cue))
    into.setdefault("pointing", []).append(localization.pointing_game(heat, cue, TOLERANCE))
    into.setdefault("cap_share", []).append(localization.mass_accuracy(heat, truth))


def markdown(result: dict) -> str:
    from explainers import registry

    def label(key: str) -> str:
        name, _, layer = key.partition(" @ ")
        text = "random map" if name == "random" else registry.label(name)
        return f"{text} @ `{layer}`" if layer else text

    lines = [
        "## Planted cue: attribution on the mark the network must read (`python -m benchmarks.planted_cue`)",
        "",
        f"{result['scenes']} held-out scenes of `models.planted_cue` (seed {result['seed']}) "
        f"that the network classifies right ({result['skipped']} it got wrong were passed over); region = the "
        "true cap pixels, class = their class. *on mark*: mean share of the map's relevance on the mark "
        f"(the mark is {result['cue_share_of_image']:.1%} of the image); *pointing*: share of scenes whose map "
        f"peaks within {TOLERANCE} px of the mark; *on cap*: share on the explained cap. Default options"
        + (" (quick run: small settings)" if result["quick"] else "") + f"; {result['seconds'] / 60:.1f} min "
        "on a shared 2-core machine.",
        "",
        "| method | on mark | pointing | on cap | s per map (mean of its group) |",
        "|---|---|---|---|---|",
    ]
    ordered = sorted(result["rows"], key=lambda r: (r["method"] == "random", -r["cue_share"]))
    for r in ordered:
        lines.append(f"| {label(r['method'])} | {r['cue_share']:.3f} | {r['pointing']:.2f} | {r['cap_share']:.3f} | "
                     f"{r['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--method", action="append", default=None, help="a method name (repeatable; default all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 scenes, small settings")
    parser.add_argument("--write", action="store_true", help="put the table into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    result = run(3 if args.quick else args.scenes, args.method, quick=args.quick)
    text = markdown(result)
    print(text)
    if args.write:
        RESULTS_PATH.write_text(replace_block(RESULTS_PATH.read_text(), START, END, text))


if __name__ == "__main__":
    main()
