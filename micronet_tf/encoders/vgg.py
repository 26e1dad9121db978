"""VGG encoders (torchvision's ``make_layers`` as smp's ``VGGEncoder`` taps it).

The first output is not the input: smp returns the map just before each max pool (strides 1,
2, 4, 8, 16) and the last pool's output (stride 32). smp cannot dilate VGG (max-pool
downsampling); its U-Net adds a center block on these encoders.
"""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, register_encoder
from micronet_tf.layers import batch_norm, conv2d, max_pool_after_relu, relu

POOL = "M"
CONFIGS = {
    "A": (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "B": (64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "D": (
        64,
        64,
        POOL,
        128,
        128,
        POOL,
        256,
        256,
        256,
        POOL,
        512,
        512,
        512,
        POOL,
        512,
        512,
        512,
        POOL,
    ),
}
_CLASSIFIER_POOL = 7  # torchvision's AdaptiveAvgPool2d((7, 7))
_HIDDEN = 4096


def build_vgg_features(
    inputs: keras.KerasTensor, *, config: str, with_batch_norm: bool
) -> list[keras.KerasTensor]:
    """All six outputs of smp's ``VGGEncoder.forward`` (strides 1, 2, 4, 8, 16, 32).

    Layers are named ``features.{i}`` after their index in torchvision's ``Sequential``: each
    number is Conv2d(3x3, padding 1, bias) [+ BatchNorm2d] + ReLU, "M" is MaxPool2d(2, 2).
    """
    x, index, features = inputs, 0, []
    for item in CONFIGS[config]:
        if item == POOL:
            features.append(x)  # smp's _out_indexes: the module before each pool
            x = max_pool_after_relu(x, 2, strides=2, padding=0, name=f"features.{index}")
            index += 1
            continue
        x = conv2d(x, item, 3, padding=1, use_bias=True, name=f"features.{index}")
        index += 1
        if with_batch_norm:
            x = batch_norm(x, name=f"features.{index}")
            index += 1
        x = relu(x, name=f"features.{index}")
        index += 1
    features.append(x)  # the last module is the fifth pool
    return features


def vgg_head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    """torchvision ``VGG``: adaptive 7x7 average, flatten in PyTorch's (C, H, W) order,
    ``classifier.0`` / ``.3`` / ``.6`` with ReLU and dropout (0.5) between."""
    x = layers.AdaptiveAveragePooling2D(_CLASSIFIER_POOL, name="avgpool")(x)
    x = layers.Permute((3, 1, 2), name="avgpool.channels_first")(x)
    x = layers.Flatten(name="avgpool.flatten")(x)
    for index in (0, 3):
        x = layers.Dense(_HIDDEN, name=f"classifier.{index}")(x)
        x = relu(x, name=f"classifier.{index + 1}")
        x = layers.Dropout(0.5, name=f"classifier.{index + 2}")(x)
    return layers.Dense(classes, name="classifier.6")(x)


def _register(name: str, config: str, with_batch_norm: bool) -> None:
    register_encoder(
        EncoderSpec(
            name=name,
            family="vgg",
            build=build_vgg_features,
            params={"config": config, "with_batch_norm": with_batch_norm},
            out_channels=(64, 128, 256, 512, 512, 512),
            classifier_head=vgg_head,
            head_prefixes=("classifier",),
            head_output="classifier.6",
            # NASA's VGG classifiers wrapped only `features` in DataParallel.
            key_renames=((r"^((?:.*\.)?features)\.module\.", r"\1."),),
            first_output_is_input=False,
            dilatable=False,
            unet_center=True,
            input_rule="its 2x2 max pools round odd sizes down",
        )
    )


_register("vgg11", "A", False)
_register("vgg11_bn", "A", True)
_register("vgg13", "B", False)
_register("vgg13_bn", "B", True)
_register("vgg16_bn", "D", True)
