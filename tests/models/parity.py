"""Shared parity harness for segmentation models: smp's model with random weights and random
BatchNorm statistics, converted with our converter, logits compared; plus a .keras round trip.

Each architecture's test module subclasses ``SegmentationParityTests``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from micronet_tf import torch_reference
from micronet_tf.models import class_names, create_segmentation_model, load_torch_weights
from tests.encoders.parity import assert_features_match, random_images

ENCODERS = ("resnet18", "resnext50_32x4d")


def converted_pair(
    architecture: str, encoder: str, classes: int, seed: int = 0, **decoder_kwargs: Any
):
    """(smp model, our Keras model holding the smp model's weights)."""
    reference = torch_reference.build_segmentation_model(
        architecture, encoder, classes=classes, seed=seed, **decoder_kwargs
    )
    model = create_segmentation_model(architecture, encoder, classes=classes, **decoder_kwargs)
    report = load_torch_weights(model, reference.state_dict())
    assert report.assigned and not report.not_in_checkpoint
    return reference, model


def assert_logits_match(reference, model, sizes, context: str) -> None:
    for height, width in sizes:
        images = random_images(height, width)
        assert_features_match(
            [model(images, training=False)],
            torch_reference.run_nhwc(reference, images),
            f"{context} at {height}x{width}",
        )


class SegmentationParityTests:
    """Subclass and set ARCHITECTURE; SIZES must obey the architecture's input rule;
    DECODER_OPTIONS lists non-default smp keyword sets to check too (with resnet18)."""

    ARCHITECTURE: str = ""
    SIZES: tuple[tuple[int, int], ...] = ((64, 64), (96, 160))
    DECODER_OPTIONS: tuple[dict[str, Any], ...] = ()

    @pytest.mark.parametrize("classes", [1, 3])
    @pytest.mark.parametrize("encoder", ENCODERS)
    def test_logits_match_pytorch(self, encoder: str, classes: int) -> None:
        reference, model = converted_pair(self.ARCHITECTURE, encoder, classes)
        assert_logits_match(
            reference, model, self.SIZES, f"{self.ARCHITECTURE}/{encoder}/classes={classes}"
        )

    def test_decoder_options_match_pytorch(self) -> None:
        for options in self.DECODER_OPTIONS:
            reference, model = converted_pair(self.ARCHITECTURE, "resnet18", 3, seed=5, **options)
            assert_logits_match(reference, model, self.SIZES[:1], f"{self.ARCHITECTURE} {options}")

    def test_keras_file_round_trip(self, tmp_path: Path) -> None:
        model = create_segmentation_model(
            self.ARCHITECTURE,
            "resnet18",
            classes=3,
            activation="softmax",
            class_names=["a", "b", "c"],
        )
        path = tmp_path / "model.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path)
        images = random_images(*self.SIZES[-1])
        np.testing.assert_array_equal(
            np.asarray(model(images, training=False)), np.asarray(reloaded(images, training=False))
        )
        assert class_names(reloaded) == ["a", "b", "c"]
