"""MobileNetV2 encoder (torchvision's MobileNetV2 as smp's ``MobileNetV2Encoder`` taps it).

Outputs are the maps after ``features`` 1, 3, 6, 13 and 18; smp dilates ``features[7:14]``
(stride 16) and ``features[14:]`` (stride 32). Activation ReLU6 throughout.
"""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, register_encoder
from micronet_tf.layers import batch_norm, conv2d, depthwise_conv2d, encoder_stage, relu6

# (expand ratio t, output channels c, repeats n, first stride s): torchvision, width 1.0.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280
# smp's _out_indexes (1, 3, 6, 13, 18): the last feature of each stage, keyed by its stride;
# smp's get_stages() dilates features[7:14] (stride 16) and features[14:] (stride 32).
_STAGE_ENDS = {2: 1, 4: 3, 8: 6, 16: 13, 32: 18}


def _conv_bn_relu6(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    strides: int = 1,
    depthwise: bool = False,
) -> keras.KerasTensor:
    """torchvision ``Conv2dNormActivation`` (padding (k - 1) // 2): conv ``.0``, BN ``.1``."""
    padding = (kernel_size - 1) // 2
    if depthwise:
        x = depthwise_conv2d(x, kernel_size, strides=strides, padding=padding, name=f"{name}.0")
    else:
        x = conv2d(x, filters, kernel_size, strides=strides, padding=padding, name=f"{name}.0")
    return relu6(batch_norm(x, name=f"{name}.1"), name=f"{name}.2")


def _inverted_residual(
    x: keras.KerasTensor, out_channels: int, *, stride: int, expand_ratio: int, name: str
) -> keras.KerasTensor:
    """torchvision ``InvertedResidual``: [1x1 expand], 3x3 depthwise, 1x1 linear projection;
    residual iff the nominal stride is 1 and the channel count is kept (fixed at construction,
    so dilation does not add one)."""
    in_channels = x.shape[-1]
    hidden = int(round(in_channels * expand_ratio))
    out, index = x, 0
    if expand_ratio != 1:
        out = _conv_bn_relu6(out, hidden, 1, name=f"{name}.conv.0")
        index = 1
    out = _conv_bn_relu6(
        out, hidden, 3, strides=stride, depthwise=True, name=f"{name}.conv.{index}"
    )
    out = conv2d(out, out_channels, 1, name=f"{name}.conv.{index + 1}")
    out = batch_norm(out, name=f"{name}.conv.{index + 2}")
    if stride == 1 and in_channels == out_channels:
        out = layers.Add(name=f"{name}.add")([x, out])
    return out


def _feature_blocks():
    """``(index, out_channels, stride, expand_ratio)`` of features 1..17."""
    index = 1
    for expand_ratio, channels, repeats, first_stride in _SETTINGS:
        for repeat in range(repeats):
            yield index, channels, first_stride if repeat == 0 else 1, expand_ratio
            index += 1


def _stage_of(index: int) -> int:
    """The output stride of the stage that ``features[index]`` belongs to."""
    return min(stride for stride, end in _STAGE_ENDS.items() if index <= end)


def build_mobilenet_v2_features(inputs: keras.KerasTensor) -> list[keras.KerasTensor]:
    """Feature maps at strides 2..32, as smp's ``MobileNetV2Encoder.forward`` returns them."""
    x = _conv_bn_relu6(inputs, _STEM_CHANNELS, 3, strides=2, name="features.0")
    features = []
    for index, channels, stride, expand_ratio in _feature_blocks():
        with encoder_stage(_stage_of(index)):
            x = _inverted_residual(
                x, channels, stride=stride, expand_ratio=expand_ratio, name=f"features.{index}"
            )
        if index in _STAGE_ENDS.values():
            features.append(x)
    with encoder_stage(32):
        x = _conv_bn_relu6(x, _LAST_CHANNELS, 1, name="features.18")
    features.append(x)
    return features


def mobilenet_v2_head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    """torchvision: global average, ``classifier`` = [Dropout(0.2), Linear] (``classifier.1``)."""
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = layers.Dropout(0.2, name="classifier.0")(x)
    return layers.Dense(classes, name="classifier.1")(x)


register_encoder(
    EncoderSpec(
        name="mobilenet_v2",
        family="mobilenet",
        build=build_mobilenet_v2_features,
        params={},
        out_channels=(3, 16, 24, 32, 96, _LAST_CHANNELS),
        classifier_head=mobilenet_v2_head,
        head_prefixes=("classifier",),
        head_output="classifier.1",
        input_rule="stride-2 steps round up",
    )
)
