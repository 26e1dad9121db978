"""Shared parity harness: build smp's PyTorch encoder (random weights and BatchNorm statistics),
convert its state dict with our converter, and compare every feature map.

Each encoder family's test module subclasses ``EncoderParityTests`` and sets ``ENCODERS``.
"""

from __future__ import annotations

import numpy as np
import pytest

from micronet_tf import torch_reference
from micronet_tf.convert import load_torch_weights
from micronet_tf.encoders import encoder_spec, get_classifier, get_encoder

# Max abs difference allowed, relative to the reference feature map's scale max(1, max|ref|).
# float32 round-off grows with depth; measured worst case over the ResNet family ~3e-6.
RELATIVE_TOLERANCE = 2e-5
INPUT_SIZES = ((64, 64), (96, 160))


def random_images(height: int, width: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, height, width, 3), np.float32)


def assert_features_match(keras_outputs, torch_outputs, context: str) -> None:
    keras_outputs = [np.asarray(o) for o in keras_outputs]
    assert len(keras_outputs) == len(torch_outputs), context
    for index, (ours, ref) in enumerate(zip(keras_outputs, torch_outputs)):
        assert ours.shape == ref.shape, f"{context}, output {index}: {ours.shape} vs {ref.shape}"
        scale = max(1.0, float(np.abs(ref).max()))
        diff = float(np.abs(ours - ref).max())
        assert diff <= RELATIVE_TOLERANCE * scale, (
            f"{context}, output {index} {ref.shape}: max abs diff {diff:.3g} exceeds "
            f"{RELATIVE_TOLERANCE:g} x scale {scale:.3g}"
        )


class EncoderParityTests:
    """Parity of ``get_encoder`` / ``get_classifier`` with smp's encoders; subclass per family."""

    ENCODERS: tuple[str, ...] = ()  # each test runs once per name (tests/encoders/conftest.py)

    def test_features_match_pytorch(self, name: str) -> None:
        reference = torch_reference.build_encoder(name, seed=1)
        model = get_encoder(name)
        report = load_torch_weights(model, reference.state_dict())
        assert report.assigned and not report.not_in_checkpoint
        for height, width in INPUT_SIZES:
            images = random_images(height, width)
            assert_features_match(
                model(images, training=False),
                torch_reference.run_nhwc(reference, images),
                f"{name} at {height}x{width}",
            )

    @pytest.mark.parametrize("output_stride", [16, 8])
    def test_dilated_features_match_pytorch(self, name: str, output_stride: int) -> None:
        reference = torch_reference.build_encoder(name, output_stride=output_stride, seed=2)
        model = get_encoder(name, output_stride=output_stride)
        load_torch_weights(model, reference.state_dict())
        images = random_images(64, 96)
        outputs = model(images, training=False)
        assert outputs[-1].shape[1:3] == (64 // output_stride, 96 // output_stride)
        assert_features_match(
            outputs, torch_reference.run_nhwc(reference, images), f"{name} os={output_stride}"
        )

    def test_shallow_encoder_matches_pytorch(self, name: str) -> None:
        reference = torch_reference.build_encoder(name, depth=3, seed=3)
        model = get_encoder(name, depth=3)
        load_torch_weights(model, reference.state_dict(), ignore_prefixes=("layer3", "layer4"))
        images = random_images(64, 64)
        outputs = model(images, training=False)
        assert len(outputs) == 4
        assert [o.shape[-1] for o in outputs] == list(encoder_spec(name).out_channels[:4])
        assert_features_match(outputs, torch_reference.run_nhwc(reference, images), f"{name} d=3")

    def test_classifier_logits_match_pytorch(self, name: str) -> None:
        reference = torch_reference.build_classifier(name, classes=54, seed=4)
        model = get_classifier(name, classes=54)
        load_torch_weights(model, reference.state_dict())
        images = random_images(64, 96)
        assert_features_match(
            [model(images, training=False)],
            torch_reference.run_nhwc(reference, images),
            f"{name} classifier",
        )


def parametrize_encoders(metafunc) -> None:
    """pytest hook body: run every ``EncoderParityTests`` test once per encoder name."""
    cls = metafunc.cls
    if cls is not None and issubclass(cls, EncoderParityTests) and "name" in metafunc.fixturenames:
        metafunc.parametrize("name", cls.ENCODERS)
