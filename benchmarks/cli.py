"""Command-line glue shared by the benchmark modules: `--quick` and printing one section."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from benchmarks.common import Section


def main(run: Callable[[bool], Section], description: str) -> Section:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smoke mode: few repeats, small sizes")
    args = parser.parse_args()
    section = run(args.quick)
    missed = [label for label, met in section.verdicts if not met]
    print(f"{section.title}: {len(section.verdicts) - len(missed)}/{len(section.verdicts)} targets met")
    return section
