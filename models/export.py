"""Save the shipped default network as a standalone `.keras` file.

Why: the batch command line (`python -m explainers.batch`) and other tools take a `.keras` path, and
`explainers` deliberately does not import `models`. This writes the default network in the same
format a user would upload, so it also serves as a reference upload. The class names go in the file
too (`explainers.stored_names`: metadata.json's "class_names"), so `--region class:cap` and the page's
names work on the exported file without `--class-names`.

Run: `python -m models.export [--out PATH]` (default `default_pspnet.keras` in the current folder).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def export(out: str | Path) -> Path:
    """Write the default model (architecture, trained weights, class names) to `out` and return the path."""
    from explainers import stored_names
    from models import CLASS_NAMES
    from models.loader import load_default

    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"Use a .keras file name, not {out.name!r}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    load_default().save(out)
    stored_names.write(out, CLASS_NAMES)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="default_pspnet.keras", help="where to write the .keras file")
    args = parser.parse_args(argv)
    print(export(args.out))


if __name__ == "__main__":
    main()
