"""Parity of micronet_tf/encoders/resnet.py with smp's ResNet / ResNeXt encoders."""

from tests.encoders.parity import EncoderParityTests


class TestResNetParity(EncoderParityTests):
    ENCODERS = (
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "resnext50_32x4d",
        "resnext101_32x8d",
    )
