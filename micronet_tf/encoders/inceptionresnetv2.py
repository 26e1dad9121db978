"""Inception-ResNet-v2 encoder (pretrainedmodels' InceptionResNetV2, as smp's
``InceptionResNetV2Encoder`` taps it).

Residual blocks compute ``ReLU(conv2d(cat(branches)) * scale + x)`` with a 1x1 ``conv2d`` that
has a bias and no BatchNorm; ``block8`` has no ReLU, but the last output ``conv2d_7b`` is a
BasicConv2d and so ends in one. smp's padding edits (every 3x3 conv and max pool padded by 1)
and their ``smp_padding=False`` switch for the classifier are as in
:mod:`micronet_tf.encoders.inceptionv4`; smp cannot dilate it.
"""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, register_encoder
from micronet_tf.encoders.inceptionv4 import InceptionOps, branch_avg_pool, concat
from micronet_tf.layers import conv2d, relu


def _residual(
    x: keras.KerasTensor,
    branches: list[keras.KerasTensor],
    *,
    scale: float,
    name: str,
    activate: bool = True,
) -> keras.KerasTensor:
    """``out = conv2d(cat(branches)) * scale + x``, then ReLU unless ``activate`` is off."""
    out = conv2d(concat(branches, name=name), x.shape[-1], 1, use_bias=True, name=f"{name}.conv2d")
    out = layers.Rescaling(scale, name=f"{name}.scale")(out)
    out = layers.Add(name=f"{name}.add")([out, x])
    return relu(out, name=f"{name}.relu") if activate else out


def _block35(
    ops: InceptionOps, x: keras.KerasTensor, *, scale: float, name: str
) -> keras.KerasTensor:
    return _residual(
        x,
        [
            ops.conv(x, 32, 1, name=f"{name}.branch0"),
            ops.chain(x, [(32, 1, 1, 0), (32, 3, 1, 1)], name=f"{name}.branch1"),
            ops.chain(x, [(32, 1, 1, 0), (48, 3, 1, 1), (64, 3, 1, 1)], name=f"{name}.branch2"),
        ],
        scale=scale,
        name=name,
    )


def _block17(
    ops: InceptionOps, x: keras.KerasTensor, *, scale: float, name: str
) -> keras.KerasTensor:
    return _residual(
        x,
        [
            ops.conv(x, 192, 1, name=f"{name}.branch0"),
            ops.chain(
                x,
                [(128, 1, 1, 0), (160, (1, 7), 1, (0, 3)), (192, (7, 1), 1, (3, 0))],
                name=f"{name}.branch1",
            ),
        ],
        scale=scale,
        name=name,
    )


def _block8(
    ops: InceptionOps, x: keras.KerasTensor, *, scale: float, name: str, activate: bool = True
) -> keras.KerasTensor:
    return _residual(
        x,
        [
            ops.conv(x, 192, 1, name=f"{name}.branch0"),
            ops.chain(
                x,
                [(192, 1, 1, 0), (224, (1, 3), 1, (0, 1)), (256, (3, 1), 1, (1, 0))],
                name=f"{name}.branch1",
            ),
        ],
        scale=scale,
        activate=activate,
        name=name,
    )


# The residual stacks (nn.Sequential module path -> block, count, scale); after repeat_2
# comes block8 = Block8(scale 1.0, noReLU=True).
_STACKS = {
    "repeat": (_block35, 10, 0.17),
    "repeat_1": (_block17, 20, 0.10),
    "repeat_2": (_block8, 9, 0.20),
}


def _stack(ops: InceptionOps, x: keras.KerasTensor, path: str) -> keras.KerasTensor:
    block, count, scale = _STACKS[path]
    for index in range(count):
        x = block(ops, x, scale=scale, name=f"{path}.{index}")
    return x


