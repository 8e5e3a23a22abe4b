"""Seg-XRes-CAM (Hasany, Petitjean & Mériaudeau, CVPR workshops 2023): Grad-CAM with locally pooled gradients.

Why: Grad-CAM averages the gradient over the whole layer, so where a linear head follows the layer
(e.g. `final_conv` → 1×1 classifier → upsampling) every channel weight is the class weight times a
constant and the map ignores the drawn region. Seg-XRes-CAM pools the gradient of the region-sum score
(Seg-Grad-CAM's score) only locally: average pooling over `pool_size`×`pool_size` blocks of the
layer's grid (stride `pool_size`; blocks at the border average the cells they hold), each block's mean
copied back onto its cells, then weights the activations element-wise:

    map = ReLU(Σ_k up(pool(∂y/∂A_k)) ⊙ A_k).

`pool_size` 1 is HiResCAM; a pool covering the whole grid is Grad-CAM. It runs in the CAMs' one
compiled pass (`cams.compute`) like every other CAM.
"""

from __future__ import annotations

import dataclasses

from explainers import arrays, scores
from explainers import options as opts
from explainers.methods import cams

DEFAULT_POOL_SIZE = 2


@dataclasses.dataclass(frozen=True)
class SegXResCAMOptions:
    """`pool_size`: side, in cells of the layer's grid, of the blocks the gradient is averaged over."""

    pool_size: int = opts.option(DEFAULT_POOL_SIZE, "Seg-XRes-CAM pool", "Side, in cells of the layer's grid, of "
                                 "the blocks Seg-XRes-CAM averages its gradient over (1 is HiResCAM's element-wise "
                                 "product).", low=1, high=64, step=1)

    def __post_init__(self) -> None:
        opts.set_field(self, "pool_size", opts.whole(self.pool_size, "pool_size", 1, "Seg-XRes-CAM"))


@dataclasses.dataclass(frozen=True)
class SegXResCAM(cams.CAM):
    name: str = "seg-xres-cam"
    score: scores.Score = scores.REGION_SUM
    pool_size: int = DEFAULT_POOL_SIZE

    def channel_weights(self, activations, gradients):
        return arrays.namespace(gradients).block_mean(gradients, self.pool_size)


def make(options: SegXResCAMOptions) -> SegXResCAM:
    return SegXResCAM(pool_size=options.pool_size)
