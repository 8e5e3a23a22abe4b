"""A tiny array namespace, so each method's formula is written once for every engine.

Why: the CAM weights (`cams`, `segxrescam`) and the scores they differentiate (`scores`) are a handful
of reductions. The Keras engine runs them inside its compiled TensorFlow function (its speed depends on
that), the PyTorch engine runs the scores on torch tensors (autograd must see them) and the CAM
weights on NumPy arrays of the activations and gradients it took from the network. `namespace(x)`
picks the operations by the array's type; the formulas call `xp.sum(...)`, `xp.relu(...)`, ... and never
import a framework themselves. torch is imported only when a torch tensor is seen.

Conventions shared by every namespace: feature maps are channels-last (B, h, w, K), as Keras has them;
`take(x, i, axis)` selects one index along an axis (removing it); `divide_no_nan(a, b)` is 0 where b is 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class NumpyOps:
    """NumPy (float32 in, float32 out)."""

    name = "numpy"

    @staticmethod
    def rank(x) -> int:
        return np.ndim(x)

    @staticmethod
    def sum(x, axis, keepdims: bool = False):
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def mean(x, axis):
        return np.mean(x, axis=axis)

    @staticmethod
    def relu(x):
        return np.maximum(x, 0).astype(np.asarray(x).dtype, copy=False)

    @staticmethod
    def where(condition, a, b):
        return np.where(condition, a, b).astype(np.result_type(a, np.float32), copy=False)

    @staticmethod
    def divide_no_nan(a, b):
        a, b = np.broadcast_arrays(np.asarray(a, np.float32), np.asarray(b, np.float32))
        return np.divide(a, b, out=np.zeros(a.shape, np.float32), where=b != 0)

    @staticmethod
    def einsum(spec: str, *operands):
        return np.einsum(spec, *operands)

    @staticmethod
    def take(x, index, axis: int):
        return np.take(x, int(index), axis=axis)

    @staticmethod
    def block_mean(x, p: int):
        """(B, h, w, K) → each p×p block (from the top-left) replaced by its mean over the cells it holds."""
        b, h, w, k = x.shape
        hp, wp = -(-h // p) * p, -(-w // p) * p
        padded = np.zeros((b, hp, wp, k), np.float32)
        padded[:, :h, :w] = x
        cells = np.zeros((1, hp, wp, 1), np.float32)
        cells[:, :h, :w] = 1.0
        total = padded.reshape(b, hp // p, p, wp // p, p, k).sum(axis=(2, 4))
        count = cells.reshape(1, hp // p, p, wp // p, p, 1).sum(axis=(2, 4))
        pooled = total / count
        return np.repeat(np.repeat(pooled, p, axis=1), p, axis=2)[:, :h, :w, :]


class TensorFlowOps:
    """TensorFlow, usable inside a `tf.function` (the Keras engine's compiled pass)."""

    name = "tensorflow"

    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf

    def rank(self, x) -> int:
        return x.shape.rank

    def sum(self, x, axis, keepdims: bool = False):
        return self.tf.reduce_sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x, axis):
        return self.tf.reduce_mean(x, axis=axis)

    def relu(self, x):
        return self.tf.nn.relu(x)

    def where(self, condition, a, b):
        return self.tf.where(condition, a, b)

    def divide_no_nan(self, a, b):
        return self.tf.math.divide_no_nan(a, b)

    def einsum(self, spec: str, *operands):
        return self.tf.einsum(spec, *operands)

    def take(self, x, index, axis: int):
        return self.tf.gather(x, index, axis=axis)

    def block_mean(self, x, p: int):
        tf = self.tf
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        pad = [[0, 0], [0, (-h) % p], [0, (-w) % p], [0, 0]]  # blocks start at the top-left cell
        total = tf.nn.avg_pool2d(tf.pad(x, pad), ksize=p, strides=p, padding="VALID")
        cells = tf.nn.avg_pool2d(tf.pad(tf.ones_like(x[..., :1]), pad), ksize=p, strides=p, padding="VALID")
        pooled = total / cells  # border blocks: the mean of the cells they hold
        return tf.repeat(tf.repeat(pooled, p, axis=1), p, axis=2)[:, :h, :w, :]


class TorchOps:
    """PyTorch tensors, differentiable (the PyTorch engine's scores)."""

    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def rank(self, x) -> int:
        return x.dim()

    def sum(self, x, axis, keepdims: bool = False):
        return self.torch.sum(x, dim=axis, keepdim=keepdims)

    def mean(self, x, axis):
        return self.torch.mean(x, dim=axis)

    def relu(self, x):
        return self.torch.relu(x)

    def where(self, condition, a, b):
        return self.torch.where(condition, a, b)

    def divide_no_nan(self, a, b):
        torch = self.torch
        safe = torch.where(b != 0, b, torch.ones_like(b))
        return torch.where(b != 0, a / safe, torch.zeros_like(safe))

    def einsum(self, spec: str, *operands):
        return self.torch.einsum(spec, *operands)

    def take(self, x, index, axis: int):
        return self.torch.select(x, axis, int(index))

    def block_mean(self, x, p: int):
        torch = self.torch
        f = torch.nn.functional
        h, w = x.shape[1], x.shape[2]
        nchw = x.permute(0, 3, 1, 2)
        pad = (0, (-w) % p, 0, (-h) % p)
        total = f.avg_pool2d(f.pad(nchw, pad), p, p)
        cells = f.avg_pool2d(f.pad(torch.ones_like(nchw[:, :1]), pad), p, p)
        pooled = (total / cells).repeat_interleave(p, 2).repeat_interleave(p, 3)[:, :, :h, :w]
        return pooled.permute(0, 2, 3, 1)


_NUMPY = NumpyOps()
_CACHE: dict[str, Any] = {}


def namespace(x) -> Any:
    """The operations for `x`'s array type: TensorFlow, torch, else NumPy."""
    module = type(x).__module__
    if module.startswith("tensorflow"):
        if "tf" not in _CACHE:
            _CACHE["tf"] = TensorFlowOps()
        return _CACHE["tf"]
    if module.startswith("torch"):
        if "torch" not in _CACHE:
            _CACHE["torch"] = TorchOps()
        return _CACHE["torch"]
    return _NUMPY