def _mixed_5b(ops: InceptionOps, x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    pooled = branch_avg_pool(x, name=f"{name}.branch3.0")
    return concat(
        [
            ops.conv(x, 96, 1, name=f"{name}.branch0"),
            ops.chain(x, [(48, 1, 1, 0), (64, 5, 1, 2)], name=f"{name}.branch1"),
            ops.chain(x, [(64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)], name=f"{name}.branch2"),
            ops.chain(pooled, [(64, 1, 1, 0)], name=f"{name}.branch3", first_index=1),
        ],
        name=name,
    )


def _mixed_6a(ops: InceptionOps, x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    return concat(
        [
            ops.conv(x, 384, 3, strides=2, name=f"{name}.branch0"),
            ops.chain(x, [(256, 1, 1, 0), (256, 3, 1, 1), (384, 3, 2, 0)], name=f"{name}.branch1"),
            ops.max_pool(x, name=f"{name}.branch2"),
        ],
        name=name,
    )


def _mixed_7a(ops: InceptionOps, x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    return concat(
        [
            ops.chain(x, [(256, 1, 1, 0), (384, 3, 2, 0)], name=f"{name}.branch0"),
            ops.chain(x, [(256, 1, 1, 0), (288, 3, 2, 0)], name=f"{name}.branch1"),
            ops.chain(x, [(256, 1, 1, 0), (288, 3, 1, 1), (320, 3, 2, 0)], name=f"{name}.branch2"),
            ops.max_pool(x, name=f"{name}.branch3"),
        ],
        name=name,
    )


def build_inceptionresnetv2_features(
    inputs: keras.KerasTensor, *, smp_padding: bool
) -> list[keras.KerasTensor]:
    """Feature maps at strides 2..32, as smp's ``InceptionResNetV2Encoder.forward`` returns
    them (``smp_padding=False``: the original network's trunk)."""
    ops = InceptionOps(smp_padding)
    x = ops.conv(inputs, 32, 3, strides=2, name="conv2d_1a")
    x = ops.conv(x, 32, 3, name="conv2d_2a")
    stride2 = ops.conv(x, 64, 3, padding=1, name="conv2d_2b")
    x = ops.max_pool(stride2, name="maxpool_3a")
    x = ops.conv(x, 80, 1, name="conv2d_3b")
    stride4 = ops.conv(x, 192, 3, name="conv2d_4a")
    x = ops.max_pool(stride4, name="maxpool_5a")
    stride8 = _stack(ops, _mixed_5b(ops, x, name="mixed_5b"), "repeat")
    stride16 = _stack(ops, _mixed_6a(ops, stride8, name="mixed_6a"), "repeat_1")
    x = _stack(ops, _mixed_7a(ops, stride16, name="mixed_7a"), "repeat_2")
    x = _block8(ops, x, scale=1.0, activate=False, name="block8")  # Block8(noReLU=True)
    stride32 = ops.conv(x, 1536, 1, name="conv2d_7b")  # a BasicConv2d: ends in a ReLU
    return [stride2, stride4, stride8, stride16, stride32]


def inceptionresnetv2_head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    """``InceptionResNetV2.logits``: ``avgpool_1a`` -> flatten -> ``last_linear`` (no dropout,
    in pretrainedmodels as in smp's vendored copy).

    The original ``AvgPool2d(8, count_include_pad=False)`` is the global average only on the
    8x8 final map (inputs 299..330, NASA's 299x299 among them); it fails below 8x8 and averages
    just the top-left 8x8 window (9..15) or breaks ``last_linear`` (16 and up) on larger maps.
    Here it is the global average at every size (``AdaptiveAvgPool2d(1)``); the classifier's
    trunk (original paddings) needs inputs of at least 75x75.
    """
    x = layers.GlobalAveragePooling2D(name="avgpool_1a")(x)
    return layers.Dense(classes, name="last_linear")(x)


register_encoder(
    EncoderSpec(
        name="inceptionresnetv2",
        family="inceptionresnetv2",
        build=build_inceptionresnetv2_features,
        params={"smp_padding": True},
        classifier_params={"smp_padding": False},
        out_channels=(3, 64, 192, 320, 1088, 1536),
        classifier_head=inceptionresnetv2_head,
        head_prefixes=("last_linear",),
        head_output="last_linear",
        dilatable=False,
        input_rule="stride-2 steps round up",
    )
)
