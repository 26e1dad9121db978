"""Every architecture on one encoder of every family the architecture tests do not use
(registry-driven: a new family is covered here without new test code). Parity with smp where
smp builds the model; where smp refuses (dilation of DenseNet / VGG / ...), so do we, saying
which encoders fit."""

from __future__ import annotations

import numpy as np
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
    assert_logits_match(
        reference, model, (SIZE.get(architecture, (64, 64)),), f"{architecture}/{encoder}"
    )


def test_encoder_options_reach_the_encoder(tmp_path) -> None:
    """``encoder_options`` pick the encoder's build option (EfficientNet's padding convention,
    which a state dict cannot tell): smp 0.6.0's U-Net on efficientnet-b2 (per-block padding)
    is matched with ``padding="smp"`` and missed with the default (NASA's 0.6.3 padding);
    the option is stored in the model, survives a .keras file and reaches conversion."""
    import keras

    from micronet_tf.convert import segmentation_model_from_torch
    from micronet_tf.models import load_torch_weights, model_info
    from tests.encoders.parity import random_images

    reference = torch_reference.build_segmentation_model("Unet", "efficientnet-b2", classes=3)
    images = random_images(64, 64)
    expected = torch_reference.run_nhwc(reference, images)
    model = create_segmentation_model(
        "Unet", "efficientnet-b2", classes=3, encoder_options={"padding": "smp"}
    )
    load_torch_weights(model, reference.state_dict())
    assert_logits_match(reference, model, ((64, 64),), "Unet/efficientnet-b2/smp padding")
    assert model_info(model)["encoder_options"] == {"padding": "smp"}
    default = create_segmentation_model("Unet", "efficientnet-b2", classes=3)
    assert model_info(default)["encoder_options"] == {"padding": "micronet"}
    load_torch_weights(default, reference.state_dict())
    assert np.abs(np.asarray(default(images, training=False)) - expected[0]).max() > 1e-3
    model.save(tmp_path / "m.keras")
    assert model_info(keras.saving.load_model(tmp_path / "m.keras"))["encoder_options"] == {
        "padding": "smp"
    }
    converted = segmentation_model_from_torch(
        reference.state_dict(),
        "Unet",
        "efficientnet-b2",
        activation=None,
        encoder_options={"padding": "smp"},
    )
    assert_logits_match(reference, converted, ((64, 64),), "converted with smp padding")
    with pytest.raises(ValueError, match="padding='tf'; expected one of"):
        create_segmentation_model("Unet", "efficientnet-b2", encoder_options={"padding": "tf"})
    with pytest.raises(ValueError, match="has no option"):
        create_segmentation_model("Unet", "resnet18", encoder_options={"padding": "smp"})
