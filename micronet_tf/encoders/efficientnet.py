"""EfficientNet encoders b0-b7 (efficientnet-pytorch's EfficientNet as smp's
``EfficientNetEncoder`` taps it): stem, 16-55 MBConv blocks, taps after blocks ``out_indexes``.

Every convolution is TensorFlow-"same"-like with a *static* padding computed once from a
nominal image size, never from the actual input. Two conventions, build option ``padding``:

- ``"micronet"`` (default): efficientnet-pytorch 0.6.3 under smp 0.2.1, which NASA trained and
  evaluated MicroNet with: every conv pads for the model's nominal size (224 for b0 ... 600 for
  b7), so a stride-2 k3 conv always pads (0, 1), a k5 one (1, 2) (top/left, bottom/right).
- ``"smp"``: smp >= 0.3 (0.6.0's vendored efficientnet-pytorch 0.7 code) propagates the size
  block by block, so a strided depthwise conv whose nominal input is odd pads symmetrically
  (b1-b7, see :func:`differing_blocks`); the weights are the same.

On odd actual sizes a (0, 1) padded stride-2 step floors (9 -> 4) where a symmetric one rounds
up (9 -> 5). In dilated stages both conventions drop the static padding for ``(k // 2) * d``
(smp's ``replace_strides_with_dilation``), which ``_blocks.encoder_stage`` applies.

Depth: smp 0.6.0 refuses depth 1 (smp 0.2.1 accepted it), and so do we (``min_depth=2``): the
project follows smp 0.6.0's API, and a depth-1 EfficientNet encoder is the stem alone, which no
EfficientNet weights were trained as (NASA's models use depth 5).

Drop connect (stochastic depth) is active in training only, as in both originals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers

from micronet_tf.encoders._registry import EncoderSpec, HeadBuilder, register_encoder
from micronet_tf.layers import batch_norm, conv2d, depthwise_conv2d, encoder_stage

PADDINGS = ("micronet", "smp")  # the "padding" build option; the first is the default
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.01  # PyTorch's (efficientnet-pytorch: 1 - TensorFlow's 0.99)
DROP_CONNECT_RATE = 0.2  # of the last block; block i drops with rate 0.2 * i / len(blocks)
SE_RATIO = 0.25
# b0's groups: (kernel, first stride, expand ratio, output channels, repeats); input 32.
_BASE_GROUPS = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
# name: (width, depth coefficient, nominal image size, head dropout, smp's out_indexes).
VARIANTS = {
    "efficientnet-b0": (1.0, 1.0, 224, 0.2, (2, 4, 8, 15)),  # s16 tap: 1st 112-ch block
    "efficientnet-b1": (1.0, 1.1, 240, 0.2, (4, 7, 15, 22)),
    "efficientnet-b2": (1.1, 1.2, 260, 0.3, (4, 7, 15, 22)),
    "efficientnet-b3": (1.2, 1.4, 300, 0.3, (4, 7, 17, 25)),
    "efficientnet-b4": (1.4, 1.8, 380, 0.4, (5, 9, 21, 31)),
    "efficientnet-b5": (1.6, 2.2, 456, 0.4, (7, 12, 26, 38)),
    "efficientnet-b6": (1.8, 2.6, 528, 0.5, (8, 14, 30, 44)),
    "efficientnet-b7": (2.0, 3.1, 600, 0.5, (10, 17, 37, 54)),
}

Pads = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class BlockArgs:
    """One MBConv block: depthwise kernel and stride, expand ratio, input / output channels."""

    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int

    @property
    def has_skip(self) -> bool:
        """Identity skip (and drop connect) iff stride 1 and the channels are kept."""
        return self.stride == 1 and self.in_channels == self.out_channels


def round_filters(filters: int, width: float) -> int:
    """efficientnet-pytorch's ``round_filters`` (divisor 8, never more than 10% down)."""
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def block_args(name: str) -> list[BlockArgs]:
    """The blocks of ``name`` in order (repeats ``ceil(depth * r)``, repeats keep in = out)."""
    width, depth, *_ = VARIANTS[name]
    blocks, in_channels = [], round_filters(_STEM_CHANNELS, width)
    for kernel, stride, expand, out, repeats in _BASE_GROUPS:
        out = round_filters(out, width)
        for repeat in range(math.ceil(depth * repeats)):
            blocks.append(BlockArgs(kernel, stride if repeat == 0 else 1, expand, in_channels, out))
            in_channels = out
    return blocks


