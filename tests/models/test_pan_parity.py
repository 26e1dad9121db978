"""Parity of micronet_tf/models/pan.py with smp's PAN (dilated encoder, output stride 16)."""

import numpy as np
import pytest

from micronet_tf.models import create_segmentation_model
from tests.models.parity import SegmentationParityTests, assert_logits_match, converted_pair


class TestPANParity(SegmentationParityTests):
    ARCHITECTURE = "PAN"
    # Multiples of 16, at least 8 * 16 (the FPA block pools the stride-16 map three times);
    # 144x208 gives the FPA odd sizes (9x13 -> 4x6 -> 2x3 -> 1x1).
    SIZES = ((128, 128), (144, 208))
    DECODER_OPTIONS = (
        {"decoder_interpolation": "nearest"},
        {"encoder_depth": 4},
        {"encoder_depth": 3},
        {"decoder_channels": 16, "upsampling": 2},
    )

    def test_output_stride_32_matches_pytorch(self) -> None:
        reference, model = converted_pair("PAN", "resnet18", 3, seed=3, encoder_output_stride=32)
        assert_logits_match(reference, model, ((256, 256),), "PAN encoder_output_stride=32")

    def test_too_small_input_raises(self) -> None:
        model = create_segmentation_model("PAN", "resnet18")
        with pytest.raises(ValueError, match="at least 128"):
            model(np.zeros((1, 112, 128, 3), np.float32))
        with pytest.raises(ValueError, match="multiples of 16"):
            model(np.zeros((1, 136, 128, 3), np.float32))

    @pytest.mark.parametrize(
        "options",
        [{"encoder_output_stride": 8}, {"encoder_depth": 2}, {"decoder_interpolation": "area"}],
    )
    def test_unsupported_options_raise(self, options) -> None:
        with pytest.raises(ValueError):
            create_segmentation_model("PAN", "resnet18", **options)
