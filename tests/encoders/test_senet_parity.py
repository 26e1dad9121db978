"""Parity of micronet_tf/encoders/senet.py with smp's SENet encoders and pretrainedmodels' SENet
classifiers.

Budget: senet154 (115M parameters) is slow to build; its classifier is compared at a small
size (with the original's pool made global) instead of 224x224, which the representative
covers. Each block type's specifics (stems, widths, stride placement, 3x3 shortcuts, dilation)
are also checked on one-block-per-layer networks, which build in a few seconds.
"""

from __future__ import annotations

import keras
import pytest
import torch
from segmentation_models_pytorch.encoders import encoders as smp_encoders

from micronet_tf import layers as primitives
from micronet_tf import torch_reference
from micronet_tf.convert import load_torch_weights
from micronet_tf.encoders import encoder_spec, get_classifier
from micronet_tf.encoders.senet import build_senet_features
from micronet_tf.layers import GroupedConv2D
from tests.encoders.parity import (
    EncoderFamilyParity,
    assert_features_match,
    assert_fully_consumed,
    random_images,
)

REPRESENTATIVE, LARGEST = "se_resnext50_32x4d", "senet154"
ODD_SIZE = (65, 97)  # the stem pool is MaxPool2d(3, 2, ceil_mode=True): 33 -> 16, 49 -> 24


class TestSENetParity(EncoderFamilyParity):
    FAMILY = "senet"
    FULL = (REPRESENTATIVE, LARGEST)
    VARIANT_SIZE = ODD_SIZE  # every variant at an odd size; the FULL ones also at SIZES (even)
    CLASSIFIER_SIZE = (224, 224)  # the original's AvgPool2d(7) is global only there

    def test_classifier_logits_match_pytorch(self) -> None:
        """At 224x224, the original's size, for the representative; senet154's head (with its
        dropout) is checked at a small size by the next test."""
        super().test_classifier_logits_match_pytorch(REPRESENTATIVE)

    def test_classifier_averages_globally_at_other_sizes(self, name: str) -> None:
        """Where the original fails (a last map smaller than 7x7), ours is the original with
        its ``avg_pool`` replaced by a global average; dropout as in the original."""
        reference = torch_reference.build_classifier(name, classes=54, seed=6)
        model = get_classifier(name, classes=54)
        assert_fully_consumed(load_torch_weights(model, reference.state_dict()), name)
        dropouts = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
        assert dropouts == ([] if reference.dropout is None else [reference.dropout.p])
        images = random_images(*ODD_SIZE)
        with torch.no_grad():
            trunk = reference.features(torch.from_numpy(images.transpose(0, 3, 1, 2)).contiguous())
            with pytest.raises(RuntimeError):  # last map 2x3: smaller than the 7x7 window
                reference.logits(trunk)
            reference.avg_pool = torch.nn.AdaptiveAvgPool2d(1)
            expected = reference.logits(trunk).numpy()
        assert_features_match(
            [model(images, training=False)], [expected], f"{name} classifier, global average"
        )


def _one_block_per_layer(variant: str, output_stride: int) -> tuple[torch.nn.Module, keras.Model]:
    """smp's encoder for ``variant`` with layers (1, 1, 1, 1), dilated as smp does, random
    weights and BatchNorm statistics; and ours, built the same way."""
    entry = smp_encoders[variant]
    torch.manual_seed(0)
    reference = entry["encoder"](**{**entry["params"], "layers": [1, 1, 1, 1]})
    if output_stride != 32:
        reference.make_dilated(output_stride)
    torch_reference.randomize_batchnorm_(reference).eval()
    rates = {16: 2, 32: 4} if output_stride == 8 else {}  # smp's make_dilated(8)
    inputs = keras.Input((None, None, 3))
    with primitives.dilation_plan(rates):
        features = build_senet_features(
            inputs, **{**encoder_spec(variant).params, "layers_per_stage": (1, 1, 1, 1)}
        )
    return reference, keras.Model(inputs, features)


@pytest.mark.parametrize("variant", ["se_resnet50", "se_resnext50_32x4d", "senet154"])
@pytest.mark.parametrize(
    ("output_stride", "size"), [(32, ODD_SIZE), (8, (64, 64))], ids=["os32-odd", "os8-even"]
)
def test_each_block_type_mirrors_the_original(variant: str, output_stride: int, size) -> None:
    """One block per layer: every output equal to smp's, and every ``nn.Conv2d`` has a Keras
    twin of the same name, kernel, stride, dilation, groups (grouped ones on TensorFlow's
    native path) and bias. Catches the stride on the wrong conv (SE-ResNet: conv1, others: the
    grouped conv2), SE-ResNeXt / SENet-154 widths, the stems, 3x3 shortcuts (dilated too), the
    stem pool's rounding, and SE ``fc1`` / ``fc2`` built as ``Dense`` or without bias."""
    reference, model = _one_block_per_layer(variant, output_stride)
    assert_fully_consumed(load_torch_weights(model, reference.state_dict()), variant)
    images = random_images(*size)
    assert_features_match(
        model(images, training=False),
        torch_reference.run_nhwc(reference, images)[1:],
        f"{variant}, one block per layer, OS {output_stride} at {size}",
    )
    convs = {n: m for n, m in reference.named_modules() if isinstance(m, torch.nn.Conv2d)}
    keras_convs = {
        layer.name: layer
        for layer in model.layers
        if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    }
    assert set(keras_convs) == set(convs)
    for path, conv in convs.items():
        layer = keras_convs[path]
        assert isinstance(layer, GroupedConv2D if conv.groups > 1 else keras.layers.Conv2D), path
        assert (
            layer.filters,
            layer.kernel_size,
            layer.strides,
            layer.dilation_rate,
            layer.groups,
            layer.use_bias,
        ) == (
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
        ), path
    assert keras_convs["layer1.0.se_module.fc1"].use_bias  # SE convs have biases
    assert "layer1.0.downsample.0" in keras_convs  # stride 1, but 64 / 128 -> 256 channels
