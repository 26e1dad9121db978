"""SENet encoders (SE-ResNet, SE-ResNeXt, SENet-154): pretrainedmodels' SENet as smp's
``SENetEncoder`` taps it.

Outputs: ``layer0`` (before its pool), then ``layer1``..``layer4``. The stem pool is
``MaxPool2d(3, 2, ceil_mode=True)`` without padding (Caffe's rounding, not ResNet's padded pool).
Every block is relu(SE(bn3(conv3(...))) + shortcut), the SE's ``fc1`` / ``fc2`` being 1x1
convolutions with biases. smp's ``get_stages()`` is ``{16: layer3, 32: layer4}``.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, HeadBuilder, register_encoder
from micronet_tf.layers import batch_norm, conv2d, encoder_stage, max_pool, relu

_REDUCTION = 16  # SE bottleneck ratio, every variant
_EXPANSION = 4  # block output = 4 * planes, every block type
_SE_RESNEXT_BASE_WIDTH = 4


def _block_widths(block: str, planes: int, groups: int) -> tuple[int, int, bool]:
    """(conv1 width, conv2 width, whether the stride sits on conv1) of one bottleneck type."""
    if block == "se_resnet":  # Caffe style: the stride on the first 1x1 conv
        return planes, planes, True
    if block == "se_resnext":
        width = math.floor(planes * _SE_RESNEXT_BASE_WIDTH / 64) * groups
        return width, width, False
    if block == "senet":  # SEBottleneck (SENet-154)
        return planes * 2, planes * 4, False
    raise ValueError(f"unknown SENet block type {block!r}")


def _se_module(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    """``SEModule``: x * sigmoid(fc2(relu(fc1(mean(x))))), fc1 / fc2 1x1 Conv2d with biases."""
    channels = x.shape[-1]
    scale = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.avg_pool")(x)
    scale = conv2d(scale, channels // _REDUCTION, 1, use_bias=True, name=f"{name}.fc1")
    scale = relu(scale, name=f"{name}.relu")
    scale = conv2d(scale, channels, 1, use_bias=True, name=f"{name}.fc2")
    scale = layers.Activation("sigmoid", name=f"{name}.sigmoid")(scale)
    return layers.Multiply(name=f"{name}.mul")([x, scale])


def _bottleneck(
    x: keras.KerasTensor,
    planes: int,
    *,
    block: str,
    groups: int,
    stride: int,
    downsample: tuple[int, int] | None,
    name: str,
) -> keras.KerasTensor:
    """``Bottleneck.forward``; ``downsample`` = (kernel, padding) of the projection shortcut."""
    conv1_width, conv2_width, stride_on_conv1 = _block_widths(block, planes, groups)
    out = conv2d(x, conv1_width, 1, strides=stride if stride_on_conv1 else 1, name=f"{name}.conv1")
    out = relu(batch_norm(out, name=f"{name}.bn1"), name=f"{name}.relu1")
    out = conv2d(
        out,
        conv2_width,
        3,
        strides=1 if stride_on_conv1 else stride,
        padding=1,
        groups=groups,
        name=f"{name}.conv2",
    )
    out = relu(batch_norm(out, name=f"{name}.bn2"), name=f"{name}.relu2")
    out = conv2d(out, planes * _EXPANSION, 1, name=f"{name}.conv3")
    out = _se_module(batch_norm(out, name=f"{name}.bn3"), name=f"{name}.se_module")
    shortcut = x
    if downsample is not None:
        kernel, padding = downsample
        shortcut = conv2d(
            x,
            planes * _EXPANSION,
            kernel,
            strides=stride,
            padding=padding,
            name=f"{name}.downsample.0",
        )
        shortcut = batch_norm(shortcut, name=f"{name}.downsample.1")
    out = layers.Add(name=f"{name}.add")([out, shortcut])
    return relu(out, name=f"{name}.relu3")


def _stem(inputs: keras.KerasTensor, *, input_3x3: bool, inplanes: int) -> keras.KerasTensor:
    """``layer0`` without its pool: one 7x7 stride-2 conv, or SENet-154's three 3x3 convs."""
    if not input_3x3:
        x = conv2d(inputs, inplanes, 7, strides=2, padding=3, name="layer0.conv1")
        return relu(batch_norm(x, name="layer0.bn1"), name="layer0.relu1")
    x = inputs
    for index, (channels, stride) in enumerate(((64, 2), (64, 1), (inplanes, 1)), 1):
        x = conv2d(x, channels, 3, strides=stride, padding=1, name=f"layer0.conv{index}")
        x = relu(batch_norm(x, name=f"layer0.bn{index}"), name=f"layer0.relu{index}")
    return x


