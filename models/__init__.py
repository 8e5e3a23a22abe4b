"""The default network's classes and colours; the loaders are re-exported lazily.

`load_default` and friends live in `models.loader`, which imports TensorFlow. A module
`__getattr__` defers that import until they are used, so `import models` (e.g. for CLASS_NAMES in
the scene generator or a test) stays cheap and works on its own.
"""

from __future__ import annotations

import importlib
from typing import Any

CLASS_NAMES: tuple[str, ...] = ("background", "cap", "gills", "stipe", "ring", "volva")

# One RGB triple per class for translucent overlays: background a neutral grey (drawn faint or not
# at all), then hues far apart from each other and from the scenes' browns, reds and greens.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128),  # background
    (230, 25, 75),  # cap: crimson
    (255, 225, 25),  # gills: yellow
    (0, 130, 200),  # stipe: blue
    (60, 220, 220),  # ring: cyan
    (190, 60, 230),  # volva: violet
)

_LAZY = ("load_default", "load_user_model", "ModelLoadError")
__all__ = ["CLASS_NAMES", "CLASS_COLORS", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("models.loader"), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
