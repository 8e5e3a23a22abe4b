"""Seeded PyTorch segmentation networks for tests, built with torch.nn alone (nothing downloaded).

Imported only by the PyTorch tests; `import explainers` first (its triton guard, see
`explainers.torch_guard`) when TensorFlow is already loaded.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class TinySeg(nn.Module):
    """conv → relu → conv(stride 2) → relu → conv → relu (the `features` block) → 1×1 classifier,
    logits bilinearly upsampled to the input size (a torchvision-like head); `out` selects the form:
    "tensor", "dict" ({"out": ...}) or "logits" (an object with .logits, at half resolution)."""

    def __init__(self, classes: int = 3, out: str = "tensor", seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU())
        self.features = nn.Sequential(nn.Conv2d(12, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.classifier = nn.Conv2d(16, classes, 1)
        self.out = out
        with torch.no_grad():  # BatchNorm statistics that are not the identity
            self.features[1].running_mean.uniform_(-0.2, 0.2)
            self.features[1].running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        logits = self.classifier(self.features(self.down(self.stem(x))))
        if self.out == "logits":
            return type("Output", (), {"logits": logits})()
        logits = nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"out": logits} if self.out == "dict" else logits


class TokenSeg(nn.Module):
    """A patch embedding (4×4) → tokens (B, N, C) through a Linear `mixer` → back to a grid → classifier."""

    def __init__(self, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.patch = nn.Conv2d(3, 12, 4, stride=4)
        self.mixer = nn.Linear(12, 12)
        self.classifier = nn.Conv2d(12, classes, 1)

    def forward(self, x):
        p = self.patch(x)
        b, c, h, w = p.shape
        tokens = self.mixer(p.flatten(2).transpose(1, 2))
        grid = tokens.transpose(1, 2).reshape(b, c, h, w)
        return nn.functional.interpolate(self.classifier(grid), size=x.shape[-2:], mode="bilinear")


def smp_unet(classes: int = 3, seed: int = 0):
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    return smp.Unet("resnet18", encoder_weights=None, classes=classes).eval()


def image(size: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def normalised(img: np.ndarray, mean=MEAN, std=STD) -> torch.Tensor:
    """The module's input for `img`, as `from_torch` computes it."""
    x = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None] / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
