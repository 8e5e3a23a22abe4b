"""Batch sizes from a memory budget, so slow methods on a big model shrink their batches, not crash.

The estimate of one image's cost is deliberately simple: 4 bytes per float of the input and of every
4-D tensor in the model's flattened graph (the activations a forward pass holds), times a factor for
what a backward pass keeps besides (gradients of those activations, temporaries). Dynamic spatial sizes
are taken as the image's size (an upper bound for most networks). When even one image exceeds the
budget, the method refuses with an `ExplainerError` instead of letting TensorFlow run out of memory.

The budget is `BUDGET_BYTES` (2 GiB, in which XRAI's batch of 50 on the shipped 144×144 model fits),
or the environment variable `SEGEXPLAIN_MEMORY_BUDGET_MB`, or, for one block of code,
`with memory.budget(n_bytes): ...`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Iterator

from explainers import engine
from explainers.errors import ExplainerError
from explainers.results import BATCH_REDUCED, MapWarning

BUDGET_BYTES = 2 << 30
BACKWARD_FACTOR = 3.0  # activations + their gradients + temporaries
FORWARD_FACTOR = 1.5
_LOCAL = threading.local()


def current_budget() -> int:
    """The budget in bytes now in force (context manager, then environment, then `BUDGET_BYTES`)."""
    override = getattr(_LOCAL, "budget", None)
    if override is not None:
        return int(override)
    env = os.environ.get("SEGEXPLAIN_MEMORY_BUDGET_MB")
    if env:
        try:
            return int(float(env) * (1 << 20))
        except ValueError:
            pass
    return int(BUDGET_BYTES)


@contextlib.contextmanager
def budget(n_bytes: int) -> Iterator[None]:
    """Use `n_bytes` as the budget inside the block (this thread only)."""
    previous = getattr(_LOCAL, "budget", None)
    _LOCAL.budget = int(n_bytes)
    try:
        yield
    finally:
        _LOCAL.budget = previous


def bytes_per_image(model, image_size: tuple[int, int], backward: bool = True) -> int:
    """Estimated bytes one image costs in a batched forward (and backward) pass of `model`."""
    return int(activation_bytes(model, image_size) * (BACKWARD_FACTOR if backward else FORWARD_FACTOR))


def activation_bytes(model, image_size: tuple[int, int]) -> int:
    """4 bytes per float of the input and of every activation of one image: about what a taped
    forward pass keeps for its backward pass (measured 13 MB against 12.8 MB on the shipped model)."""
    return int(engine.of(model).activation_bytes(tuple(image_size)))


def fitting_batch(model, image_size: tuple[int, int], method: str, backward: bool = True) -> int:
    """The largest batch that fits the budget; ExplainerError when not even one image does."""
    per_image = bytes_per_image(model, image_size, backward)
    limit = current_budget()
    fit = limit // max(per_image, 1)
    if fit < 1:
        raise ExplainerError(
            f"{method} needs about {per_image / 2**20:.0f} MB per image for this model at "
            f"{image_size[0]}×{image_size[1]}, more than the memory budget of {limit / 2**20:.0f} MB: "
            "raise it (SEGEXPLAIN_MEMORY_BUDGET_MB or explainers.memory.budget) or use a smaller input size."
        )
    return int(fit)


def choose_batch(model, image_size: tuple[int, int], method: str, requested: int | None, default: int,
                 backward: bool = True) -> tuple[int, bool]:
    """(batch size to use, whether `requested` was reduced to fit the budget).

    None asks for `default` capped by the budget; an explicit size is kept when it fits.
    """
    fit = fitting_batch(model, image_size, method, backward)
    wanted = default if requested is None else int(requested)
    return min(wanted, fit), requested is not None and requested > fit


def resolve(model, inputs, options, method: str, default: int, backward: bool = True):
    """(`options` with its `batch_size` chosen from the budget, [a BATCH_REDUCED warning if it shrank])."""
    used, reduced = choose_batch(model, inputs.image.shape[:2], method, options.batch_size, default, backward)
    warnings = []
    if reduced:
        warnings.append(MapWarning(BATCH_REDUCED, f"{method}: batch size {options.batch_size} does not fit the "
                                                  f"memory budget; {used} was used."))
    return dataclasses.replace(options, batch_size=used), warnings
