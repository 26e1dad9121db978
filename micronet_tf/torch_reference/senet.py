"""SENet family reference: pretrainedmodels' SENet classification network (smp's vendored copy,
the same architecture as pretrainedmodels 0.7.4). Encoders are smp's own ``SENetEncoder``."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.encoders import _senet
from segmentation_models_pytorch.encoders import encoders as smp_encoders


def build_classifier(name: str, classes: int) -> torch.nn.Module:
    """``SENet(**smp's params for name, num_classes=classes)``: the trunk smp's encoder derives
    from, with ``avg_pool`` (``AvgPool2d(7, stride=1)``), ``dropout`` and ``last_linear``."""
    params = {k: v for k, v in smp_encoders[name]["params"].items() if k != "out_channels"}
    return _senet.SENet(**{**params, "num_classes": classes})
