"""Parity of micronet_tf/encoders/mobilenet.py with smp's MobileNetV2 encoder."""

from tests.encoders.parity import EncoderFamilyParity


class TestMobileNetV2Parity(EncoderFamilyParity):
    FAMILY = "mobilenet"
    FULL = ("mobilenet_v2",)  # the only variant
    SIZES = ((96, 160), (65, 97))  # odd sizes: strided depthwise convs round up
    DILATED_SIZE = (65, 96)
