"""DenseNet encoders (torchvision's DenseNet as smp's ``DenseNetEncoder`` taps it).

smp splits each transition across two stages: a stage's output is ``relu(transitionT.norm(...))``
and ``transitionT.conv`` + its 2x2 average pool open the next stage; the last output is
``norm5`` without ReLU. smp cannot dilate DenseNet (its downsampling is pooling).
"""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, register_encoder
from micronet_tf.layers import avg_pool, batch_norm, conv2d, max_pool_after_relu, relu

_BN_SIZE = 4  # torchvision's bottleneck width factor (bn_size)
# smp's DenseNetEncoder.load_state_dict: old torchvision checkpoints name "norm.1", not "norm1".
_LEGACY_KEYS = (
    (
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
        r"running_var))$",
        r"\1\2",
    ),
)


def _dense_layer(x: keras.KerasTensor, growth_rate: int, *, name: str) -> keras.KerasTensor:
    """torchvision ``_DenseLayer``: BN-ReLU-1x1 (bn_size * k) then BN-ReLU-3x3 (k new maps)."""
    out = relu(batch_norm(x, name=f"{name}.norm1"), name=f"{name}.relu1")
    out = conv2d(out, _BN_SIZE * growth_rate, 1, name=f"{name}.conv1")
    out = relu(batch_norm(out, name=f"{name}.norm2"), name=f"{name}.relu2")
    return conv2d(out, growth_rate, 3, padding=1, name=f"{name}.conv2")


def _dense_block(
    x: keras.KerasTensor, layers_in_block: int, growth_rate: int, *, name: str
) -> keras.KerasTensor:
    """``_DenseBlock``: each layer sees the concatenation of the block input and all earlier
    layers' maps, in that order; the block returns that concatenation with the last one."""
    for index in range(1, layers_in_block + 1):
        path = f"{name}.denselayer{index}"
        new = _dense_layer(x, growth_rate, name=path)
        x = layers.Concatenate(name=f"{path}.concat")([x, new])
    return x


def build_densenet_features(
    inputs: keras.KerasTensor,
    *,
    num_init_features: int,
    growth_rate: int,
    block_config: tuple[int, int, int, int],
) -> list[keras.KerasTensor]:
    """Feature maps at strides 2..32, as smp's ``DenseNetEncoder.forward`` returns them."""
    x = conv2d(inputs, num_init_features, 7, strides=2, padding=3, name="features.conv0")
    x = relu(batch_norm(x, name="features.norm0"), name="features.relu0")
    features = [x]
    x = max_pool_after_relu(x, 3, strides=2, padding=1, name="features.pool0")
    for block, layers_in_block in enumerate(block_config, 1):
        x = _dense_block(x, layers_in_block, growth_rate, name=f"features.denseblock{block}")
        if block == len(block_config):
            features.append(batch_norm(x, name="features.norm5"))
            break
        transition = f"features.transition{block}"
        x = relu(batch_norm(x, name=f"{transition}.norm"), name=f"{transition}.relu")
        features.append(x)
        x = conv2d(x, x.shape[-1] // 2, 1, name=f"{transition}.conv")
        x = avg_pool(x, 2, strides=2, name=f"{transition}.pool")
    return features


def densenet_head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    """torchvision ``DenseNet.forward`` after ``features``: ReLU (the encoder's last output has
    none), global average, ``classifier``."""
    x = relu(x, name="features.relu5")
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    return layers.Dense(classes, name="classifier")(x)


def _register(
    name: str, num_init_features: int, growth_rate: int, block_config: tuple[int, int, int, int]
) -> None:
    channels = [num_init_features]
    for block, layers_in_block in enumerate(block_config, 1):
        channels.append(channels[-1] + layers_in_block * growth_rate)
        if block < len(block_config):
            channels[-1] //= 2
    # Stride-4..16 outputs are taken before the transition halves the channels.
    out_channels = (3, num_init_features, *(c * 2 for c in channels[1:4]), channels[4])
    register_encoder(
        EncoderSpec(
            name=name,
            family="densenet",
            build=build_densenet_features,
            params={
                "num_init_features": num_init_features,
                "growth_rate": growth_rate,
                "block_config": block_config,
            },
            out_channels=out_channels,
            classifier_head=densenet_head,
            head_prefixes=("classifier",),
            head_output="classifier",
            key_renames=_LEGACY_KEYS,
            dilatable=False,
            input_rule="its 2x2 average pools round odd sizes down",
        )
    )


_register("densenet121", 64, 32, (6, 12, 24, 16))
_register("densenet169", 64, 32, (6, 12, 32, 32))
_register("densenet201", 64, 32, (6, 12, 48, 32))
_register("densenet161", 96, 48, (6, 12, 36, 24))
