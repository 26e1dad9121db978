"""create_segmentation_model's argument handling: names, classes, activations, input sizes."""

from __future__ import annotations

import numpy as np
import pytest

import micronet_tf
from micronet_tf.models import create_segmentation_model, list_architectures, model_info


def test_names_are_case_insensitive_and_checked() -> None:
    model = micronet_tf.create_segmentation_model("u-net", "resnet18")
    assert model_info(model)["architecture"] == "Unet"
    with pytest.raises(ValueError, match="Unknown architecture 'Unett'. Did you mean 'Unet'"):
        create_segmentation_model("Unett", "resnet18")
    with pytest.raises(ValueError, match="Unknown encoder"):
        create_segmentation_model("Unet", "resnet19")
    assert "Unet" in list_architectures()


def test_two_classes_is_explained() -> None:
    with pytest.raises(ValueError, match="binary segmentation is classes=1"):
        create_segmentation_model("Unet", "resnet18", classes=2)


def test_unknown_decoder_option_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="does not take \\['decoder_chanels'\\].*decoder_channels"):
        create_segmentation_model("Unet", "resnet18", decoder_chanels=(1, 2, 3, 4, 5))


@pytest.mark.parametrize(
    ("activation", "check"),
    [
        (None, lambda y: y.min() < 0 or y.max() > 1),
        ("auto", lambda y: np.allclose(y.sum(-1), 1, atol=1e-5)),
        ("sigmoid", lambda y: y.min() >= 0 and y.max() <= 1),
    ],
)
def test_activations(activation, check) -> None:
    model = create_segmentation_model("Unet", "resnet18", classes=3, activation=activation)
    outputs = np.asarray(model(np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype("f4")))
    assert outputs.shape == (1, 64, 64, 3)
    assert check(outputs)


def test_bad_activation_and_class_names() -> None:
    with pytest.raises(ValueError, match="activation='relu'"):
        create_segmentation_model("Unet", "resnet18", activation="relu")
    with pytest.raises(ValueError, match="class_names has 2 names for classes=3"):
        create_segmentation_model("Unet", "resnet18", classes=3, class_names=["a", "b"])


def test_input_size_rule_is_enforced_with_a_hint() -> None:
    model = create_segmentation_model("Unet", "resnet18")
    with pytest.raises(ValueError, match="multiples of 32; pad to 96x64"):
        model(np.zeros((1, 70, 64, 3), "float32"))
    fixed = create_segmentation_model("Unet", "resnet18", input_shape=(128, 96, 3))
    assert fixed.output_shape == (None, 128, 96, 1)
