"""Parity of micronet_tf/models/fpn.py with smp's FPN."""

import pytest

from micronet_tf.models import create_segmentation_model
from tests.models.parity import SegmentationParityTests


class TestFPNParity(SegmentationParityTests):
    ARCHITECTURE = "FPN"
    DECODER_OPTIONS = (
        {"decoder_merge_policy": "cat"},
        {"decoder_interpolation": "bilinear"},
        {"encoder_depth": 4},
        {"encoder_depth": 3},  # smp's lowest pyramid level is then the input image itself
        {
            "decoder_pyramid_channels": 64,
            "decoder_segmentation_channels": 32,
            "decoder_merge_policy": "cat",
            "decoder_dropout": 0.5,
            "upsampling": 2,
        },
    )

    @pytest.mark.parametrize(
        "options",
        [
            {"decoder_merge_policy": "mean"},
            {"decoder_segmentation_channels": 48},
            {"encoder_depth": 2},
            {"decoder_interpolation": "bicubic"},
        ],
    )
    def test_unsupported_options_raise(self, options) -> None:
        with pytest.raises(ValueError):
            create_segmentation_model("FPN", "resnet18", **options)
