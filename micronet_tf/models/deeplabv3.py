"""DeepLabV3 and DeepLabV3+ (smp ``DeepLabV3``, ``DeepLabV3Plus``): ASPP on a dilated encoder.

smp's ``SeparableConv2d`` is ``Sequential(depthwise conv, pointwise conv)``, so its weights live
at ``<path>.0`` (a Keras ``DepthwiseConv2D``) and ``<path>.1`` (a 1x1 ``Conv2D``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from micronet_tf.layers import Resize, batch_norm, conv2d
from micronet_tf.models._registry import ArchitectureSpec, register_architecture
from micronet_tf.models.layers import encoder_features, segmentation_head

_OUTPUT_STRIDES = (8, 16)


def _check_output_stride(architecture: str, output_stride: int) -> None:
    if output_stride not in _OUTPUT_STRIDES:
        raise ValueError(
            f"{architecture} supports encoder_output_stride 8 or 16, got {output_stride!r}"
        )


def separable_conv(
    x: keras.KerasTensor, filters: int, *, name: str, dilation: int = 1
) -> keras.KerasTensor:
    """smp ``SeparableConv2d`` (3x3, padding = dilation, no bias): depthwise ``name.0``,
    pointwise ``name.1``."""
    x = layers.DepthwiseConv2D(
        3, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}.0"
    )(x)
    return layers.Conv2D(filters, 1, use_bias=False, name=f"{name}.1")(x)


def _conv_bn_relu(
    x, filters: int, kernel_size: int, *, name: str, dilation: int = 1, separable: bool = False
) -> keras.KerasTensor:
    """``Sequential(conv or separable conv, BatchNorm2d, ReLU)`` at ``name.0`` .. ``name.2``."""
    if separable:
        x = separable_conv(x, filters, dilation=dilation, name=f"{name}.0")
    else:
        x = conv2d(
            x,
            filters,
            kernel_size,
            padding=kernel_size // 2 * dilation,
            dilation=dilation,
            name=f"{name}.0",
        )
    x = batch_norm(x, name=f"{name}.1")
    return layers.ReLU(name=f"{name}.2")(x)


def aspp(
    x: keras.KerasTensor,
    filters: int,
    atrous_rates: Sequence[int],
    *,
    separable: bool,
    dropout: float,
    name: str,
) -> keras.KerasTensor:
    """smp ``ASPP``: a 1x1 branch, three atrous branches, image pooling; concat and project."""
    rates = tuple(atrous_rates)
    if len(rates) != 3:
        raise ValueError(f"decoder_atrous_rates needs 3 values, got {len(rates)}: {list(rates)}")
    branches = [_conv_bn_relu(x, filters, 1, name=f"{name}.convs.0")]
    for index, rate in enumerate(rates, start=1):
        branches.append(
            _conv_bn_relu(
                x, filters, 3, dilation=int(rate), separable=separable, name=f"{name}.convs.{index}"
            )
        )
    pooled_name = f"{name}.convs.4"  # ASPPPooling: pool .0, conv .1, bn .2, relu .3
    y = layers.GlobalAveragePooling2D(keepdims=True, name=f"{pooled_name}.0")(x)
    y = conv2d(y, filters, 1, name=f"{pooled_name}.1")
    y = batch_norm(y, name=f"{pooled_name}.2")
    y = layers.ReLU(name=f"{pooled_name}.3")(y)
    branches.append(
        Resize(interpolation="bilinear", align_corners=False, name=f"{pooled_name}.resize")([y, x])
    )
    y = layers.Concatenate(name=f"{name}.concat")(branches)
    y = conv2d(y, filters, 1, name=f"{name}.project.0")
    y = batch_norm(y, name=f"{name}.project.1")
    y = layers.ReLU(name=f"{name}.project.2")(y)
    return layers.Dropout(dropout, name=f"{name}.project.3")(y)


def build_deeplabv3(
    inputs: keras.KerasTensor,
    *,
    encoder: str,
    encoder_weights=None,
    encoder_options=None,
    classes: int = 1,
    encoder_depth: int = 5,
    encoder_output_stride: int = 8,
    decoder_channels: int = 256,
    decoder_atrous_rates: Sequence[int] = (12, 24, 36),
    decoder_aspp_separable: bool = False,
    decoder_aspp_dropout: float = 0.5,
    upsampling: int | None = None,
) -> keras.KerasTensor:
    _check_output_stride("DeepLabV3", encoder_output_stride)
    if upsampling is None:  # back to the input's size, as smp derives it
        upsampling = 2**encoder_depth if encoder_depth <= 3 else encoder_output_stride
    x = encoder_features(
        inputs,
        encoder,
        encoder_weights,
        encoder_options,
        depth=encoder_depth,
        output_stride=encoder_output_stride,
    )[-1]
    x = aspp(
        x,
        decoder_channels,
        decoder_atrous_rates,
        separable=decoder_aspp_separable,
        dropout=decoder_aspp_dropout,
        name="decoder.aspp",
    )
    x = conv2d(x, decoder_channels, 3, padding=1, name="decoder.conv")
    x = batch_norm(x, name="decoder.bn")
    x = layers.ReLU(name="decoder.relu")(x)
    return segmentation_head(x, classes, kernel_size=1, upsampling=upsampling)


def build_deeplabv3plus(
    inputs: keras.KerasTensor,
    *,
    encoder: str,
    encoder_weights=None,
    encoder_options=None,
    classes: int = 1,
    encoder_depth: int = 5,
    encoder_output_stride: int = 16,
    decoder_channels: int = 256,
    decoder_atrous_rates: Sequence[int] = (12, 24, 36),
    decoder_aspp_separable: bool = True,
    decoder_aspp_dropout: float = 0.5,
    upsampling: int = 4,
) -> keras.KerasTensor:
    _check_output_stride("DeepLabV3Plus", encoder_output_stride)
    if encoder_depth < 3:
        raise ValueError(
            f"DeepLabV3Plus needs encoder_depth >= 3 (it uses the stride-4 feature), got "
            f"{encoder_depth}"
        )
    features = encoder_features(
        inputs,
        encoder,
        encoder_weights,
        encoder_options,
        depth=encoder_depth,
        output_stride=encoder_output_stride,
    )
    x = aspp(
        features[-1],
        decoder_channels,
        decoder_atrous_rates,
        separable=decoder_aspp_separable,
        dropout=decoder_aspp_dropout,
        name="decoder.aspp.0",
    )
    x = separable_conv(x, decoder_channels, name="decoder.aspp.1")
    x = batch_norm(x, name="decoder.aspp.2")
    x = layers.ReLU(name="decoder.aspp.3")(x)
    scale = 4 if encoder_output_stride == 16 and encoder_depth > 3 else 2
    x = Resize(scale, "bilinear", align_corners=True, name="decoder.up")(x)
    high_res = conv2d(features[2], 48, 1, name="decoder.block1.0")
    high_res = batch_norm(high_res, name="decoder.block1.1")
    high_res = layers.ReLU(name="decoder.block1.2")(high_res)
    x = layers.Concatenate(name="decoder.concat")([x, high_res])
    x = separable_conv(x, decoder_channels, name="decoder.block2.0")
    x = batch_norm(x, name="decoder.block2.1")
    x = layers.ReLU(name="decoder.block2.2")(x)
    return segmentation_head(x, classes, kernel_size=1, upsampling=upsampling)


_INPUT_RULE = (
    "height and width multiples of min(encoder_output_stride, 2**encoder_depth) ({} by default)"
)

register_architecture(
    ArchitectureSpec("DeepLabV3", build_deeplabv3, input_rule=_INPUT_RULE.format(8))
)
register_architecture(
    ArchitectureSpec("DeepLabV3Plus", build_deeplabv3plus, input_rule=_INPUT_RULE.format(16))
)
