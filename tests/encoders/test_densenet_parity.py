"""Parity of micronet_tf/encoders/densenet.py with smp's DenseNet encoders."""

from tests.encoders.parity import EncoderFamilyParity


class TestDenseNetParity(EncoderFamilyParity):
    FAMILY = "densenet"
    FULL = ("densenet121", "densenet161")  # representative, largest
    SIZES = ((96, 160), (65, 97))  # odd sizes: floor average pools
