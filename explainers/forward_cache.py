"""Forward passes kept between regions: XRAI for a new region on an image already seen pays only the
backward half of its 200 gradients.

Why this is exact: the adapter's region enters its score only at the output (mask × per-pixel scores,
pooled), so an integration point's forward pass is the same for every region and class; a new region
changes only the cotangent the backward pass starts from. A persistent `tf.GradientTape` over a forward
pass keeps what the backward pass needs, and `tape.gradient(..., output_gradients=...)` replays just
that half for any cotangent. The forward function is a frozen copy of the model (weights as constants):
with the weights as variables the tape's backward pass also computes every kernel's gradient, which on
the shipped model cost more than the forward pass it saves.

The price is memory, about what `memory.activation_bytes` estimates per integration point (13 MB on the
shipped 144×144 model, 2.6 GB for one image's 200 XRAI points), and laying a batch in (a taped forward
pass, then a separate backward pass) costs more than the compiled gradient. So nothing is kept unless a
process asks for it (`enable`; the dashboard's worker does), the store is bounded in bytes, and the
least recently used batch goes first. Batches are laid in only by `explainers.prepare_image` (which
the worker runs while the user draws) and found again by their exact float32 bytes: XRAI asks for the
same integration points in the same batches for every region of an image.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator

import numpy as np
import tensorflow as tf

from explainers import graph, memory
from explainers.caching import PerModel, Switch, array_digest

DEFAULT_MAX_BYTES = 4 << 30
PROBE_SIDE = 64  # image side of the max-pooling rewrite's check when the model takes any size
MAX_PREPARED = 32  # preparations remembered by `holds` (their batches may be evicted long before)
_FROZEN = PerModel()
_SWITCH = Switch()  # off until `enable`


def _frozen_forward(model, target: str):
    """(x batch → per-pixel scores) with the weights folded in as constants; None when this model's graph
    cannot be frozen (then callers use the ordinary compiled gradient)."""

    def build():
        try:  # TensorFlow's own freezing (used by its TFLite and SavedModel tools); not public API
            from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

            tapped = graph.tap_model(model, (), target)
            shape = tuple(tapped.inputs[0].shape[1:])

            def scores_map(x):
                out = tapped(x, training=False)
                return out[0] if isinstance(out, list | tuple) else out

            traced = tf.function(scores_map, input_signature=[tf.TensorSpec([None, *shape], tf.float32)])
            frozen = convert_variables_to_constants_v2(traced.get_concrete_function())
        except Exception:  # noqa: BLE001 (any failure only means no cache for this model)
            return None
        return _pooling_with_argmax(frozen, shape)

    return _FROZEN.get(model, ("frozen", target), build)


def _pooling_with_argmax(frozen, shape: tuple):
    """`frozen` with each 2-D max pooling computed as `MaxPoolWithArgmax`, whose gradient scatters the
    incoming gradient to the positions the forward pass kept, instead of `MaxPoolGrad`, which finds the
    maxima again on every backward pass (16 % of the shipped model's kept backward pass, measured).

    TensorFlow's CPU kernels of both find the maxima with one helper, so ties go the same way and the
    gradients are the same bits; that is checked here once, on a batch with ties (flat patches), and
    `frozen` itself is returned when the check fails, nothing was rewritten, or the rewrite fails."""
    graph_def = frozen.graph.as_graph_def()
    rewritten = 0
    for node in graph_def.node:
        layout = node.attr["data_format"].s if "data_format" in node.attr else b"NHWC"
        if node.op != "MaxPool" or layout != b"NHWC" or node.attr["padding"].s not in (b"VALID", b"SAME"):
            continue
        node.op = "MaxPoolWithArgmax"
        for name in ("data_format", "explicit_paddings"):
            if name in node.attr:
                del node.attr[name]
        node.attr["Targmax"].type = tf.int64.as_datatype_enum
        node.attr["include_batch_in_index"].b = True
        rewritten += 1
    if not rewritten or len(frozen.inputs) != 1:
        return frozen
    try:
        source, outputs = frozen.inputs[0].name, [t.name for t in frozen.outputs]

        def imported(x):
            return tf.graph_util.import_graph_def(graph_def, input_map={source: x}, return_elements=outputs,
                                                  name="")

        candidate = tf.compat.v1.wrap_function(imported, [tf.TensorSpec([None, *shape], tf.float32)])
        return candidate if _same_gradients(frozen, candidate, shape) else frozen
    except Exception:  # noqa: BLE001 (the plain frozen graph serves as well, only more slowly)
        return frozen


def _same_gradients(one, other, shape: tuple) -> bool:
    """Whether two forward functions give the same scores and the same input gradient, bit for bit.

    A model that takes any size is checked at 64 × 64 px (divisible by the poolings of usual U-Nets); if it
    cannot run at that size the check fails and the plain graph stays."""
    shape = tuple(PROBE_SIDE if side is None else side for side in shape)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 255.0, (1, *shape)).astype(np.float32)
    x[:, : shape[0] // 2, : shape[1] // 2] = 127.0  # flat: equal activations, ties in every pooling window
    xt = tf.constant(x)
    cotangent = None
    found = []
    for forward in (one, other):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(xt)
            out = forward(xt)
            out = out[0] if isinstance(out, list | tuple) else out
        if cotangent is None:
            cotangent = tf.constant(rng.standard_normal(out.shape).astype(np.float32))
        found.append((out.numpy(), tape.gradient(out, xt, output_gradients=cotangent).numpy()))
    (out_a, grad_a), (out_b, grad_b) = found
    return bool(np.array_equal(out_a, out_b) and np.array_equal(grad_a, grad_b))


def can_keep(model, target: str) -> bool:
    """Whether this model's forward passes can be kept (its graph freezes)."""
    return _frozen_forward(model, target) is not None


def _cotangent(mask: np.ndarray, class_index: int, channels: int) -> np.ndarray:
    """∂(adapter score) / ∂(per-pixel scores): 1/(h·w) on the region in the class's channel (as the
    gradient of the adapter's mean computes it: float32 division by the number of positions)."""
    h, w = mask.shape
    out = np.zeros((h, w, channels), np.float32)
    out[..., class_index] = np.asarray(mask, np.float32) * (np.float32(1.0) / np.float32(h * w))
    return out


class Stopped(Exception):
    """Raised inside `ForwardCache.forward_only(stop)` once `stop()` is true."""


class ForwardCache:
    """Taped forward passes of input batches, at most `max_bytes` of them (estimated), least recently used
    out first; `input_gradients` serves the adapter's input gradient from them for any region and class.

    `hits` and `misses` count batches. One lock covers the store and each backward pass: a persistent
    tape must not be replayed by two threads at once."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.hits = self.misses = 0
        self._store: OrderedDict = OrderedDict()  # key → (tape, x tensor, scores tensor, bytes, model ref)
        self._bytes = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._prepared: OrderedDict = OrderedDict()  # tag → the keys of the batches one preparation laid in

    @contextlib.contextmanager
    def forward_only(self, stop: Callable[[], bool] | None = None, tag: Hashable | None = None) -> Iterator[None]:
        """Inside the block (this thread), `input_gradients` keeps each batch's forward pass and returns
        zeros without a backward pass: running a method once this way (`explainers.prepare_image`) lays in
        exactly the batches its later runs will ask for. When `stop()` turns true, the next batch raises
        `Stopped` instead (the batches kept so far stay). A block that ends normally records the batches
        it asked for under `tag` (if given), for `holds`."""
        self._local.forward_only, self._local.stop, self._local.asked = True, stop, []
        try:
            yield
            if tag is not None:
                with self._lock:
                    self._prepared[tag] = tuple(self._local.asked)
                    self._prepared.move_to_end(tag)
                    while len(self._prepared) > MAX_PREPARED:
                        self._prepared.popitem(last=False)
        finally:
            self._local.forward_only, self._local.stop, self._local.asked = False, None, []

    def holds(self, tag: Hashable) -> bool:
        """Whether every batch laid in under `tag` (see `forward_only`) is still kept (none was evicted)."""
        with self._lock:
            keys = self._prepared.get(tag)
            return keys is not None and all(key in self._store for key in keys)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self._prepared.clear()
            self._bytes = 0

    def input_gradients(self, model, target: str, x: np.ndarray, mask: np.ndarray,
                        class_index: int) -> np.ndarray | None:
        """∂ adapter score / ∂ x per row of `x` (B, H, W, 3), `mask` at the output size, from the kept forward
        pass of this batch; None when there is none (the caller then computes the gradient its usual way).

        Inside `forward_only` a batch not kept yet is laid in (then zeros are returned). Outside it nothing
        is added: a plain run's compiled gradient is quicker than a taped forward and a separate backward
        pass, so a region drawn before `prepare_image` has run costs what it did without this store."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        laying_in = getattr(self._local, "forward_only", False)
        stop = getattr(self._local, "stop", None)
        if laying_in and stop is not None and stop():
            raise Stopped
        key = (id(model), target, array_digest(x))
        if laying_in:
            self._local.asked.append(key)
        with self._lock:
            entry = self._store.get(key)
            if entry is not None and entry[4]() is not model:  # another model now has the old one's id
                self._drop(key)
                entry = None
            if entry is None:
                self.misses += 1
                if not laying_in:
                    return None
                forward = _frozen_forward(model, target)
                if forward is None:
                    return None
                self._keep(key, self._forward(model, forward, x))
                return np.zeros_like(x)
            self.hits += 1
            self._store.move_to_end(key)
            if laying_in:
                return np.zeros_like(x)
            tape, xt, out = entry[:3]
            cot = _cotangent(mask, int(class_index), int(out.shape[-1]))
            cot = tf.constant(np.broadcast_to(cot, out.shape))
            return tape.gradient(out, xt, output_gradients=cot).numpy()

    def settle(self) -> None:
        """One backward pass (zero cotangent) over the batch kept last: the first backward pass after the
        forward passes sets up its kernels and memory (0.8 s more than later ones on the shipped model),
        better at the end of a preparation than in the first region's run."""
        with self._lock:
            if self._store:
                tape, xt, out = next(reversed(self._store.values()))[:3]
                tape.gradient(out, xt, output_gradients=tf.zeros_like(out))

    def _forward(self, model, forward, x: np.ndarray) -> tuple:
        xt = tf.constant(x)
        tape = tf.GradientTape(persistent=True, watch_accessed_variables=False)
        with tape:
            tape.watch(xt)
            out = forward(xt)
            out = out[0] if isinstance(out, list | tuple) else out
        size = memory.activation_bytes(model, x.shape[1:3]) * len(x)
        return tape, xt, out, size, weakref.ref(model)

    def _keep(self, key, entry: tuple) -> None:
        size = entry[3]
        if size > self.max_bytes:
            return  # used for this call only
        self._store[key] = entry
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._store)))

    def _drop(self, key) -> None:
        self._bytes -= self._store.pop(key)[3]


def default_max_bytes() -> int:
    """A quarter of this machine's memory, at most `DEFAULT_MAX_BYTES` (4 GiB)."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return DEFAULT_MAX_BYTES // 4
    return int(min(DEFAULT_MAX_BYTES, physical // 4))


def enable(max_bytes: int | None = None) -> ForwardCache:
    """Keep forward passes in this process from now on (XRAI uses them); returns the store."""
    return _SWITCH.enable(ForwardCache(default_max_bytes() if max_bytes is None else max_bytes))


def disable() -> None:
    """Stop keeping forward passes and free the ones kept."""
    _SWITCH.disable()


def active() -> ForwardCache | None:
    """The store in use in this process, or None (the default: nothing is kept)."""
    return _SWITCH.active()
