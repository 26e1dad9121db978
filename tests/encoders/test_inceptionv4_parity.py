"""Parity of micronet_tf/encoders/inceptionv4.py with smp's Inception-v4 encoder (smp's padding
edits) and with the original classifier (original paddings), plus proof that the parity
checks catch each porting trap: a reference built with the trap fails them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from micronet_tf import torch_reference
from micronet_tf.convert import load_torch_weights
from micronet_tf.encoders import get_classifier
from tests.encoders.inception_traps import common_traps
from tests.encoders.parity import (
    EncoderFamilyParity,
    assert_features_match,
    assert_parity_catches,
    random_images,
)


def _tap_stage_ends(model: torch.nn.Module) -> None:
    """Strides 8 and 16 taken after the last Inception-A / -B block, not inside the stage."""
    model._out_indexes = [2, 4, 9, 17, 21]


TRAPS: dict[str, Callable[[torch.nn.Module], None]] = {
    **common_traps("inceptionv4"),
    "taps at the stage ends": _tap_stage_ends,
}


class TestInceptionV4Parity(EncoderFamilyParity):
    FAMILY = "inceptionv4"
    FULL = ("inceptionv4",)  # the only variant
    # 65x97: odd maps at every stride (stride-2 steps round up); 80x144: even down to
    # stride 8, odd at 16 and 32 (5x9, 3x5). One variant: each size is checked once.
    VARIANT_SIZE = (65, 97)
    SIZES = ((80, 144),)
    CLASSIFIER_SIZE = (299, 299)  # NASA's size; the original trunk needs >= 75x75

    def test_parity_catches_the_traps(self) -> None:
        assert_parity_catches("inceptionv4", TRAPS, random_images(33, 49, batch=1))

    def test_classifier_averages_the_whole_map_at_other_sizes(self) -> None:
        """Square: as smp's vendored ``avg_pool2d(kernel=H)``; non-square, where that fails:
        as ``AdaptiveAvgPool2d(1)``."""
        original = torch_reference.build_classifier("inceptionv4", classes=54, seed=7)
        pooled = torch_reference.build_classifier(
            "inceptionv4", classes=54, seed=7, global_pool=True
        )
        model = get_classifier("inceptionv4", classes=54)
        load_torch_weights(model, original.state_dict())
        square, oblong = random_images(128, 128, batch=1), random_images(96, 160, batch=1)
        assert_features_match(
            [model(square, training=False)], torch_reference.run_nhwc(original, square), "128x128"
        )
        assert_features_match(
            [model(oblong, training=False)], torch_reference.run_nhwc(pooled, oblong), "96x160"
        )
        with pytest.raises(RuntimeError):  # a 1x3 map: the vendored head gives 3 x 1536
            torch_reference.run_nhwc(original, oblong)
