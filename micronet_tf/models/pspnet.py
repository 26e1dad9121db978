"""PSPNet (smp ``PSPNet``): pyramid pooling (bins 1, 2, 3, 6) on the deepest feature, then a
1x1 Conv-BN-ReLU and the segmentation head's bilinear upsampling."""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.layers import AdaptiveAveragePooling2D, Resize
from micronet_tf.models._registry import ArchitectureSpec, register_architecture
from micronet_tf.models.layers import conv_norm_relu, encoder_features, segmentation_head

PSP_BINS = (1, 2, 3, 6)


def build_pspnet(
    inputs: keras.KerasTensor,
    *,
    encoder: str,
    encoder_weights=None,
    encoder_options=None,
    classes: int = 1,
    encoder_depth: int = 3,
    psp_out_channels: int = 512,
    decoder_use_norm: bool | str = "batchnorm",
    psp_dropout: float = 0.2,
    upsampling: int = 8,
    psp_use_batchnorm: bool | str | None = None,
) -> keras.KerasTensor:
    if psp_use_batchnorm is not None:  # smp's deprecated spelling of decoder_use_norm
        decoder_use_norm = psp_use_batchnorm
    x = encoder_features(inputs, encoder, encoder_weights, encoder_options, depth=encoder_depth)[-1]
    channels = x.shape[-1]
    branches = []
    for index, bins in enumerate(PSP_BINS):
        name = f"decoder.psp.blocks.{index}"
        y = AdaptiveAveragePooling2D(bins, name=f"{name}.pool.0")(x)
        # smp drops the norm of the 1x1 bin (BatchNorm cannot train on a 1x1 map).
        y = conv_norm_relu(
            y,
            channels // len(PSP_BINS),
            1,
            name=f"{name}.pool.1",
            use_norm=False if bins == 1 else decoder_use_norm,
        )
        branches.append(
            Resize(interpolation="bilinear", align_corners=True, name=f"{name}.resize")([y, x])
        )
    x = layers.Concatenate(name="decoder.psp.concat")([*branches, x])
    x = conv_norm_relu(x, psp_out_channels, 1, name="decoder.conv", use_norm=decoder_use_norm)
    x = layers.SpatialDropout2D(psp_dropout, name="decoder.dropout")(x)
    return segmentation_head(x, classes, kernel_size=3, upsampling=upsampling)


register_architecture(
    ArchitectureSpec(
        "PSPNet",
        build_pspnet,
        input_rule="height and width multiples of 2**encoder_depth (8 by default)",
    )
)