def same_padding(image_size: int, kernel: int, stride: int) -> Pads:
    """``Conv2dStaticSamePadding``'s fixed zero padding for a square nominal image side:
    ``max((ceil(i / s) - 1) * s + k - i, 0)``, the odd pixel at the bottom / right."""
    total = max((math.ceil(image_size / stride) - 1) * stride + kernel - image_size, 0)
    pair = (total // 2, total - total // 2)
    return (pair, pair)


def depthwise_image_sizes(name: str, padding: str) -> list[int]:
    """The nominal image side each block's depthwise conv computes its padding from:
    0.6.3 ("micronet") the model's size throughout, smp's propagated block by block."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    blocks, image_size = block_args(name), VARIANTS[name][2]
    if padding == "micronet":
        return [image_size] * len(blocks)
    sizes, side = [], math.ceil(image_size / 2)  # after the stride-2 stem
    for block in blocks:
        sizes.append(side)
        side = math.ceil(side / block.stride)
    return sizes


def depthwise_paddings(name: str, padding: str) -> list[Pads]:
    """Each block's depthwise padding ``((top, bottom), (left, right))`` (undilated)."""
    return [
        same_padding(size, block.kernel, block.stride)
        for size, block in zip(depthwise_image_sizes(name, padding), block_args(name))
    ]


def differing_blocks(name: str) -> dict[int, tuple[Pads, Pads]]:
    """Blocks whose depthwise padding differs between the conventions: index ->
    (micronet's, smp's). The stem and every other conv pad alike in both."""
    pairs = zip(depthwise_paddings(name, "micronet"), depthwise_paddings(name, "smp"))
    return {index: pair for index, pair in enumerate(pairs) if pair[0] != pair[1]}


def drop_connect_rates(name: str) -> dict[int, float]:
    """Block index -> drop-connect rate ``0.2 * i / len(blocks)``, skip blocks with rate > 0."""
    blocks = block_args(name)
    rates = {i: DROP_CONNECT_RATE * i / len(blocks) for i, b in enumerate(blocks) if b.has_skip}
    return {i: rate for i, rate in rates.items() if rate > 0}


@keras.saving.register_keras_serializable(package="micronet_tf")
class DropConnect(layers.Layer):
    """efficientnet-pytorch's ``drop_connect``, training only: each sample's residual branch
    is kept with probability ``1 - rate`` (mask ``floor(1 - rate + U[0, 1))``) and scaled by
    ``1 / (1 - rate)``; the identity at inference."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (keras.ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, dtype=inputs.dtype, seed=self.seed_generator)
        return inputs / keep * keras.ops.floor(keep + noise)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _bn_swish(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    """BatchNorm (eps 1e-3, momentum 0.01) and swish ``x * sigmoid(x)`` (Keras "silu")."""
    x = batch_norm(x, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)
    return layers.Activation("silu", name=f"{name}.swish")(x)


def _squeeze_excite(x: keras.KerasTensor, squeezed: int, *, name: str) -> keras.KerasTensor:
    """Spatial mean -> ``_se_reduce`` (1x1 conv, bias) -> swish -> ``_se_expand`` -> sigmoid,
    times ``x``."""
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.se_mean")(x)
    s = conv2d(s, squeezed, 1, use_bias=True, name=f"{name}._se_reduce")
    s = layers.Activation("silu", name=f"{name}._se_reduce.swish")(s)
    s = conv2d(s, x.shape[-1], 1, use_bias=True, name=f"{name}._se_expand")
    s = layers.Activation("sigmoid", name=f"{name}._se_expand.sigmoid")(s)
    return layers.Multiply(name=f"{name}.se_scale")([s, x])


def _mbconv(
    x: keras.KerasTensor, block: BlockArgs, *, padding: Pads, drop_rate: float, name: str
) -> keras.KerasTensor:
    """``MBConvBlock``: [1x1 expand, BN, swish], depthwise k x k (static padding), BN, swish,
    squeeze-excite on ``int(in * 0.25)`` channels of the block *input*, 1x1 project, BN,
    [drop connect + identity]."""
    inputs, expanded = x, block.in_channels * block.expand
    if block.expand != 1:
        x = conv2d(x, expanded, 1, name=f"{name}._expand_conv")
        x = _bn_swish(x, name=f"{name}._bn0")
    x = depthwise_conv2d(
        x, block.kernel, strides=block.stride, padding=padding, name=f"{name}._depthwise_conv"
    )
    x = _bn_swish(x, name=f"{name}._bn1")
    x = _squeeze_excite(x, max(1, int(block.in_channels * SE_RATIO)), name=name)
    x = conv2d(x, block.out_channels, 1, name=f"{name}._project_conv")
    x = batch_norm(x, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}._bn2")
    if not block.has_skip:
        return x
    if drop_rate:
        x = DropConnect(drop_rate, name=f"{name}.drop_connect")(x)
    return layers.Add(name=f"{name}.add")([x, inputs])


def _stage_of(index: int, out_indexes: tuple[int, ...]) -> int:
    """The output stride of the stage block ``index`` belongs to (smp's get_stages() lists
    ``_blocks[o1 + 1 : o2 + 1]`` as 16 and ``_blocks[o2 + 1 :]`` as 32)."""
    for stride, end in zip((4, 8, 16), out_indexes):
        if index <= end:
            return stride
    return 32


def build_efficientnet_features(
    inputs: keras.KerasTensor, *, variant: str, padding: str = PADDINGS[0]
) -> list[keras.KerasTensor]:
    """Feature maps at strides 2..32, as smp's ``EfficientNetEncoder.forward`` returns them
    (0.6.3's static paddings for ``padding="micronet"``, smp 0.6.0's for ``"smp"``)."""
    width, _, image_size, _, out_indexes = VARIANTS[variant]
    x = conv2d(
        inputs,
        round_filters(_STEM_CHANNELS, width),
        3,
        strides=2,
        padding=same_padding(image_size, 3, 2),
        name="_conv_stem",
    )
    x = _bn_swish(x, name="_bn0")
    features, rates = [x], drop_connect_rates(variant)
    blocks, paddings = block_args(variant), depthwise_paddings(variant, padding)
    for index, (block, pads) in enumerate(zip(blocks, paddings)):
        with encoder_stage(_stage_of(index, out_indexes)):
            x = _mbconv(
                x, block, padding=pads, drop_rate=rates.get(index, 0.0), name=f"_blocks.{index}"
            )
        if index in out_indexes:
            features.append(x)
    return features


def efficientnet_head(name: str) -> HeadBuilder:
    """efficientnet-pytorch's head: ``_conv_head`` 1x1, ``_bn1``, swish, global average,
    dropout (the variant's rate), ``_fc``."""
    width, _, _, dropout, _ = VARIANTS[name]

    def head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
        x = conv2d(x, round_filters(_HEAD_CHANNELS, width), 1, name="_conv_head")
        x = _bn_swish(x, name="_bn1")
        x = layers.GlobalAveragePooling2D(name="_avg_pooling")(x)
        x = layers.Dropout(dropout, name="_dropout")(x)
        return layers.Dense(classes, name="_fc")(x)

    return head


def _out_channels(name: str) -> tuple[int, ...]:
    blocks, width, out_indexes = block_args(name), VARIANTS[name][0], VARIANTS[name][4]
    return (3, round_filters(_STEM_CHANNELS, width), *(blocks[i].out_channels for i in out_indexes))


for _name in VARIANTS:
    register_encoder(
        EncoderSpec(
            name=_name,
            family="efficientnet",
            build=build_efficientnet_features,
            params={"variant": _name},
            out_channels=_out_channels(_name),
            classifier_head=efficientnet_head(_name),
            # _conv_head / _bn1 stay in smp's encoder state dict, unused by its forward.
            head_prefixes=("_conv_head", "_bn1", "_fc"),
            head_output="_fc",
            min_depth=2,
            options={"padding": PADDINGS},
            input_rule="with padding 'micronet' stride-2 steps round odd sizes down (9 -> "
            "4), with 'smp' some round up",
        )
    )
