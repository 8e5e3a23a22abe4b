"""The library's two caches: things built once per model, and small least-recently-used stores.

Why one module: compiled functions, output sizes and predictors live exactly as long as their Keras
model (a weak key, so dropping the model frees them), and image-keyed data (XRAI's segments, the
dashboard's slow maps) must stay small and be safe to share between the threads of several dashboard
sessions. Both rules used to be restated by hand in each module; here they are written once.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np


def array_digest(array: np.ndarray) -> str:
    """A key for an array's exact contents: its bytes, shape and dtype (for stores found again by value)."""
    array = np.ascontiguousarray(array)
    return hashlib.sha1(array.tobytes() + str((array.shape, array.dtype.str)).encode()).hexdigest()


class PerModel:
    """`get(model, key, build)`: `build()` once per (model, key), kept while the model object lives."""

    def __init__(self) -> None:
        self._store: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, model: Any, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            per_model = self._store.setdefault(model, {})
            if key in per_model:
                return per_model[key]
        value = build()  # outside the lock: building may take seconds (tracing), and may recurse
        with self._lock:
            return self._store.setdefault(model, {}).setdefault(key, value)

    def forget(self, model: Any) -> None:
        """Drop everything built for `model` (it is built again on the next `get`)."""
        with self._lock:
            self._store.pop(model, None)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()


class LRU:
    """A thread-safe store of at most `size` entries; the least recently used entry goes first."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._store: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._store:
                return default
            self._store.move_to_end(key)
            return self._store[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._store[key] = value
            self._store.move_to_end(key)
            while len(self._store) > self.size:
                self._store.popitem(last=False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The stored value, or `compute()` stored and returned (computed outside the lock)."""
        missing = object()
        hit = self.get(key, missing)
        if hit is not missing:
            return hit
        value = compute()
        self.put(key, value)
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._store

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()


class Switch:
    """A process-wide store that is off until the process turns it on: the caches that cost memory
    (`forward_cache`, `layer_split`) keep nothing for a one-off library call."""

    def __init__(self) -> None:
        self._store: Any = None

    def enable(self, store: Any) -> Any:
        """Use `store` from now on (the previous one, if any, is dropped); returns it."""
        self._store = store
        return store

    def disable(self) -> None:
        """Stop using the store and free what it kept (its `clear()`)."""
        store, self._store = self._store, None
        if store is not None:
            store.clear()

    def active(self) -> Any:
        """The store in use, or None."""
        return self._store
