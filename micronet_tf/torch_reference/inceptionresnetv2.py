"""Reference classifier for ``inceptionresnetv2``: pretrainedmodels' InceptionResNetV2 (smp's
vendored copy) with its original paddings, as NASA pre-trained it; smp's padding edits live
only in its encoder subclass, whose reference is smp's own encoder."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.encoders._inceptionresnetv2 import InceptionResNetV2


def build_classifier(name: str, classes: int, *, global_pool: bool = False) -> torch.nn.Module:
    """``InceptionResNetV2(num_classes=classes)``; ``global_pool`` swaps ``avgpool_1a``
    (``AvgPool2d(8)``: global only on an 8x8 map) for ``AdaptiveAvgPool2d(1)``."""
    if name != "inceptionresnetv2":
        raise ValueError(f"no Inception-ResNet-v2 classifier named {name!r}")
    model = InceptionResNetV2(num_classes=classes)
    if global_pool:
        model.avgpool_1a = torch.nn.AdaptiveAvgPool2d(1)
    return model
