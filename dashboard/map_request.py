"""One map's identity: `MapRequest`, the typed, frozen, picklable request of one map, and the digests its keys
are made of. No streamlit import.

This is the one place a map's cache identity is assembled. `compute`'s cached CAMs key on their requests'
`key()`s, a slow map's job and its stored result on its request's `key()` (and the worker receives that same
object), and the page's other stores that depend on maps (faithfulness, trust, export) on their `settings()`.
A field added here reaches every key at once; nothing re-assembles the tuple by hand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explainers import registry
from explainers.caching import LRU


def digest(data: bytes | np.ndarray) -> str:
    """Short content hash used as a cache key and in the export's settings."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes() + repr((data.shape, data.dtype.str)).encode()
    return hashlib.sha256(data).hexdigest()[:16]


# The digest of each recent region mask, so a rerun hashes its region once rather than once per map, cache
# lookup and store. Keyed by the array's id and checked by identity (the memo holds the array, so its id
# cannot be reused meanwhile).
_REGION_DIGESTS = LRU(8)


def region_digest(region: np.ndarray) -> str:
    """`digest(region)`, computed once per region array."""
    hit = _REGION_DIGESTS.get(id(region))
    if hit is not None and hit[0] is region:
        return hit[1]
    key = digest(region)
    _REGION_DIGESTS.put(id(region), (region, key))
    return key


@dataclass(frozen=True)
class MapRequest:
    """Everything one map is computed from, by name (the model travels as its key, `model_key`; a slow map's
    job keeps the loaded model for computing it in the page's process). What the slow-map worker receives."""

    method: str
    image: np.ndarray = field(repr=False)
    region: np.ndarray = field(repr=False)
    class_index: int
    layer: str | None
    target: str
    options: dict[str, Any]
    model_key: str | None = None
    image_key: str | None = None
    # (module, folder) of the module that registered `method` from outside the package (`registry.modules_for`;
    # filled from the registry when not given): the worker imports it first, so the method is known there too
    modules: tuple[tuple[str, str | None], ...] | None = None
    region_key: str | None = None  # `region_digest(region)`, filled when not given (once per region array)

    def __post_init__(self) -> None:
        if self.modules is None:
            object.__setattr__(self, "modules", registry.modules_for((self.method,)))
        if self.region_key is None and self.region is not None:
            object.__setattr__(self, "region_key", region_digest(self.region))

    def settings(self) -> tuple:
        """What the map depends on besides model, image, region, class and target: the method, the layer (None
        for a layer-free method: its map is the same at every layer) and its options, sorted."""
        layer = None if registry.get(self.method).layer_free else self.layer
        return (self.method, layer, *sorted(self.options.items()))

    def key(self) -> tuple:
        """The map's cache identity: ("map", model, image, region, class, target, *settings)."""
        return ("map", self.model_key, self.image_key, self.region_key, int(self.class_index), self.target,
                *self.settings())

    def work_key(self) -> tuple:
        """What a preparation serves and what a run's time says something about (`work_key`)."""
        return work_key(self.model_key, self.image_key, self.method, self.target, self.options)


@dataclass(frozen=True)
class PrepareRequest:
    """The image-only work of one method, asked before any region is drawn (`worker.prepare`: XRAI's segments
    and forward passes): what the slow-map worker receives for a preparation, by name, like `MapRequest`."""

    source: tuple  # how the worker loads the model: ("default",) or ("upload", path, preprocessing, working size)
    image: np.ndarray = field(repr=False)
    method: str
    target: str
    options: dict[str, Any]
    model_key: str | None = None
    image_key: str | None = None
    # (module, folder) of the module that registered `method` from outside the package, as in `MapRequest`
    modules: tuple[tuple[str, str | None], ...] | None = None

    def __post_init__(self) -> None:
        if self.modules is None:
            object.__setattr__(self, "modules", registry.modules_for((self.method,)))

    def work_key(self) -> tuple:
        """The maps this preparation serves: those with the same `MapRequest.work_key()`."""
        return work_key(self.model_key, self.image_key, self.method, self.target, self.options)


def work_key(model_key: str | None, image_key: str | None, method: str, target: str,
             options: dict[str, Any]) -> tuple:
    """What a preparation serves and what a run's time says something about: model, image, method,
    target and options."""
    return (model_key, image_key, method, target, tuple(sorted(options.items())))
