"""Building blocks that reproduce PyTorch layer semantics in Keras.

Naming rule (the converter depends on it): every Keras layer that holds weights is named after
the PyTorch module path it mirrors (``layer1.0.conv1``); weightless helpers get a name below the
module they belong to (``layer1.0.relu1``, ``conv1.pad``). One path, grep-able in both codebases.
"""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.layers import GroupedConv2D

# PyTorch BatchNorm2d defaults: eps 1e-5, running-stat momentum 0.1 (Keras counts 1 - momentum).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def conv2d(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    strides: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    use_bias: bool = False,
) -> keras.KerasTensor:
    """``torch.nn.Conv2d`` with symmetric zero padding ``padding`` on every side.

    Keras ``"same"`` pads asymmetrically for stride 2 (more at the bottom/right), PyTorch pads
    both sides equally; so strided or non-"same" convolutions get an explicit ``ZeroPadding2D``
    and a ``"valid"`` convolution.
    """
    same_padding = dilation * (kernel_size - 1) // 2
    if strides == 1 and kernel_size % 2 == 1 and padding == same_padding:
        keras_padding = "same"
    else:
        if padding:
            x = layers.ZeroPadding2D(padding, name=f"{name}.pad")(x)
        keras_padding = "valid"
    conv_cls = GroupedConv2D if groups > 1 else layers.Conv2D
    return conv_cls(
        filters,
        kernel_size,
        strides=strides,
        padding=keras_padding,
        dilation_rate=dilation,
        groups=groups,
        use_bias=use_bias,
        name=name,
    )(x)


def batch_norm(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    """``torch.nn.BatchNorm2d`` (eps 1e-5) over the channels-last axis."""
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def relu(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    return layers.ReLU(name=name)(x)


def max_pool_after_relu(
    x: keras.KerasTensor, pool_size: int, *, strides: int, padding: int, name: str
) -> keras.KerasTensor:
    """``torch.nn.MaxPool2d(pool_size, strides, padding)`` for inputs that are >= 0.

    PyTorch pads max-pooling with -inf; padding with zeros gives the same result only because
    the input comes straight from a ReLU (every value >= 0), which callers must guarantee.
    """
    if padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}.pad")(x)
    return layers.MaxPooling2D(pool_size, strides=strides, padding="valid", name=name)(x)
