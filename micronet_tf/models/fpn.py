"""FPN (smp ``FPN``): a top-down feature pyramid, GroupNorm segmentation blocks, merge, head."""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.layers import Resize, conv2d
from micronet_tf.models._registry import ArchitectureSpec, register_architecture
from micronet_tf.models.layers import encoder_features, segmentation_head

MERGE_POLICIES = ("add", "cat")
GROUP_NORM_GROUPS = 32
GROUP_NORM_EPSILON = 1e-5  # torch.nn.GroupNorm's default


def _conv3x3_gn_relu(
    x: keras.KerasTensor, filters: int, *, upsample: bool, name: str
) -> keras.KerasTensor:
    """smp ``Conv3x3GNReLU``: conv ``name.block.0``, GroupNorm(32) ``name.block.1``, ReLU, then
    optionally a 2x bilinear (align_corners) upsampling."""
    x = conv2d(x, filters, 3, padding=1, name=f"{name}.block.0")
    x = layers.GroupNormalization(
        GROUP_NORM_GROUPS, epsilon=GROUP_NORM_EPSILON, name=f"{name}.block.1"
    )(x)
    x = layers.ReLU(name=f"{name}.block.2")(x)
    if upsample:
        x = Resize(2, "bilinear", align_corners=True, name=f"{name}.upsample")(x)
    return x


def _segmentation_block(
    x: keras.KerasTensor, filters: int, n_upsamples: int, *, name: str
) -> keras.KerasTensor:
    """smp ``SegmentationBlock``: ``max(1, n_upsamples)`` Conv3x3GNReLU at ``name.block.{i}``."""
    x = _conv3x3_gn_relu(x, filters, upsample=bool(n_upsamples), name=f"{name}.block.0")
    for index in range(1, n_upsamples):
        x = _conv3x3_gn_relu(x, filters, upsample=True, name=f"{name}.block.{index}")
    return x


def build_fpn(
    inputs: keras.KerasTensor,
    *,
    encoder: str,
    encoder_weights=None,
    encoder_options=None,
    classes: int = 1,
    encoder_depth: int = 5,
    decoder_pyramid_channels: int = 256,
    decoder_segmentation_channels: int = 128,
    decoder_merge_policy: str = "add",
    decoder_dropout: float = 0.2,
    decoder_interpolation: str = "nearest",
    upsampling: int = 4,
) -> keras.KerasTensor:
    if not 3 <= encoder_depth <= 5:
        raise ValueError(f"FPN needs encoder_depth in 3..5, got {encoder_depth!r}")
    if decoder_merge_policy not in MERGE_POLICIES:
        raise ValueError(
            f"decoder_merge_policy must be one of {MERGE_POLICIES}, got {decoder_merge_policy!r}"
        )
    if decoder_segmentation_channels % GROUP_NORM_GROUPS:
        raise ValueError(
            f"decoder_segmentation_channels={decoder_segmentation_channels} must be a multiple "
            f"of {GROUP_NORM_GROUPS} (GroupNorm with {GROUP_NORM_GROUPS} groups)"
        )
    if decoder_interpolation not in ("nearest", "bilinear"):
        raise ValueError(
            f"decoder_interpolation={decoder_interpolation!r} is not supported; use 'nearest' "
            "or 'bilinear'"
        )
    features = encoder_features(
        inputs, encoder, encoder_weights, encoder_options, depth=encoder_depth
    )
    # smp takes the last four maps; with encoder_depth 3 the first of them is the input image.
    c2, c3, c4, c5 = features[-4:]
    p5 = conv2d(c5, decoder_pyramid_channels, 1, use_bias=True, name="decoder.p5")
    pyramid = [p5]
    for level, skip in (("p4", c4), ("p3", c3), ("p2", c2)):
        name = f"decoder.{level}"
        up = Resize(2, decoder_interpolation, name=f"{name}.upsample")(pyramid[-1])
        skip = conv2d(skip, decoder_pyramid_channels, 1, use_bias=True, name=f"{name}.skip_conv")
        pyramid.append(layers.Add(name=f"{name}.add")([up, skip]))
    blocks = [
        _segmentation_block(
            p, decoder_segmentation_channels, n_upsamples, name=f"decoder.seg_blocks.{index}"
        )
        for index, (p, n_upsamples) in enumerate(zip(pyramid, (3, 2, 1, 0)))
    ]
    if decoder_merge_policy == "add":
        x = layers.Add(name="decoder.merge")(blocks)
    else:
        x = layers.Concatenate(name="decoder.merge")(blocks)
    x = layers.SpatialDropout2D(decoder_dropout, name="decoder.dropout")(x)
    return segmentation_head(x, classes, kernel_size=1, upsampling=upsampling)


register_architecture(
    ArchitectureSpec(
        "FPN",
        build_fpn,
        aliases=("fpn",),
        input_rule="height and width multiples of 2**encoder_depth (32 by default)",
    )
)
