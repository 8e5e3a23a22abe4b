"""A method added from outside the package, as a plug-in would: one module, one `registry.register` call.

Toy CAM: Grad-CAM's channel weights raised to an odd `exponent` (1 is Grad-CAM). Importing this module
registers it; `tests/test_toy_method.py` unregisters it afterwards."""

from __future__ import annotations

import dataclasses

from explainers import arrays, registry
from explainers import options as opts
from explainers.methods import cams

NAME = "toy-cam"


@dataclasses.dataclass(frozen=True)
class ToyOptions:
    exponent: int = opts.option(1, "toy exponent", "Odd power of Grad-CAM's channel weights (1: Grad-CAM).",
                                low=1, high=3, step=2)

    def __post_init__(self) -> None:
        value = opts.whole(self.exponent, "exponent", 1, "Toy CAM")
        if value % 2 == 0 or value > 3:
            raise registry.ExplainerError(f"Toy CAM: `exponent` must be 1 or 3, got {value!r}.")
        opts.set_field(self, "exponent", value)


@dataclasses.dataclass(frozen=True)
class ToyCAM(cams.CAM):
    name: str = NAME
    exponent: int = 1

    def channel_weights(self, activations, gradients):
        return arrays.namespace(gradients).mean(gradients, axis=(1, 2)) ** self.exponent


METHOD = registry.register(registry.Method(NAME, "Toy CAM (test plug-in)", registry.CAM, False, False, ToyOptions,
                                           make_cam=lambda options: ToyCAM(exponent=options.exponent)))
