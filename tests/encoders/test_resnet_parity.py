"""Parity of micronet_tf/encoders/resnet.py with smp's ResNet / ResNeXt encoders."""

from tests.encoders.parity import EncoderFamilyParity


class TestResNetParity(EncoderFamilyParity):
    FAMILY = "resnet"
    FULL = ("resnet18", "resnet50", "resnext101_32x8d")  # basic, bottleneck, largest (grouped)
