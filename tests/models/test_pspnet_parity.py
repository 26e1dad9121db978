"""Parity of micronet_tf/models/pspnet.py with smp's PSPNet."""

import keras
import numpy as np
import pytest
import torch

from micronet_tf.layers import AdaptiveAveragePooling2D
from tests.encoders.parity import assert_features_match
from tests.models.parity import SegmentationParityTests


class TestPSPNetParity(SegmentationParityTests):
    ARCHITECTURE = "PSPNet"
    # 8x8 and 12x20 maps at stride 8: bins 3 and 6 get uneven, overlapping windows.
    SIZES = ((64, 64), (96, 160))
    DECODER_OPTIONS = (
        {"decoder_use_norm": False, "psp_out_channels": 64},
        {"encoder_depth": 4, "upsampling": 16},
        {"encoder_depth": 5, "upsampling": 32, "psp_dropout": 0.5},
        {"upsampling": 4},
    )


@pytest.mark.parametrize("bins", [1, 2, 3, 6])
@pytest.mark.parametrize("size", [(8, 8), (7, 13), (2, 5)])
def test_adaptive_average_pooling_matches_pytorch(bins, size) -> None:
    x = np.random.default_rng(1).standard_normal((2, *size, 4), np.float32)
    expected = torch.nn.AdaptiveAvgPool2d(bins)(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    ours = AdaptiveAveragePooling2D(bins)(x)
    assert_features_match([ours], [expected.numpy().transpose(0, 2, 3, 1)], f"{bins} on {size}")


def test_dynamic_size_model_matches_pytorch() -> None:
    """The pooling windows follow the input size in a model traced with unknown height/width."""
    layer = AdaptiveAveragePooling2D(6)
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, layer(inputs))
    for size in ((9, 9), (20, 12)):
        x = np.random.default_rng(2).standard_normal((1, *size, 4), np.float32)
        expected = torch.nn.AdaptiveAvgPool2d(6)(torch.from_numpy(x.transpose(0, 3, 1, 2)))
        assert_features_match(
            [model.predict(x, verbose=0)],
            [expected.numpy().transpose(0, 2, 3, 1)],
            f"dynamic {size}",
        )
