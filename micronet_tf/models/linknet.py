"""LinkNet (smp ``Linknet``): per stage 1x1 Conv-BN-ReLU to a quarter of the channels, a 2x
transposed convolution (kernel 4, stride 2, padding 1) with BN-ReLU, a 1x1 Conv-BN-ReLU, then
the encoder skip is added."""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.layers import batch_norm
from micronet_tf.models._registry import ArchitectureSpec, register_architecture
from micronet_tf.models.layers import (
    conv_norm_relu,
    encoder_features,
    resolve_norm,
    segmentation_head,
)

PREFINAL_CHANNELS = 32  # smp's fixed ``prefinal_channels``


def _transpose_x2(x: keras.KerasTensor, filters: int, *, name: str, norm: str) -> keras.KerasTensor:
    """smp ``TransposeX2``: ``ConvTranspose2d(k=4, s=2, p=1)`` ``name.0`` (with bias), norm
    ``name.1``, ReLU. PyTorch's padding crops 1 pixel from each side of the full (2H + 2)
    transposed-convolution output, so the Keras layer is "valid" plus a symmetric crop."""
    x = layers.Conv2DTranspose(
        filters, 4, strides=2, padding="valid", use_bias=True, name=f"{name}.0"
    )(x)
    x = layers.Cropping2D(1, name=f"{name}.0.crop")(x)
    if norm == "batchnorm":
        x = batch_norm(x, name=f"{name}.1")
    return layers.ReLU(name=f"{name}.2")(x)


def build_linknet(
    inputs: keras.KerasTensor,
    *,
    encoder: str,
    encoder_weights=None,
    encoder_options=None,
    classes: int = 1,
    encoder_depth: int = 5,
    decoder_use_norm: bool | str = "batchnorm",
) -> keras.KerasTensor:
    norm = resolve_norm(decoder_use_norm)
    features = encoder_features(
        inputs, encoder, encoder_weights, encoder_options, depth=encoder_depth
    )
    feats = features[1:][::-1]  # drop the input, start from the deepest feature
    channels = [f.shape[-1] for f in feats] + [PREFINAL_CHANNELS]
    x, skips = feats[0], feats[1:]
    for index in range(encoder_depth):
        name = f"decoder.blocks.{index}.block"
        quarter = channels[index] // 4
        x = conv_norm_relu(x, quarter, 1, use_norm=norm, name=f"{name}.0")
        x = _transpose_x2(x, quarter, name=f"{name}.1", norm=norm)
        x = conv_norm_relu(x, channels[index + 1], 1, use_norm=norm, name=f"{name}.2")
        if index < len(skips):
            x = layers.Add(name=f"decoder.blocks.{index}.add")([x, skips[index]])
    return segmentation_head(x, classes, kernel_size=1)


register_architecture(ArchitectureSpec("Linknet", build_linknet, aliases=("linknet", "link-net")))
