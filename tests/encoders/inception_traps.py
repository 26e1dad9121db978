"""Porting traps shared by the two Inception families, applied to smp's reference encoder: a
reference so modified must fail the parity checks (``parity.assert_parity_catches``)."""

from __future__ import annotations

import torch

from micronet_tf import torch_reference


def modules(model: torch.nn.Module, kind: type) -> list[torch.nn.Module]:
    return [module for module in model.modules() if isinstance(module, kind)]


def set_bn_epsilon(model: torch.nn.Module) -> None:
    for module in modules(model, torch.nn.BatchNorm2d):
        module.eps = 1e-5


def count_pad_in_average(model: torch.nn.Module) -> None:
    for module in modules(model, torch.nn.AvgPool2d):
        module.count_include_pad = True


def unpad_max_pools(model: torch.nn.Module) -> None:
    for module in modules(model, torch.nn.MaxPool2d):
        module.padding = 0


def original_conv_paddings(name: str):
    """The 3x3 convolutions as the classification network ``name`` pads them (smp pads all
    by 1)."""

    def apply(model: torch.nn.Module) -> None:
        original = dict(torch_reference.build_classifier(name, classes=1).named_modules())
        for path, module in model.named_modules():
            if isinstance(module, torch.nn.Conv2d):
                module.padding = original[path].padding

    return apply


def common_traps(name: str) -> dict:
    return {
        "batchnorm epsilon 1e-5": set_bn_epsilon,
        "average pools counting the padding": count_pad_in_average,
        "3x3 convolutions without smp's padding": original_conv_paddings(name),
        "max pools without smp's padding": unpad_max_pools,
    }
