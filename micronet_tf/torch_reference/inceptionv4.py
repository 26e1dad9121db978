"""Reference classifier for ``inceptionv4``: pretrainedmodels' InceptionV4 (smp's vendored copy)
with its original paddings, as NASA pre-trained it; smp's padding edits live only in its
encoder subclass, whose reference is smp's own encoder."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.encoders._inceptionv4 import InceptionV4


class _GlobalAverageInceptionV4(InceptionV4):
    """``logits`` over the whole final map (``AdaptiveAvgPool2d(1)``), at any input shape;
    the vendored ``avg_pool2d(kernel=H)`` is that only on square maps."""

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(features, 1).flatten(1)
        return self.last_linear(pooled)


def build_classifier(name: str, classes: int, *, global_pool: bool = False) -> torch.nn.Module:
    """``InceptionV4(num_classes=classes)``; ``global_pool`` averages non-square maps whole."""
    if name != "inceptionv4":
        raise ValueError(f"no Inception-v4 classifier named {name!r}")
    return (_GlobalAverageInceptionV4 if global_pool else InceptionV4)(num_classes=classes)