def build_senet_features(
    inputs: keras.KerasTensor,
    *,
    block: str,
    layers_per_stage: tuple[int, int, int, int],
    groups: int,
    input_3x3: bool,
    inplanes: int,
    downsample_kernel_size: int,
    downsample_padding: int,
) -> list[keras.KerasTensor]:
    """Feature maps at strides 2..32, as smp's ``SENetEncoder.forward`` returns them."""
    x = _stem(inputs, input_3x3=input_3x3, inplanes=inplanes)
    features = [x]
    x = max_pool(x, 3, strides=2, ceil_mode=True, nonnegative=True, name="layer0.pool")
    in_channels = inplanes
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers_per_stage), 1):
        # layer1 keeps the resolution and always projects with a 1x1 conv (64/128 -> 256).
        stride, downsample = (
            (1, (1, 0)) if stage == 1 else (2, (downsample_kernel_size, downsample_padding))
        )
        with encoder_stage(2 ** (stage + 1)):
            for index in range(blocks):
                first = index == 0 and (stride != 1 or in_channels != planes * _EXPANSION)
                x = _bottleneck(
                    x,
                    planes,
                    block=block,
                    groups=groups,
                    stride=stride if index == 0 else 1,
                    downsample=downsample if first else None,
                    name=f"layer{stage}.{index}",
                )
                in_channels = planes * _EXPANSION
        features.append(x)
    return features


def senet_head(dropout_p: float | None) -> HeadBuilder:
    """pretrainedmodels' ``SENet.logits``: ``avg_pool`` -> ``dropout`` (if any) ->
    ``last_linear``.

    The original pools with ``AvgPool2d(7, stride=1)`` and flattens: it runs only when the last
    map is 7x7 (input height and width 195..226, e.g. the 224x224 it was trained at), where that
    average is global. Ours averages globally at every input size, which equals the original
    where the original runs (and its ``avg_pool`` replaced by ``AdaptiveAvgPool2d(1)``
    elsewhere).
    """

    def head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_p is not None:
            x = layers.Dropout(dropout_p, name="dropout")(x)
        return layers.Dense(classes, name="last_linear")(x)

    return head


# name -> block, layers, groups, dropout; SENet-154 has its own stem and 3x3 shortcuts.
_VARIANTS = {
    "se_resnet50": ("se_resnet", (3, 4, 6, 3), 1, None),
    "se_resnet101": ("se_resnet", (3, 4, 23, 3), 1, None),
    "se_resnet152": ("se_resnet", (3, 8, 36, 3), 1, None),
    "se_resnext50_32x4d": ("se_resnext", (3, 4, 6, 3), 32, None),
    "se_resnext101_32x4d": ("se_resnext", (3, 4, 23, 3), 32, None),
    "senet154": ("senet", (3, 8, 36, 3), 64, 0.2),
}


def _register(
    name: str,
    block: str,
    layers_per_stage: tuple[int, int, int, int],
    groups: int,
    dropout_p: float | None,
) -> None:
    senet154 = block == "senet"
    inplanes = 128 if senet154 else 64
    register_encoder(
        EncoderSpec(
            name=name,
            family="senet",
            build=build_senet_features,
            params={
                "block": block,
                "layers_per_stage": layers_per_stage,
                "groups": groups,
                "input_3x3": senet154,
                "inplanes": inplanes,
                "downsample_kernel_size": 3 if senet154 else 1,
                "downsample_padding": 1 if senet154 else 0,
            },
            out_channels=(3, inplanes, 256, 512, 1024, 2048),
            classifier_head=senet_head(dropout_p),
            head_prefixes=("last_linear",),
            head_output="last_linear",
            input_rule="stride-2 steps round up, but the stem's ceil-mode pool rounds "
            "down (33 -> 16)",
        )
    )


for _name, _variant in _VARIANTS.items():
    _register(_name, *_variant)
