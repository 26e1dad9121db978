"""Parity of micronet_tf/models/unetplusplus.py with smp's UnetPlusPlus."""

from tests.models.parity import SegmentationParityTests


class TestUnetPlusPlusParity(SegmentationParityTests):
    ARCHITECTURE = "UnetPlusPlus"
    DECODER_OPTIONS = (
        {"decoder_attention_type": "scse"},
        {"decoder_use_norm": False, "decoder_channels": (64, 32, 16, 16, 8)},
        {"encoder_depth": 4, "decoder_channels": (128, 64, 32, 16)},
        {"encoder_depth": 3, "decoder_channels": (64, 32, 16)},
        {"decoder_interpolation": "bilinear"},
        {"decoder_interpolation": "nearest-exact"},
        {"decoder_interpolation": "area"},
    )
