"""A network cut at the explained layer: the part before it runs once per image, the part after it once per
region.

Why this is exact: the adapter's region enters its score only at the output (mask × per-pixel scores,
pooled), so the layer's activations, and every tensor the later layers read that does not depend on them
(a decoder's skip connections, the image itself), are the same for every region and class of one image.
Kept after the first pass, a new stroke, a region-mode switch or a class change costs the forward and
backward pass of the layers after the explained one only; on a backbone explained at a decoder layer
that is most of the network saved.

Nothing is kept unless a process turns the store on (`enable`; the dashboard's server does) and marks the
calls that may use it (`with used():`, in the thread making them): a one-off call gains nothing, the store
costs memory (one layer and its side inputs per image, bounded in bytes, the least recently used image out
first), and it knows a model by identity, so a model whose weights change in place between calls (the
randomisation check's copy, randomised layer by layer) must not use it.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from explainers import graph
from explainers.caching import PerModel, Switch, array_digest

DEFAULT_MAX_BYTES = 512 << 20
_SPLITS = PerModel()
_SWITCH = Switch()  # off until `enable`
_LOCAL = threading.local()  # `used` per thread


@dataclass(frozen=True)
class Split:
    """`head`: compiled image batch → the tail's inputs (the layer's activations first); `tail`: the Keras
    model from those inputs to the per-pixel scores."""

    head: Any
    tail: keras.Model

    def specs(self) -> tuple[tf.TensorSpec, ...]:
        """The tail's inputs as signatures with a free batch size (and free sizes where the model has them)."""
        return tuple(tf.TensorSpec([None, *t.shape[1:]], tf.float32) for t in self.tail.inputs)


def _inputs_of(tensor) -> list:
    """The tensors the operation that made `tensor` read (none for an input)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return []
    return list(history.operation._inbound_nodes[history.node_index].input_tensors)


def side_inputs(layer_output, output) -> list | None:
    """The tensors that the operations between `layer_output` and `output` read besides what they compute
    from `layer_output` (the part before the layer must hand them over too); None when `output` does not
    depend on `layer_output`."""
    depends: dict[int, bool] = {}

    def on_layer(tensor) -> bool:  # iterative: a deep network's graph is deeper than Python's recursion
        stack = [tensor]
        while stack:
            top = stack[-1]
            if id(top) in depends:
                stack.pop()
                continue
            if top is layer_output:
                depends[id(top)] = True
                stack.pop()
                continue
            pending = [t for t in _inputs_of(top) if id(t) not in depends]
            if pending:
                stack.extend(pending)
                continue
            depends[id(top)] = any(depends[id(t)] for t in _inputs_of(top))
            stack.pop()
        return depends[id(tensor)]

    if not on_layer(output):
        return None
    side, seen, stack, visited = [], set(), [output], set()
    while stack:
        tensor = stack.pop()
        if id(tensor) in visited or tensor is layer_output:
            continue
        visited.add(id(tensor))
        for read in _inputs_of(tensor):
            if on_layer(read):
                stack.append(read)
            elif id(read) not in seen:
                seen.add(id(read))
                side.append(read)
    return side


def split(model, layer: str, target: str) -> Split | None:
    """`model` cut after `layer` (built once per model, layer and target); None where it cannot be cut (the
    callers then run the whole network, as without a split)."""

    def build() -> Split | None:
        try:
            flat = graph.flatten(model)
            scores = flat.logits if target == "logits" else flat.probabilities
            tap = flat.taps[layer]
            side = side_inputs(tap, scores)
            if side is None:
                return None
            tail = keras.Model([tap, *side], scores)
            head_model = keras.Model(flat.input, [tap, *side])

            @tf.function(input_signature=[tf.TensorSpec([None, *flat.input.shape[1:]], tf.float32)])
            def head(x):
                return head_model(x, training=False)

            return Split(head=head, tail=tail)
        except Exception:  # noqa: BLE001 (a graph Keras cannot cut only means no split for it)
            return None

    return _SPLITS.get(model, ("split", layer, target), build)


class HeadStore:
    """The head outputs of recent images, at most `max_bytes` of them, least recently used out first.

    `hits` and `misses` count lookups (tests and benchmarks read them)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.hits = self.misses = 0
        self._store: OrderedDict = OrderedDict()  # key → (tensors, bytes, model ref)
        self._bytes = 0
        self._lock = threading.Lock()

    def outputs(self, model, layer: str, target: str, image: np.ndarray) -> tuple[tf.Tensor, ...] | None:
        """The tail's inputs for `image` (H, W, C, the model's input range), kept or computed now and kept;
        None when the model cannot be cut at `layer`."""
        cut = split(model, layer, target)
        if cut is None:
            return None
        image = np.ascontiguousarray(image, dtype=np.float32)
        key = (id(model), layer, target, array_digest(image))
        with self._lock:
            entry = self._store.get(key)
            if entry is not None and entry[2]() is model:
                self._store.move_to_end(key)
                self.hits += 1
                return entry[0]
            self.misses += 1
        outs = cut.head(tf.constant(image[None]))
        outs = tuple(outs) if isinstance(outs, list | tuple) else (outs,)
        size = sum(int(np.prod(t.shape)) * 4 for t in outs)
        with self._lock:
            if size <= self.max_bytes:
                self._store.pop(key, None)
                self._store[key] = (outs, size, weakref.ref(model))
                self._bytes = sum(entry[1] for entry in self._store.values())
                while self._bytes > self.max_bytes:
                    self._bytes -= self._store.popitem(last=False)[1][1]
        return outs

    def __len__(self) -> int:
        return len(self._store)

    @property
    def bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self._bytes = 0


def enable(max_bytes: int = DEFAULT_MAX_BYTES) -> HeadStore:
    """Keep the part before the explained layer per image in this process from now on; returns the store."""
    return _SWITCH.enable(HeadStore(max_bytes))


def disable() -> None:
    """Stop keeping head outputs and free the ones kept."""
    _SWITCH.disable()


def active() -> HeadStore | None:
    """The store in use in this process, or None (the default: every call runs the whole network)."""
    return _SWITCH.active()


@contextlib.contextmanager
def used() -> Iterator[None]:
    """Within the block, this thread's one-layer CAM passes use the active store (if any)."""
    previous = getattr(_LOCAL, "used", False)
    _LOCAL.used = True
    try:
        yield
    finally:
        _LOCAL.used = previous


def kept_inputs(model, layers: Sequence[str], target: str, image: np.ndarray) -> tuple[tf.Tensor, ...] | None:
    """The tail's inputs for a one-layer CAM pass inside `used()` while a store is active, else None (run the
    whole network)."""
    store = _SWITCH.active()
    if store is None or not getattr(_LOCAL, "used", False) or len(layers) != 1:
        return None
    return store.outputs(model, layers[0], target, image)
