"""UNet++ (smp ``UnetPlusPlus``): nested dense skip pathways; every node ``x_{d}_{l}`` upsamples
its input 2x, concatenates all earlier nodes of its level and the encoder skip, then applies two
Conv-BN-ReLU (smp's ``DecoderBlock``)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from micronet_tf.layers import Resize
from micronet_tf.models._registry import ArchitectureSpec, register_architecture
from micronet_tf.models.layers import (
    attention,
    check_channels,
    conv_norm_relu,
    encoder_features,
    segmentation_head,
)

# smp's decoder only ever upsamples by exactly 2, where PyTorch's "nearest-exact" and "area"
# pick the same source pixel as legacy "nearest" (floor(i / 2) in all three).
_INTERPOLATIONS = {
    "nearest": "nearest",
    "nearest-exact": "nearest",
    "area": "nearest",
    "bilinear": "bilinear",
}


def _decoder_block(
    x: keras.KerasTensor,
    skips: list[keras.KerasTensor],
    out_channels: int,
    *,
    name: str,
    use_norm,
    attention_type,
    interpolation: str,
) -> keras.KerasTensor:
    """smp ``DecoderBlock``: 2x upsampling, concat skips, attention1, conv1, conv2, attention2."""
    x = Resize(2, interpolation, name=f"{name}.resize")(x)
    if skips:
        x = layers.Concatenate(name=f"{name}.concat")([x, *skips])
        x = attention(x, attention_type, name=f"{name}.attention1")
    x = conv_norm_relu(x, out_channels, 3, use_norm=use_norm, name=f"{name}.conv1")
    x = conv_norm_relu(x, out_channels, 3, use_norm=use_norm, name=f"{name}.conv2")
    return attention(x, attention_type, name=f"{name}.attention2")


def build_unetplusplus(
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
    if any(not isinstance(c, int) or c < 1 for c in channels):
        raise ValueError(f"decoder_channels must be positive integers, got {channels}")
    if decoder_interpolation not in _INTERPOLATIONS:
        raise ValueError(
            f"decoder_interpolation={decoder_interpolation!r} is not supported; use one of "
            f"{list(_INTERPOLATIONS)} ('bicubic' is not implemented)"
        )
    features = encoder_features(
        inputs, encoder, encoder_weights, encoder_options, depth=encoder_depth
    )
    feats = features[1:][::-1]  # drop the input, start from the deepest feature
    options = {
        "use_norm": decoder_use_norm,
        "attention_type": decoder_attention_type,
        "interpolation": _INTERPOLATIONS[decoder_interpolation],
    }
    last = encoder_depth - 1  # smp's ``self.depth``
    dense: dict[str, keras.KerasTensor] = {}
    for layer_idx in range(last):
        for depth_idx in range(last - layer_idx):
            level = depth_idx + layer_idx
            key = f"x_{depth_idx}_{level}"
            # x_0_l outputs decoder_channels[l]; deeper nodes keep their skip's channel count.
            out_channels = channels[level] if depth_idx == 0 else feats[level + 1].shape[-1]
            if layer_idx == 0:
                x, skips = feats[depth_idx], [feats[depth_idx + 1]]
            else:
                x = dense[f"x_{depth_idx}_{level - 1}"]
                skips = [dense[f"x_{i}_{level}"] for i in range(depth_idx + 1, level + 1)]
                skips.append(feats[level + 1])
            dense[key] = _decoder_block(
                x, skips, out_channels, name=f"decoder.blocks.{key}", **options
            )
    x = _decoder_block(
        dense[f"x_0_{last - 1}"], [], channels[-1], name=f"decoder.blocks.x_0_{last}", **options
    )
    return segmentation_head(x, classes)


def _unused_prefixes(options, encoder) -> tuple[str, ...]:
    """smp builds attention1 in the last node too, where there is no skip to attend to, and a
    center block for VGG encoders that its forward never calls."""
    unused = ("decoder.center",) if encoder.unet_center else ()
    if options.get("decoder_attention_type") is None:
        return unused
    return (*unused, f"decoder.blocks.x_0_{options.get('encoder_depth', 5) - 1}.attention1")


register_architecture(
    ArchitectureSpec(
        "UnetPlusPlus",
        build_unetplusplus,
        aliases=("unet++", "unetplusplus", "unet_plus_plus", "unet-plus-plus"),
        unused_checkpoint_prefixes=_unused_prefixes,
    )
)
