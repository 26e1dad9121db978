"""Xception reference: pretrainedmodels' classifier (smp's vendored architecture, unpadded stem).

The encoder reference is smp's own ``XceptionEncoder`` (``torch_reference.build_encoder``).
"""

from __future__ import annotations

import torch
from segmentation_models_pytorch.encoders._xception import Xception


def build_classifier(name: str, classes: int) -> torch.nn.Module:
    """pretrainedmodels ``xception(num_classes=classes)``: ``last_linear = fc; del fc`` (the
    vendored ``forward`` calls ``last_linear``, which the class alone lacks); conv1 / conv2
    keep their original padding 0."""
    if name != "xception":
        raise ValueError(f"no Xception classifier named {name!r}")
    model = Xception(num_classes=classes)
    model.last_linear = model.fc
    del model.fc
    return model
