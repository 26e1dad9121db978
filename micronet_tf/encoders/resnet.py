"""ResNet and ResNeXt encoders, layer for layer as torchvision builds them for smp's encoders."""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, average_linear_head, register_encoder
from micronet_tf.layers import batch_norm, conv2d, encoder_stage, max_pool_after_relu, relu


def _basic_block(
    x: keras.KerasTensor,
    planes: int,
    *,
    stride: int,
    downsample: bool,
    name: str,
    groups: int,
    width_per_group: int,
) -> keras.KerasTensor:
    """torchvision ``BasicBlock``: two 3x3 convolutions, identity or 1x1 projection shortcut."""
    if groups != 1 or width_per_group != 64:
        raise ValueError("BasicBlock supports only groups=1 and width_per_group=64")
    out = conv2d(x, planes, 3, strides=stride, padding=1, name=f"{name}.conv1")
    out = relu(batch_norm(out, name=f"{name}.bn1"), name=f"{name}.relu1")
    out = conv2d(out, planes, 3, padding=1, name=f"{name}.conv2")
    out = batch_norm(out, name=f"{name}.bn2")
    shortcut = _shortcut(x, planes, stride=stride, downsample=downsample, name=name)
    out = layers.Add(name=f"{name}.add")([out, shortcut])
    return relu(out, name=f"{name}.relu2")


def _bottleneck_block(
    x: keras.KerasTensor,
    planes: int,
    *,
    stride: int,
    downsample: bool,
    name: str,
    groups: int,
    width_per_group: int,
) -> keras.KerasTensor:
    """torchvision ``Bottleneck`` (v1.5: the stride sits on the 3x3 conv); grouped for ResNeXt."""
    width = int(planes * (width_per_group / 64.0)) * groups
    out = conv2d(x, width, 1, name=f"{name}.conv1")
    out = relu(batch_norm(out, name=f"{name}.bn1"), name=f"{name}.relu1")
    out = conv2d(out, width, 3, strides=stride, padding=1, groups=groups, name=f"{name}.conv2")
    out = relu(batch_norm(out, name=f"{name}.bn2"), name=f"{name}.relu2")
    out = conv2d(out, planes * 4, 1, name=f"{name}.conv3")
    out = batch_norm(out, name=f"{name}.bn3")
    shortcut = _shortcut(x, planes * 4, stride=stride, downsample=downsample, name=name)
    out = layers.Add(name=f"{name}.add")([out, shortcut])
    return relu(out, name=f"{name}.relu3")


def _shortcut(
    x: keras.KerasTensor, channels: int, *, stride: int, downsample: bool, name: str
) -> keras.KerasTensor:
    if not downsample:
        return x
    x = conv2d(x, channels, 1, strides=stride, name=f"{name}.downsample.0")
    return batch_norm(x, name=f"{name}.downsample.1")


_BLOCKS = {"basic": (_basic_block, 1), "bottleneck": (_bottleneck_block, 4)}


def build_resnet_features(
    inputs: keras.KerasTensor,
    *,
    block: str,
    layers_per_stage: tuple[int, int, int, int],
    groups: int = 1,
    width_per_group: int = 64,
) -> list[keras.KerasTensor]:
    """Feature maps at strides 2..32, as smp's ``ResNetEncoder.forward`` returns them; smp's
    ``get_stages()`` is ``{16: layer3, 32: layer4}``."""
    block_fn, expansion = _BLOCKS[block]
    x = conv2d(inputs, 64, 7, strides=2, padding=3, name="conv1")
    x = relu(batch_norm(x, name="bn1"), name="relu")
    features = [x]
    x = max_pool_after_relu(x, 3, strides=2, padding=1, name="maxpool")
    in_channels = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers_per_stage), 2):
        nominal_stride = 1 if stage == 2 else 2
        with encoder_stage(2**stage):
            for index in range(blocks):
                stride = nominal_stride if index == 0 else 1
                downsample = index == 0 and (stride != 1 or in_channels != planes * expansion)
                x = block_fn(
                    x,
                    planes,
                    stride=stride,
                    downsample=downsample,
                    name=f"layer{stage - 1}.{index}",
                    groups=groups,
                    width_per_group=width_per_group,
                )
                in_channels = planes * expansion
        features.append(x)
    return features


def _register(name: str, block: str, layers_per_stage: tuple[int, ...], **params: int) -> None:
    final = 512 * _BLOCKS[block][1]
    out_channels = (3, 64, 64 if block == "basic" else 256, final // 4, final // 2, final)
    register_encoder(
        EncoderSpec(
            name=name,
            family="resnet",
            build=build_resnet_features,
            params={"block": block, "layers_per_stage": tuple(layers_per_stage), **params},
            out_channels=out_channels,
            classifier_head=average_linear_head("fc"),
            head_prefixes=("fc",),
            head_output="fc",
            input_rule="stride-2 steps round up",
        )
    )


_register("resnet18", "basic", (2, 2, 2, 2))
_register("resnet34", "basic", (3, 4, 6, 3))
_register("resnet50", "bottleneck", (3, 4, 6, 3))
_register("resnet101", "bottleneck", (3, 4, 23, 3))
_register("resnet152", "bottleneck", (3, 8, 36, 3))
_register("resnext50_32x4d", "bottleneck", (3, 4, 6, 3), groups=32, width_per_group=4)
_register("resnext101_32x8d", "bottleneck", (3, 4, 23, 3), groups=32, width_per_group=8)
