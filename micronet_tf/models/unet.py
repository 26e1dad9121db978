"""U-Net (smp ``Unet``): nearest upsampling to each skip's size, concat, two Conv-BN-ReLU."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from micronet_tf.encoders import encoder_spec
from micronet_tf.layers import Resize
from micronet_tf.models._registry import ArchitectureSpec, register_architecture
from micronet_tf.models.layers import (
    attention,
    check_channels,
    conv_norm_relu,
    encoder_features,
    segmentation_head,
)


def build_unet(
    inputs: keras.KerasTensor,
    *,
    encoder: str,
    encoder_weights=None,
    encoder_options=None,
    classes: int = 1,
    encoder_depth: int = 5,
    decoder_use_norm: bool | str = "batchnorm",
    decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
    decoder_attention_type: str | None = None,
    decoder_interpolation: str = "nearest",
) -> keras.KerasTensor:
    channels = check_channels("decoder_channels", decoder_channels, encoder_depth)
    features = encoder_features(
        inputs, encoder, encoder_weights, encoder_options, depth=encoder_depth
    )
    # Drop the full-resolution input, then go from the deepest feature upwards.
    skips = features[1:][::-1]
    x = skips[0]
    if encoder_spec(encoder).unet_center:  # smp's UnetCenterBlock (VGG encoders)
        for index in range(2):
            x = conv_norm_relu(
                x, x.shape[-1], 3, use_norm=decoder_use_norm, name=f"decoder.center.{index}"
            )
    targets = features[:-1][::-1]  # the size each block upsamples to (the last is the input's)
    for index, out_channels in enumerate(channels):
        name = f"decoder.blocks.{index}"
        x = Resize(interpolation=decoder_interpolation, name=f"{name}.resize")([x, targets[index]])
        if index + 1 < len(skips):
            x = layers.Concatenate(name=f"{name}.concat")([x, skips[index + 1]])
            x = attention(x, decoder_attention_type, name=f"{name}.attention1")
        x = conv_norm_relu(x, out_channels, 3, use_norm=decoder_use_norm, name=f"{name}.conv1")
        x = conv_norm_relu(x, out_channels, 3, use_norm=decoder_use_norm, name=f"{name}.conv2")
        x = attention(x, decoder_attention_type, name=f"{name}.attention2")
    return segmentation_head(x, classes)


def _unused_prefixes(options, encoder) -> tuple[str, ...]:
    """smp builds attention1 in the last block too, where there is no skip to attend to."""
    if options.get("decoder_attention_type") is None:
        return ()
    return (f"decoder.blocks.{options.get('encoder_depth', 5) - 1}.attention1",)


register_architecture(
    ArchitectureSpec(
        "Unet", build_unet, aliases=("u-net",), unused_checkpoint_prefixes=_unused_prefixes
    )
)
