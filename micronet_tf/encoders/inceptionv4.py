"""Inception-v4 encoder (pretrainedmodels' InceptionV4, as smp's ``InceptionV4Encoder`` taps it).

smp edits the network when it builds the encoder: every 3x3 convolution and every max pool
gets padding 1, so each stride-2 step gives ceil(H / 2) and no stride-1 3x3 shrinks the map.
NASA pre-trained the classification network with the original paddings (unpadded 3x3s and
pools, 299x299); ``smp_padding=False`` builds that trunk for ``get_classifier``. smp cannot
dilate Inception encoders. :class:`InceptionOps` is shared with Inception-ResNet-v2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, register_encoder
from micronet_tf.layers import (
    IntPair,
    Padding,
    avg_pool,
    batch_norm,
    conv2d,
    max_pool_after_relu,
    relu,
)

# pretrainedmodels' BasicConv2d: BatchNorm2d(eps=0.001 "value found in tensorflow", momentum 0.1).
BN_EPSILON = 1e-3
# (filters, kernel, stride, padding) of one BasicConv2d in an nn.Sequential branch.
ConvStep = tuple[int, IntPair, int, Padding]


@dataclass(frozen=True)
class InceptionOps:
    """BasicConv2d and the reduction max pools, with (``smp_padding``) or without smp's edits:
    its encoder ``__init__`` sets padding 1 on every (3, 3) ``nn.Conv2d`` and every
    ``nn.MaxPool2d``; other kernels keep theirs."""

    smp_padding: bool

    def conv(
        self,
        x: keras.KerasTensor,
        filters: int,
        kernel: IntPair,
        *,
        name: str,
        strides: int = 1,
        padding: Padding = 0,
    ) -> keras.KerasTensor:
        """``BasicConv2d``: conv (no bias) ``.conv`` -> BatchNorm (eps 1e-3) ``.bn`` -> ReLU."""
        if self.smp_padding and kernel in (3, (3, 3)):
            padding = 1
        x = conv2d(x, filters, kernel, strides=strides, padding=padding, name=f"{name}.conv")
        x = batch_norm(x, epsilon=BN_EPSILON, name=f"{name}.bn")
        return relu(x, name=f"{name}.relu")

    def chain(
        self, x: keras.KerasTensor, steps: Sequence[ConvStep], *, name: str, first_index: int = 0
    ) -> keras.KerasTensor:
        """An ``nn.Sequential`` of BasicConv2d, the i-th named ``{name}.{first_index + i}``."""
        for index, (filters, kernel, stride, padding) in enumerate(steps, first_index):
            x = self.conv(
                x, filters, kernel, strides=stride, padding=padding, name=f"{name}.{index}"
            )
        return x

    def max_pool(self, x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
        """``nn.MaxPool2d(3, stride=2)`` (padding 1 in smp's encoders); every one of them pools
        a ReLU output (or a concatenation of ReLU outputs), so zero padding is exact."""
        padding = 1 if self.smp_padding else 0
        return max_pool_after_relu(x, 3, strides=2, padding=padding, name=name)


def branch_avg_pool(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    """``nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)`` (untouched by smp)."""
    return avg_pool(x, 3, strides=1, padding=1, count_include_pad=False, name=name)


def concat(branches: Sequence[keras.KerasTensor], *, name: str) -> keras.KerasTensor:
    """``torch.cat(branches, 1)``."""
    return layers.Concatenate(name=f"{name}.concat")(list(branches))


# --- the blocks of InceptionV4.features, each (ops, x, name) -> x -----------------------------

Block = Callable[[InceptionOps, keras.KerasTensor, str], keras.KerasTensor]


def _basic_conv(filters: int, kernel: int, strides: int = 1, padding: int = 0) -> Block:
    """A ``features.i`` that is one BasicConv2d (the stem)."""
    return lambda ops, x, name: ops.conv(
        x, filters, kernel, strides=strides, padding=padding, name=name
    )


def _mixed_3a(ops: InceptionOps, x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """cat(max pool, 3x3/2 conv): pool first."""
    return concat(
        [
            ops.max_pool(x, name=f"{name}.maxpool"),
            ops.conv(x, 96, 3, strides=2, name=f"{name}.conv"),
        ],
        name=name,
    )


def _mixed_4a(ops: InceptionOps, x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return concat(
        [
            ops.chain(x, [(64, 1, 1, 0), (96, 3, 1, 0)], name=f"{name}.branch0"),
            ops.chain(
                x,
                [
                    (64, 1, 1, 0),
                    (64, (1, 7), 1, (0, 3)),
                    (64, (7, 1), 1, (3, 0)),
                    (96, (3, 3), 1, 0),
                ],
                name=f"{name}.branch1",
            ),
        ],
        name=name,
    )


def _mixed_5a(ops: InceptionOps, x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """cat(3x3/2 conv, max pool): conv first."""
    return concat(
        [
            ops.conv(x, 192, 3, strides=2, name=f"{name}.conv"),
            ops.max_pool(x, name=f"{name}.maxpool"),
        ],
        name=name,
    )


def _inception_a(ops: InceptionOps, x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    pooled = branch_avg_pool(x, name=f"{name}.branch3.0")
    return concat(
        [
            ops.conv(x, 96, 1, name=f"{name}.branch0"),
            ops.chain(x, [(64, 1, 1, 0), (96, 3, 1, 1)], name=f"{name}.branch1"),
            ops.chain(x, [(64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)], name=f"{name}.branch2"),
            ops.chain(pooled, [(96, 1, 1, 0)], name=f"{name}.branch3", first_index=1),
        ],
        name=name,
    )


def _reduction_a(ops: InceptionOps, x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return concat(
        [
            ops.conv(x, 384, 3, strides=2, name=f"{name}.branch0"),
            ops.chain(x, [(192, 1, 1, 0), (224, 3, 1, 1), (256, 3, 2, 0)], name=f"{name}.branch1"),
            ops.max_pool(x, name=f"{name}.branch2"),
        ],
        name=name,
    )


def _inception_b(ops: InceptionOps, x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    pooled = branch_avg_pool(x, name=f"{name}.branch3.0")
    return concat(
        [
            ops.conv(x, 384, 1, name=f"{name}.branch0"),
            ops.chain(
                x,
                [(192, 1, 1, 0), (224, (1, 7), 1, (0, 3)), (256, (7, 1), 1, (3, 0))],
                name=f"{name}.branch1",
            ),
            ops.chain(
                x,
                [
                    (192, 1, 1, 0),
                    (192, (7, 1), 1, (3, 0)),
                    (224, (1, 7), 1, (0, 3)),
                    (224, (7, 1), 1, (3, 0)),
                    (256, (1, 7), 1, (0, 3)),
                ],
                name=f"{name}.branch2",
            ),
            ops.chain(pooled, [(128, 1, 1, 0)], name=f"{name}.branch3", first_index=1),
        ],
        name=name,
    )


def _reduction_b(ops: InceptionOps, x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return concat(
        [
            ops.chain(x, [(192, 1, 1, 0), (192, 3, 2, 0)], name=f"{name}.branch0"),
            ops.chain(
                x,
                [
                    (256, 1, 1, 0),
                    (256, (1, 7), 1, (0, 3)),
                    (320, (7, 1), 1, (3, 0)),
                    (320, 3, 2, 0),
                ],
                name=f"{name}.branch1",
            ),
            ops.max_pool(x, name=f"{name}.branch2"),
        ],
        name=name,
    )


def _inception_c(ops: InceptionOps, x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """Branches 1 and 2 end in a (1, 3) and a (3, 1) conv side by side, concatenated."""
    x1 = ops.conv(x, 384, 1, name=f"{name}.branch1_0")
    x2 = ops.conv(x, 384, 1, name=f"{name}.branch2_0")
    x2 = ops.conv(x2, 448, (3, 1), padding=(1, 0), name=f"{name}.branch2_1")
    x2 = ops.conv(x2, 512, (1, 3), padding=(0, 1), name=f"{name}.branch2_2")
    pooled = branch_avg_pool(x, name=f"{name}.branch3.0")
    return concat(
        [
            ops.conv(x, 256, 1, name=f"{name}.branch0"),
            concat(
                [
                    ops.conv(x1, 256, (1, 3), padding=(0, 1), name=f"{name}.branch1_1a"),
                    ops.conv(x1, 256, (3, 1), padding=(1, 0), name=f"{name}.branch1_1b"),
                ],
                name=f"{name}.branch1",
            ),
            concat(
                [
                    ops.conv(x2, 256, (1, 3), padding=(0, 1), name=f"{name}.branch2_3a"),
                    ops.conv(x2, 256, (3, 1), padding=(1, 0), name=f"{name}.branch2_3b"),
                ],
                name=f"{name}.branch2",
            ),
            ops.chain(pooled, [(256, 1, 1, 0)], name=f"{name}.branch3", first_index=1),
        ],
        name=name,
    )


# InceptionV4.features, in order (features.0 ... features.21).
_FEATURES: tuple[Block, ...] = (
    _basic_conv(32, 3, strides=2),
    _basic_conv(32, 3),
    _basic_conv(64, 3, padding=1),
    _mixed_3a,
    _mixed_4a,
    _mixed_5a,
    *(_inception_a,) * 4,
    _reduction_a,
    *(_inception_b,) * 7,
    _reduction_b,
    *(_inception_c,) * 3,
)
# smp's _out_indexes: strides 2..32. Strides 8 and 16 come from inside a stage (the 3rd
# Inception-A, the 4th Inception-B); features.9 and 15-17 run in the next stage.
_TAPS = (2, 4, 8, 14, 21)


def build_inceptionv4_features(
    inputs: keras.KerasTensor, *, smp_padding: bool
) -> list[keras.KerasTensor]:
    """Feature maps at strides 2..32, as smp's ``InceptionV4Encoder.forward`` returns them
    (``smp_padding=False``: the original network's trunk, same taps)."""
    ops, x, features = InceptionOps(smp_padding), inputs, []
    for index, block in enumerate(_FEATURES):
        x = block(ops, x, f"features.{index}")
        if index in _TAPS:
            features.append(x)
    return features


def inceptionv4_head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    """``InceptionV4.logits``: average of the final map -> ``last_linear``.

    pretrainedmodels (what NASA ran) pools with ``avg_pool = AvgPool2d(8,
    count_include_pad=False)``, smp's vendored copy with ``avg_pool2d(kernel=H)``: both are the
    global average on the 8x8 map of a 299..330 input (NASA's 299x299). Here it is the global
    average at every size (``AdaptiveAvgPool2d(1)``): equal to smp's copy on square inputs,
    where pretrainedmodels' pool fails below 8x8 and averages only the top-left 8x8 window of
    larger maps; on non-square maps smp's copy averages the first H columns or fails. The
    classifier's trunk (original paddings) needs inputs of at least 75x75.
    """
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return layers.Dense(classes, name="last_linear")(x)


register_encoder(
    EncoderSpec(
        name="inceptionv4",
        family="inceptionv4",
        build=build_inceptionv4_features,
        params={"smp_padding": True},
        classifier_params={"smp_padding": False},
        out_channels=(3, 64, 192, 384, 1024, 1536),
        classifier_head=inceptionv4_head,
        head_prefixes=("last_linear",),
        head_output="last_linear",
        dilatable=False,
        input_rule="stride-2 steps round up",
    )
)
