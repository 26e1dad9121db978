"""Parity of micronet_tf/models/linknet.py with smp's Linknet."""

from tests.models.parity import SegmentationParityTests


class TestLinknetParity(SegmentationParityTests):
    ARCHITECTURE = "Linknet"
    DECODER_OPTIONS = (
        {"decoder_use_norm": False},
        {"encoder_depth": 4},
        {"encoder_depth": 3},
    )
