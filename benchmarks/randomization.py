"""Every method's randomisation curve on the shipped model (Adebayo et al.'s cascading test).

One region of the dashboard's first sample (its predicted cap), the default layer and each method's
default options; the 18 weighted layers are randomised from the output in `STEPS` steps. Prints and,
with `--write`, puts into benchmarks/RESULTS.md the Spearman ρ and SSIM of each map against the trained
network's map after each step, the random floor, and the verdict (`explainers.randomization.verdict`).

Run: `python -m benchmarks.randomization [--write]`; `--quick`: CAMs only, 3 steps.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import RESULTS_PATH, replace_block

STEPS = 9
START, END = "<!-- randomization:start -->", "<!-- randomization:end -->"


def run(quick: bool = False, steps: int = STEPS, sample: str | None = None, class_index: int = 1):
    import explainers
    from explainers import regions, registry
    from models import load_default
    from models.scenes import load_sample, sample_names

    model = load_default()
    sample = sample or sample_names()[0]
    image, _ = load_sample(sample)
    labels = explainers.predict(model, image).labels
    region = regions.from_class(labels, class_index)
    methods = registry.CAM_METHODS if quick else registry.ALL_METHODS  # quick: the gradient CAMs (one pass)
    start = time.perf_counter()
    last = [0.0]

    def progress(fraction: float) -> None:
        if fraction - last[0] >= 0.05 or fraction >= 1.0:
            last[0] = fraction
            print(f"  {fraction:.0%} ({time.perf_counter() - start:.0f} s)", flush=True)

    result = explainers.randomization_check(model, image, region, class_index, None, methods, seed=0,
                                            max_steps=3 if quick else steps, progress=progress, keep_maps=False)
    return result, sample


def markdown(result, sample: str) -> str:
    from explainers import randomization, registry

    heads = " | ".join(f"{k + 1}" for k in range(len(result.steps)))
    lines = [
        "## Randomisation check on the shipped model (`python -m benchmarks.randomization`)",
        "",
        f"Sample \"{sample}\", region = its predicted cap pixels, class {result.class_index}, layer "
        f"`{result.layer}`, default options; cascading randomisation from the output ({result.init} with each "
        f"layer's own initialiser, seed {result.seed}) in {len(result.steps)} steps; {result.seconds / 60:.1f} min "
        "on a shared 2-core machine. Step k randomises, on top of the earlier steps:",
        "",
        *[f"{k + 1}. {', '.join(f'`{n}`' for n in g)}" for k, g in enumerate(result.groups)],
        "",
        "Spearman ρ of each method's map with its map on the trained network (1 = unchanged, 0 = unrelated), "
        f"and the verdict (\"barely changes\" when ρ stays ≥ {randomization.BARELY_CHANGES_RHO} at every step):",
        "",
        f"| method | {heads} | verdict |",
        "|---|" + "---|" * len(result.steps) + "---|",
    ]
    for m in (*result.methods, randomization.RANDOM):
        name = "random map (floor)" if m == randomization.RANDOM else registry.label(m)
        verdict = "" if m == randomization.RANDOM else result.verdict(m).text.split(":")[0]
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in result.spearman[m]) + f" | {verdict} |")
    lines += ["", "SSIM of the same maps (7×7 window):", "", f"| method | {heads} |",
              "|---|" + "---|" * len(result.steps)]
    for m in (*result.methods, randomization.RANDOM):
        name = "random map (floor)" if m == randomization.RANDOM else registry.label(m)
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in result.ssim[m]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--write", action="store_true", help="put the tables into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    result, sample = run(args.quick, args.steps)
    text = markdown(result, sample)
    print(text)
    if args.write:
        RESULTS_PATH.write_text(replace_block(RESULTS_PATH.read_text(), START, END, text))


if __name__ == "__main__":
    main()
