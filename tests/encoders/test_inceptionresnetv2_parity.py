"""Parity of micronet_tf/encoders/inceptionresnetv2.py with smp's Inception-ResNet-v2 encoder
(smp's padding edits) and with the original classifier (original paddings), plus proof that
the parity checks catch each porting trap: a reference built with the trap fails them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from micronet_tf import torch_reference
from micronet_tf.convert import load_torch_weights
from micronet_tf.encoders import get_classifier
from tests.encoders.inception_traps import common_traps
from tests.encoders.parity import (
    EncoderFamilyParity,
    assert_features_match,
    assert_parity_catches,
    random_images,
)


def _zero_residual_biases(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "scale"):  # Block35 / Block17 / Block8
                module.conv2d.bias.zero_()


def _unscaled_residuals(model: torch.nn.Module) -> None:
    for module in model.modules():
        if hasattr(module, "scale"):  # Block35 / Block17 / Block8
            module.scale = 1.0


def _relu_after_block8(model: torch.nn.Module) -> None:
    model.block8.noReLU = False
    model.block8.relu = torch.nn.ReLU()


def _no_final_relu(model: torch.nn.Module) -> None:
    model.conv2d_7b.relu = torch.nn.Identity()


TRAPS: dict[str, Callable[[torch.nn.Module], None]] = {
    **common_traps("inceptionresnetv2"),
    "residual conv2d without bias": _zero_residual_biases,
    "residual without scale": _unscaled_residuals,
    "block8 with a ReLU": _relu_after_block8,
    "conv2d_7b without its ReLU": _no_final_relu,
}


class TestInceptionResNetV2Parity(EncoderFamilyParity):
    FAMILY = "inceptionresnetv2"
    FULL = ("inceptionresnetv2",)  # the only variant
    # 65x97: odd maps at every stride (stride-2 steps round up); 80x144: even down to
    # stride 8, odd at 16 and 32 (5x9, 3x5). One variant: each size is checked once.
    VARIANT_SIZE = (65, 97)
    SIZES = ((80, 144),)
    CLASSIFIER_SIZE = (299, 299)  # NASA's size: avgpool_1a (8x8) is global only there

    def test_parity_catches_the_traps(self) -> None:
        expected = assert_parity_catches("inceptionresnetv2", TRAPS, random_images(33, 49, batch=1))
        # smp's last output (conv2d_7b, a BasicConv2d) ends in a ReLU, block8 does not.
        reference = torch_reference.build_encoder("inceptionresnetv2")
        assert isinstance(reference.conv2d_7b.relu, torch.nn.ReLU) and reference.block8.noReLU
        assert expected[-1].min() == 0.0 and (expected[-1] == 0.0).mean() > 0.1

    def test_classifier_averages_the_whole_map_at_other_sizes(self) -> None:
        """Where avgpool_1a (AvgPool2d(8)) fails: as ``AdaptiveAvgPool2d(1)``."""
        pooled = torch_reference.build_classifier(
            "inceptionresnetv2", classes=54, seed=7, global_pool=True
        )
        model = get_classifier("inceptionresnetv2", classes=54)
        load_torch_weights(model, pooled.state_dict())
        images = random_images(96, 160, batch=1)
        assert_features_match(
            [model(images, training=False)], torch_reference.run_nhwc(pooled, images), "96x160"
        )
        original = torch_reference.build_classifier("inceptionresnetv2", classes=54, seed=7)
        with pytest.raises(RuntimeError):  # a 1x3 map is smaller than the 8x8 pool
            torch_reference.run_nhwc(original, images)
