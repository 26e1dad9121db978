"""PAN (smp ``PAN``): Feature Pyramid Attention on the deepest map, Global Attention Upsample
blocks up to 1/4 of the input, then the segmentation head (3x3 conv, 4x bilinear upsampling)."""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.layers import Resize, batch_norm, conv2d
from micronet_tf.models._registry import ArchitectureSpec, register_architecture
from micronet_tf.models.layers import encoder_features, segmentation_head

OUTPUT_STRIDES = (16, 32)
# The FPA block max-pools the encoder's deepest map three times (2x2, stride 2): that map
# needs at least 8 pixels per side, or PyTorch fails ("output size is too small").
FPA_MIN_SIZE = 8


def _conv_bn_relu(
    x: keras.KerasTensor, filters: int, kernel_size: int, *, name: str, relu: bool = True
) -> keras.KerasTensor:
    """smp PAN's ``ConvBnRelu`` (stride 1, "same" padding): conv with bias ``name.conv``,
    BatchNorm ``name.bn``, optional ReLU."""
    x = conv2d(
        x, filters, kernel_size, padding=kernel_size // 2, use_bias=True, name=f"{name}.conv"
    )
    x = batch_norm(x, name=f"{name}.bn")
    if relu:
        x = layers.ReLU(name=f"{name}.activation")(x)
    return x


def _fpa_block(x: keras.KerasTensor, filters: int, *, name: str) -> keras.KerasTensor:
    """smp ``FPABlock`` (its interpolation is always bilinear with align_corners=True).

    smp resizes to ``(h // 4, w // 4)`` and ``(h // 2, w // 2)``: exactly the sizes of the
    once- and twice-pooled maps (floor pooling), so those maps give the target sizes here.
    """

    def resize(t, like, suffix):
        return Resize(interpolation="bilinear", align_corners=True, name=f"{name}.{suffix}")(
            [t, like]
        )

    branch1 = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.branch1.0")(x)
    branch1 = _conv_bn_relu(branch1, filters, 1, name=f"{name}.branch1.1")
    branch1 = resize(branch1, x, "branch1.resize")
    middle = _conv_bn_relu(x, filters, 1, name=f"{name}.mid.0")

    def pool(t, stage):
        return layers.MaxPooling2D(2, strides=2, padding="valid", name=f"{name}.{stage}.0")(t)

    pooled1 = pool(x, "down1")
    x1 = _conv_bn_relu(pooled1, 1, 7, name=f"{name}.down1.1")
    pooled2 = pool(x1, "down2")
    x2 = _conv_bn_relu(pooled2, 1, 5, name=f"{name}.down2.1")
    x3 = pool(x2, "down3")
    x3 = _conv_bn_relu(x3, 1, 3, name=f"{name}.down3.1")
    x3 = _conv_bn_relu(x3, 1, 3, name=f"{name}.down3.2")
    x3 = resize(x3, pooled2, "down3.resize")
    x2 = _conv_bn_relu(x2, 1, 5, name=f"{name}.conv2")
    out = layers.Add(name=f"{name}.add2")([x2, x3])
    out = resize(out, pooled1, "up2.resize")
    x1 = _conv_bn_relu(x1, 1, 7, name=f"{name}.conv1")
    out = layers.Add(name=f"{name}.add1")([out, x1])
    out = resize(out, x, "up1.resize")
    out = layers.Multiply(name=f"{name}.mul")([out, middle])  # 1 channel times `filters`
    return layers.Add(name=f"{name}.add_branch1")([out, branch1])


def _gau_block(
    x: keras.KerasTensor, y: keras.KerasTensor, filters: int, *, interpolation: str, name: str
) -> keras.KerasTensor:
    """smp ``GAUBlock``: ``resize(y, like=x) + conv2(x) * sigmoid(bn(conv(avgpool(y))))``."""
    y_up = Resize(
        interpolation=interpolation,
        align_corners=interpolation == "bilinear",
        name=f"{name}.resize",
    )([y, x])
    x = _conv_bn_relu(x, filters, 3, name=f"{name}.conv2")
    y = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.conv1.0")(y)
    y = _conv_bn_relu(y, filters, 1, relu=False, name=f"{name}.conv1.1")
    y = layers.Activation("sigmoid", name=f"{name}.conv1.2")(y)
    z = layers.Multiply(name=f"{name}.mul")([x, y])
    return layers.Add(name=f"{name}.add")([y_up, z])


def build_pan(
    inputs: keras.KerasTensor,
    *,
    encoder: str,
    encoder_weights=None,
    encoder_options=None,
    classes: int = 1,
    encoder_depth: int = 5,
    encoder_output_stride: int = 16,
    decoder_channels: int = 32,
    decoder_interpolation: str = "bilinear",
    upsampling: int = 4,
) -> keras.KerasTensor:
    if not 3 <= encoder_depth <= 5:
        raise ValueError(f"PAN needs encoder_depth in 3..5, got {encoder_depth!r}")
    if encoder_output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"PAN supports encoder_output_stride 16 or 32, got {encoder_output_stride!r}"
        )
    if decoder_interpolation not in ("nearest", "bilinear"):
        raise ValueError(
            f"decoder_interpolation={decoder_interpolation!r} is not supported; use 'bilinear' "
            "or 'nearest'"
        )
    stride = min(encoder_output_stride, 2**encoder_depth)
    features = encoder_features(
        inputs,
        encoder,
        encoder_weights,
        encoder_options,
        depth=encoder_depth,
        output_stride=encoder_output_stride,
        minimum_size=FPA_MIN_SIZE * stride,
        size_reason=f" (the FPA block pools the stride-{stride} encoder map three times)",
    )
    features = features[2:]  # smp drops the input and the stride-2 map
    x = _fpa_block(features[-1], decoder_channels, name="decoder.fpa")
    # gau3 on the stride-16 map (depth 5), gau2 on stride 8 (depth >= 4), gau1 on stride 4.
    for index in range(len(features) - 2, -1, -1):
        x = _gau_block(
            features[index],
            x,
            decoder_channels,
            interpolation=decoder_interpolation,
            name=f"decoder.gau{index + 1}",
        )
    return segmentation_head(x, classes, kernel_size=3, upsampling=upsampling)


register_architecture(
    ArchitectureSpec(
        "PAN",
        build_pan,
        aliases=("pan",),
        input_rule=(
            "height and width multiples of s = min(encoder_output_stride, 2**encoder_depth) "
            "(16 by default) and at least 8 * s (128 by default)"
        ),
    )
)
