"""PyTorch references for the EfficientNet encoders and classifiers, in both padding conventions.

``padding="micronet"``: efficientnet-pytorch 0.6.3 run as smp 0.2.1's ``EfficientNetEncoder``
runs it (what NASA trained MicroNet with; static paddings from the nominal image size).
``padding="smp"``: smp 0.6.0's own encoder (vendored efficientnet-pytorch 0.7 code, paddings
propagated block by block). State-dict keys are the same in both; ``_conv_head`` / ``_bn1`` stay
in the encoder's state dict, unused by its forward, as in smp.
"""

from __future__ import annotations

import efficientnet_pytorch
import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.encoders import _efficientnet
from segmentation_models_pytorch.encoders._utils import replace_strides_with_dilation

PADDINGS = ("micronet", "smp")
# smp 0.2.1's DeepLabV3: make_dilated(stage_list, dilation_list) on get_stages() indexes.
_DILATED_STAGES = {32: {}, 16: {5: 2}, 8: {4: 2, 5: 4}}


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


class Smp021EfficientNetEncoder(efficientnet_pytorch.EfficientNet):
    """smp 0.2.1's ``EfficientNetEncoder`` on efficientnet-pytorch 0.6.3: ``_fc`` deleted,
    stages cut at ``stage_idxs = out_indexes[:3] + 1``, block k called with drop-connect rate
    ``0.2 * k / len(_blocks)`` (inert in eval)."""

    def __init__(self, name: str, depth: int = 5) -> None:
        super().__init__(*efficientnet_pytorch.get_model_params(name, None))
        self.set_swish(memory_efficient=False)  # same forward, no deprecated backward
        out_indexes = smp.encoders.encoders[name]["params"]["out_indexes"]
        self._stage_idxs = tuple(index + 1 for index in out_indexes[:3])
        self._depth = depth
        del self._fc

    def get_stages(self) -> list[torch.nn.Module]:
        a, b, c = self._stage_idxs
        return [
            torch.nn.Identity(),
            torch.nn.Sequential(self._conv_stem, self._bn0, self._swish),
            self._blocks[:a],
            self._blocks[a:b],
            self._blocks[b:c],
            self._blocks[c:],
        ]

    def make_dilated(self, output_stride: int) -> None:
        """smp 0.2.1's dilation: stage 5 (``_blocks[o2 + 1:]``) by 2 for output stride 16;
        stages 4, 5 by 2, 4 for 8 (``replace_strides_with_dilation`` drops static padding)."""
        stages = self.get_stages()
        for index, rate in _DILATED_STAGES[output_stride].items():
            replace_strides_with_dilation(stages[index], rate)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stages, features, block_number = self.get_stages(), [], 0
        rate = self._global_params.drop_connect_rate
        for index in range(self._depth + 1):
            if index < 2:
                x = stages[index](x)
            else:
                for block in stages[index]:
                    x = block(x, rate * block_number / len(self._blocks))
                    block_number += 1
            features.append(x)
        return features


def build_encoder(
    name: str, *, depth: int, output_stride: int, padding: str = PADDINGS[0]
) -> torch.nn.Module:
    """smp 0.2.1 + efficientnet-pytorch 0.6.3 (``"micronet"``) or smp 0.6.0 (``"smp"``)."""
    _check_padding(padding)
    if output_stride not in _DILATED_STAGES:
        raise ValueError(f"output_stride must be one of {tuple(_DILATED_STAGES)}")
    if padding == "smp":
        return smp.encoders.get_encoder(
            name, weights=None, depth=depth, output_stride=output_stride
        )
    if not 1 <= depth <= 5:  # smp 0.2.1 accepts depth 1
        raise ValueError(f"depth must be in 1..5, got {depth!r}")
    encoder = Smp021EfficientNetEncoder(name, depth)
    encoder.make_dilated(output_stride)
    return encoder


def build_classifier(name: str, classes: int, padding: str = PADDINGS[0]) -> torch.nn.Module:
    """The EfficientNet classifier: efficientnet-pytorch 0.6.3's (``"micronet"``; NASA's
    pre-training) or smp 0.6.0's vendored 0.7 code (``"smp"``)."""
    _check_padding(padding)
    override = {"num_classes": classes}
    if padding == "smp":
        return _efficientnet.EfficientNet(*_efficientnet.get_model_params(name, override))
    model = efficientnet_pytorch.EfficientNet.from_name(name, override_params=override)
    model.set_swish(memory_efficient=False)
    return model
