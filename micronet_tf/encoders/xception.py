"""Xception encoder (pretrainedmodels' Xception, vendored by smp, as ``XceptionEncoder`` taps it).

smp pads the two stem convolutions by 1 (the original, and NASA's classifier, pad 0); the rest
is the original. Each block's separable convolutions are ``conv1`` (depthwise) + ``pointwise``;
its strided max pool sees BatchNorm outputs, which can be negative, so it pads with the lowest
value (PyTorch's -inf), not zeros. Taps: relu2, block1, block2, block11 (block outputs are
``rep(x) + skip`` with no ReLU; the next block's leading ReLU is not in place) and bn4 (no
ReLU). smp cannot dilate Xception (its downsampling includes pooling).
"""

from __future__ import annotations

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, register_encoder
from micronet_tf.layers import batch_norm, conv2d, depthwise_conv2d, max_pool, relu

# (name, in, out, reps, stride, start_with_relu, grow_first): pretrainedmodels' Xception.
_BLOCKS = (
    ("block1", 64, 128, 2, 2, False, True),
    ("block2", 128, 256, 2, 2, True, True),
    ("block3", 256, 728, 2, 2, True, True),
    *((f"block{index}", 728, 728, 3, 1, True, True) for index in range(4, 12)),
    ("block12", 728, 1024, 2, 2, True, False),
)
_TAPPED_BLOCKS = ("block1", "block2", "block11")  # smp's stride-4, -8 and -16 outputs
_CLASSIFIER_INPUT = 2048


def _separable_conv(x: keras.KerasTensor, filters: int, *, name: str) -> keras.KerasTensor:
    """``SeparableConv2d(C, filters, 3, padding=1)``: depthwise ``conv1`` then 1x1
    ``pointwise``, both without bias (two layers, as in the checkpoint)."""
    x = depthwise_conv2d(x, 3, padding=1, name=f"{name}.conv1")
    return conv2d(x, filters, 1, name=f"{name}.pointwise")


def _block(
    x: keras.KerasTensor,
    in_filters: int,
    out_filters: int,
    reps: int,
    *,
    stride: int,
    start_with_relu: bool,
    grow_first: bool,
    name: str,
) -> keras.KerasTensor:
    """``Block``: ``rep`` = [ReLU, SeparableConv2d, BN] x reps (``rep.{i}`` named by their
    Sequential index) [+ MaxPool2d(3, stride, 1)], plus the identity or a 1x1 conv + BN skip;
    no ReLU after the sum."""
    widths = [(in_filters, out_filters)] + [(out_filters, out_filters)] * (reps - 1)
    if not grow_first:
        widths = [(in_filters, in_filters)] * (reps - 1) + [(in_filters, out_filters)]
    out, index = x, 0
    for unit, (_, filters) in enumerate(widths):
        if unit > 0 or start_with_relu:  # rep[0] is ReLU(inplace=False): x stays pre-ReLU
            out = relu(out, name=f"{name}.rep.{index}")
            index += 1
        out = _separable_conv(out, filters, name=f"{name}.rep.{index}")
        out = batch_norm(out, name=f"{name}.rep.{index + 1}")
        index += 2
    if stride != 1:  # signed input (BatchNorm output): pad with the lowest value, as -inf
        out = max_pool(
            out, 3, strides=stride, padding=1, nonnegative=False, name=f"{name}.rep.{index}"
        )
    skip = x
    if in_filters != out_filters or stride != 1:
        skip = conv2d(x, out_filters, 1, strides=stride, name=f"{name}.skip")
        skip = batch_norm(skip, name=f"{name}.skipbn")
    return layers.Add(name=f"{name}.add")([out, skip])


def build_xception_features(
    inputs: keras.KerasTensor, *, smp_padding: bool
) -> list[keras.KerasTensor]:
    """Feature maps at strides 2..32, as smp's ``XceptionEncoder.forward`` returns them.

    ``smp_padding``: smp's stem (conv1 / conv2 padding 1, so stride-2 steps give ceil(H / 2));
    ``False`` is the original trunk of pretrainedmodels' classifier (padding 0).
    """
    stem_padding = 1 if smp_padding else 0
    x = conv2d(inputs, 32, 3, strides=2, padding=stem_padding, name="conv1")
    x = relu(batch_norm(x, name="bn1"), name="relu1")
    x = conv2d(x, 64, 3, padding=stem_padding, name="conv2")
    x = relu(batch_norm(x, name="bn2"), name="relu2")
    features = [x]
    for name, in_filters, out_filters, reps, stride, start_with_relu, grow_first in _BLOCKS:
        x = _block(
            x,
            in_filters,
            out_filters,
            reps,
            stride=stride,
            start_with_relu=start_with_relu,
            grow_first=grow_first,
            name=name,
        )
        if name in _TAPPED_BLOCKS:
            features.append(x)
    x = _separable_conv(x, 1536, name="conv3")
    x = relu(batch_norm(x, name="bn3"), name="relu3")
    x = _separable_conv(x, _CLASSIFIER_INPUT, name="conv4")
    features.append(batch_norm(x, name="bn4"))  # no ReLU: the classifier's head applies it
    return features


def xception_head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    """pretrainedmodels ``Xception.logits``: ReLU, adaptive average to 1x1 (any input size),
    ``last_linear`` = Linear(2048, classes)."""
    x = relu(x, name="logits.relu")
    x = layers.GlobalAveragePooling2D(name="logits.avgpool")(x)
    return layers.Dense(classes, name="last_linear")(x)


register_encoder(
    EncoderSpec(
        name="xception",
        family="xception",
        build=build_xception_features,
        params={"smp_padding": True},
        # NASA's classifier: pretrainedmodels' Xception, original unpadded stem, 224x224.
        classifier_params={"smp_padding": False},
        out_channels=(3, 64, 128, 256, 728, 2048),
        classifier_head=xception_head,
        head_prefixes=("last_linear",),
        head_output="last_linear",
        # smp's Xception calls the head `fc` (its encoder pops `fc.*`); pretrainedmodels'
        # factory renames it `last_linear`. NASA's files may carry either: both are accepted.
        key_renames=((r"^fc\.", "last_linear."),),
        dilatable=False,
        input_rule="stride-2 steps round up",
    )
)
