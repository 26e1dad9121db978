"""Every architecture on one encoder of every family the architecture tests do not use
(registry-driven: a new family is covered here without new test code). Parity with smp where
smp builds the model; where smp refuses (dilation of DenseNet / VGG / ...), so do we, saying
which encoders fit."""

from __future__ import annotations

import pytest

from micronet_tf import torch_reference
from micronet_tf.encoders import encoder_spec
from micronet_tf.models import create_segmentation_model, list_architectures
from tests.encoders.parity import first_of_each_family
from tests.models.parity import ENCODERS, assert_logits_match, converted_pair

DILATED = {"DeepLabV3", "DeepLabV3Plus", "PAN"}  # default options dilate the encoder
SIZE = {"PAN": (128, 128)}  # PAN: at least 8 x its stride-16 map; others take 64x64


# The first variant of each family that the architecture tests do not use already.
_TESTED = tuple({encoder_spec(name).family for name in ENCODERS})
CASES = [(a, e) for e in first_of_each_family(exclude=_TESTED) for a in list_architectures()]


@pytest.mark.parametrize(("architecture", "encoder"), CASES)
def test_architecture_on_family(architecture: str, encoder: str) -> None:
    if architecture in DILATED and not encoder_spec(encoder).dilatable:
        with pytest.raises(ValueError):
            torch_reference.build_segmentation_model(architecture, encoder)
        with pytest.raises(ValueError, match=f"{encoder}' cannot be dilated.*these can be"):
            create_segmentation_model(architecture, encoder)
        if architecture != "PAN":
            return
        # PAN also runs undilated (encoder_output_stride=32), on any encoder.
        reference, model = converted_pair("PAN", encoder, 3, encoder_output_stride=32)
        assert_logits_match(reference, model, ((256, 256),), f"PAN/{encoder}/os32")
        return
    reference, model = converted_pair(architecture, encoder, 3)
    assert_logits_match(reference, model, (SIZE.get(architecture, (64, 64)),),
                        f"{architecture}/{encoder}")
