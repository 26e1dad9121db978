"""Parity of micronet_tf/encoders/vgg.py with smp's VGG encoders (no input among the outputs)."""

from tests.encoders.parity import EncoderFamilyParity


class TestVGGParity(EncoderFamilyParity):
    FAMILY = "vgg"
    FULL = ("vgg11", "vgg16_bn")  # without BatchNorm, largest
    SIZES = ((96, 160), (65, 97))  # odd sizes: floor max pools
