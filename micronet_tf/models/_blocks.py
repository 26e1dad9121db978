"""Decoder building blocks shared by the architectures, named after smp's module paths.

smp's ``Conv2dReLU`` is ``Sequential(conv, norm, relu)``, so its weights live at
``<path>.0`` (conv) and ``<path>.1`` (BatchNorm); every block here keeps those paths.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from micronet_tf.encoders import get_encoder
from micronet_tf.encoders._blocks import batch_norm, conv2d
from micronet_tf.models._layers import InputSizeCheck, Resize

NORMS = ("batchnorm", "identity")


def resolve_norm(use_norm: bool | str) -> str:
    """smp's ``decoder_use_norm``: True / "batchnorm" -> BatchNorm, False / "identity" -> none."""
    if use_norm is True:
        return "batchnorm"
    if use_norm is False:
        return "identity"
    if isinstance(use_norm, str) and use_norm.lower() in NORMS:
        return use_norm.lower()
    raise ValueError(
        f"decoder_use_norm={use_norm!r} is not supported; use True/'batchnorm' or False/'identity'"
    )


def conv_norm_relu(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    padding: int | None = None,
    strides: int = 1,
    use_norm: bool | str = True,
    dilation: int = 1,
) -> keras.KerasTensor:
    """smp ``Conv2dReLU``: conv (bias only without norm) ``name.0``, norm ``name.1``, ReLU."""
    norm = resolve_norm(use_norm)
    padding = kernel_size // 2 * dilation if padding is None else padding
    x = conv2d(
        x,
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        dilation=dilation,
        use_bias=norm == "identity",
        name=f"{name}.0",
    )
    if norm == "batchnorm":
        x = batch_norm(x, name=f"{name}.1")
    return layers.ReLU(name=f"{name}.2")(x)


def attention(
    x: keras.KerasTensor, attention_type: str | None, *, name: str, reduction: int = 16
) -> keras.KerasTensor:
    """smp ``Attention``: identity, or SCSE at ``name.attention`` (``x*cSE(x) + x*sSE(x)``)."""
    if attention_type is None:
        return x
    if attention_type != "scse":
        raise ValueError(f"attention_type must be None or 'scse', got {attention_type!r}")
    channels = x.shape[-1]
    path = f"{name}.attention"
    c = layers.GlobalAveragePooling2D(keepdims=True, name=f"{path}.cSE.0")(x)
    c = layers.Conv2D(channels // reduction, 1, name=f"{path}.cSE.1")(c)
    c = layers.ReLU(name=f"{path}.cSE.2")(c)
    c = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{path}.cSE.3")(c)
    s = layers.Conv2D(1, 1, activation="sigmoid", name=f"{path}.sSE.0")(x)
    return layers.Add(name=f"{path}.add")(
        [layers.Multiply(name=f"{path}.cmul")([x, c]), layers.Multiply(name=f"{path}.smul")([x, s])]
    )


def segmentation_head(
    x: keras.KerasTensor,
    classes: int,
    *,
    kernel_size: int = 3,
    upsampling: int = 1,
    name: str = "segmentation_head",
) -> keras.KerasTensor:
    """smp ``SegmentationHead``: conv ``name.0`` then bilinear (align_corners) upsampling."""
    x = conv2d(x, classes, kernel_size, padding=kernel_size // 2, use_bias=True, name=f"{name}.0")
    if upsampling > 1:
        x = Resize(upsampling, "bilinear", align_corners=True, name=f"{name}.1")(x)
    return x


def encoder_features(
    inputs: keras.KerasTensor,
    encoder: str,
    weights,
    options=None,
    *,
    depth: int = 5,
    output_stride: int = 32,
    minimum_size: int = 0,
    size_reason: str = "",
) -> list[keras.KerasTensor]:
    """Run the named encoder (with its build ``options``) as a nested model called ``encoder``
    (checkpoint paths ``encoder.*``), after checking that the input size is a multiple of its
    output stride (and at least ``minimum_size``, with ``size_reason`` saying why)."""
    model = get_encoder(
        encoder,
        weights=weights,
        input_shape=tuple(inputs.shape[1:]),
        depth=depth,
        output_stride=output_stride,
        model_name="encoder",
        **dict(options or {}),
    )
    stride = min(output_stride, 2**depth)
    checked = InputSizeCheck(stride, minimum_size, size_reason, name="input_size_check")(inputs)
    return list(model(checked))


def check_channels(name: str, values: Sequence[int], expected_length: int) -> list[int]:
    values = list(values)
    if len(values) != expected_length:
        raise ValueError(f"{name} needs {expected_length} values, got {len(values)}: {values}")
    return values
