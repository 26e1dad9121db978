"""Parity of micronet_tf/models/unet.py with smp's Unet."""

from tests.models.parity import SegmentationParityTests


class TestUnetParity(SegmentationParityTests):
    ARCHITECTURE = "Unet"
    DECODER_OPTIONS = (
        {"decoder_attention_type": "scse"},
        {"decoder_use_norm": False, "decoder_channels": (64, 32, 16, 16, 8)},
        {"encoder_depth": 4, "decoder_channels": (128, 64, 32, 16)},
        {"decoder_interpolation": "bilinear"},
    )
