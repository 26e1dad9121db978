"""DPN classification networks: smp's vendored pretrainedmodels ``DPN`` with its ``last_linear``
head (the encoders themselves are smp's ``DPNEncoder``)."""

from __future__ import annotations

from segmentation_models_pytorch.encoders import encoders as smp_encoders
from segmentation_models_pytorch.encoders._dpn import DPN

# smp's encoder-only params (and the two the classifier sets itself).
_NOT_DPN_PARAMS = ("stage_idxs", "out_channels", "num_classes", "test_time_pool")


def build_classifier(name: str, classes: int, *, test_time_pool: bool = False) -> DPN:
    """``DPN(**smp's params, num_classes=classes, test_time_pool=...)``. ``test_time_pool=True``
    is what pretrainedmodels' factories (and smp's params) set: in eval mode a 7x7 average
    before ``last_linear`` and avg+max after it, which needs a map of at least 7x7."""
    params = {k: v for k, v in smp_encoders[name]["params"].items() if k not in _NOT_DPN_PARAMS}
    return DPN(**params, num_classes=classes, test_time_pool=test_time_pool)
