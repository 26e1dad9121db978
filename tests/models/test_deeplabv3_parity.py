"""Parity of micronet_tf/models/deeplabv3.py with smp's DeepLabV3 and DeepLabV3Plus."""

from tests.models.parity import SegmentationParityTests


class TestDeepLabV3Parity(SegmentationParityTests):
    ARCHITECTURE = "DeepLabV3"
    # Output stride 8: 8x8 and 12x20 maps, smaller than the atrous rates 12, 24, 36.
    SIZES = ((64, 64), (96, 160))
    DECODER_OPTIONS = (
        {"encoder_output_stride": 16},
        {"decoder_aspp_separable": True, "decoder_channels": 64, "decoder_atrous_rates": (1, 2, 3)},
        {"encoder_depth": 4, "decoder_atrous_rates": (2, 4, 6)},
        {"encoder_depth": 3, "decoder_aspp_dropout": 0.1},
        {"upsampling": 4},
    )


class TestDeepLabV3PlusParity(SegmentationParityTests):
    ARCHITECTURE = "DeepLabV3Plus"
    SIZES = ((64, 64), (96, 160))
    DECODER_OPTIONS = (
        {"encoder_output_stride": 8},
        {
            "decoder_aspp_separable": False,
            "decoder_channels": 64,
            "decoder_atrous_rates": (1, 2, 3),
        },
        {"encoder_depth": 4},
        {"encoder_depth": 3, "encoder_output_stride": 8},
        {"upsampling": 2},
    )
