"""Primitives that reproduce PyTorch layer semantics in Keras, shared by every encoder family.

Naming rule (the converter depends on it): every Keras layer that holds weights is named after
the PyTorch module path it mirrors (``layer1.0.conv1``); weightless helpers get a name below the
module they belong to (``layer1.0.relu1``, ``conv1.pad``). One path, grep-able in both codebases.

Dilation lives here too, once for all families: a family marks each of smp's dilatable stages
with :func:`encoder_stage`, and inside a dilated stage every convolution does what smp's
``replace_strides_with_dilation`` does to every ``nn.Conv2d`` there (stride 1, dilation d,
padding ``(kh // 2) * d`` on both axes). Pools are left alone, as in smp.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import keras
from keras import layers

from micronet_tf.layers import GroupedConv2D, MaxPoolPadding2D

IntPair = int | tuple[int, int]
# int p: p on every side; (ph, pw): ph top and bottom, pw left and right; ((t, b), (l, r)).
Padding = int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]

# PyTorch BatchNorm2d defaults: eps 1e-5, running-stat momentum 0.1.
TORCH_BN_EPSILON = 1e-5
TORCH_BN_MOMENTUM = 0.1


def _pair(value: IntPair) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"expected an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _padding(padding: Padding) -> tuple[tuple[int, int], tuple[int, int]]:
    """Normalise a PyTorch-style padding to ``((top, bottom), (left, right))``."""
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    first, second = padding
    if isinstance(first, int) and isinstance(second, int):
        return ((first, first), (second, second))
    return (_pair(first), _pair(second))  # type: ignore[arg-type]


# --- dilation: smp's make_dilated, in one place -------------------------------------------


@dataclass
class _DilationPlan:
    """Dilation rate per stage stride (``{32: 2}`` for output stride 16) and the stages seen."""

    rates: Mapping[int, int]
    entered: set[int] = field(default_factory=set)


_PLAN: contextvars.ContextVar[_DilationPlan | None] = contextvars.ContextVar(
    "micronet_tf_dilation_plan", default=None
)
_DILATION: contextvars.ContextVar[int] = contextvars.ContextVar(
    "micronet_tf_stage_dilation", default=1
)


@contextlib.contextmanager
def dilation_plan(rates: Mapping[int, int]) -> Iterator[_DilationPlan]:
    """Build an encoder under ``rates`` (stage stride -> dilation rate, as smp's
    ``make_dilated`` derives them); afterwards every dilated stage must have been entered."""
    plan = _DilationPlan(dict(rates))
    token = _PLAN.set(plan)
    try:
        yield plan
    finally:
        _PLAN.reset(token)
    missing = sorted(set(plan.rates) - plan.entered)
    if missing:
        raise RuntimeError(
            f"the encoder builder never marked stage(s) {missing} with encoder_stage(), so "
            "they could not be dilated; mark every stage smp's get_stages() lists"
        )


@contextlib.contextmanager
def encoder_stage(stride: int) -> Iterator[int]:
    """Layers built inside belong to smp's ``get_stages()[stride]``; yields its dilation rate."""
    plan = _PLAN.get()
    rate = plan.rates.get(stride, 1) if plan is not None else 1
    if plan is not None:
        plan.entered.add(stride)
    token = _DILATION.set(rate)
    try:
        yield rate
    finally:
        _DILATION.reset(token)


def stage_dilation() -> int:
    """The dilation rate of the stage being built (1 outside a dilated stage)."""
    return _DILATION.get()


# --- convolutions ---------------------------------------------------------------------------


def _dilated(kernel: tuple[int, int], strides: tuple[int, int], padding, dilation):
    """smp's ``replace_strides_with_dilation`` for a conv built inside a dilated stage."""
    rate = stage_dilation()
    if rate == 1:
        return strides, padding, dilation
    # smp pads (kh // 2) * d on both axes (it reads kernel_size[0] twice): kept as is.
    return (1, 1), (kernel[0] // 2) * rate, (rate, rate)


def _padded(x: keras.KerasTensor, kernel, strides, padding, dilation, name: str):
    """Explicit ``ZeroPadding2D`` + ``"valid"``, or Keras ``"same"`` where that is identical
    (stride 1, odd kernel, symmetric padding equal to the dilated half-kernel).

    Keras ``"same"`` pads asymmetrically for stride 2 (more at the bottom/right), PyTorch pads
    as told, so strided or non-"same" convolutions always get the explicit padding.
    """
    pads = _padding(padding)
    same = tuple(((k - 1) * d // 2, (k - 1) * d // 2) for k, d in zip(kernel, dilation))
    if strides == (1, 1) and all(k % 2 == 1 for k in kernel) and pads == same:
        return x, "same"
    if any(p for pair in pads for p in pair):
        x = layers.ZeroPadding2D(pads, name=f"{name}.pad")(x)
    return x, "valid"


def conv2d(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: IntPair,
    *,
    name: str,
    strides: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    use_bias: bool = False,
) -> keras.KerasTensor:
    """``torch.nn.Conv2d`` (no bias by default): tuple kernels, symmetric or asymmetric zero
    padding, dilation, groups (TensorFlow's native grouped convolution)."""
    kernel, strides_, dilation_ = _pair(kernel_size), _pair(strides), _pair(dilation)
    strides_, padding, dilation_ = _dilated(kernel, strides_, padding, dilation_)
    x, keras_padding = _padded(x, kernel, strides_, padding, dilation_, name)
    conv_cls = GroupedConv2D if groups > 1 else layers.Conv2D
    return conv_cls(
        filters,
        kernel,
        strides=strides_,
        padding=keras_padding,
        dilation_rate=dilation_,
        groups=groups,
        use_bias=use_bias,
        name=name,
    )(x)


def depthwise_conv2d(
    x: keras.KerasTensor,
    kernel_size: IntPair,
    *,
    name: str,
    strides: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    use_bias: bool = False,
) -> keras.KerasTensor:
    """``torch.nn.Conv2d(C, C, k, groups=C)`` as a Keras ``DepthwiseConv2D`` (multiplier 1)."""
    kernel, strides_, dilation_ = _pair(kernel_size), _pair(strides), _pair(dilation)
    strides_, padding, dilation_ = _dilated(kernel, strides_, padding, dilation_)
    x, keras_padding = _padded(x, kernel, strides_, padding, dilation_, name)
    return layers.DepthwiseConv2D(
        kernel,
        strides=strides_,
        padding=keras_padding,
        dilation_rate=dilation_,
        use_bias=use_bias,
        name=name,
    )(x)


# --- normalisation and activations ----------------------------------------------------------


def batch_norm(
    x: keras.KerasTensor,
    *,
    name: str,
    epsilon: float = TORCH_BN_EPSILON,
    momentum: float = TORCH_BN_MOMENTUM,
) -> keras.KerasTensor:
    """``torch.nn.BatchNorm2d(eps=epsilon, momentum=momentum)`` over the channels-last axis.

    ``momentum`` is PyTorch's (weight of the new batch statistic); Keras counts the weight of
    the running value, ``1 - momentum``.
    """
    return layers.BatchNormalization(epsilon=epsilon, momentum=1.0 - momentum, name=name)(x)


def relu(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    return layers.ReLU(name=name)(x)


def relu6(x: keras.KerasTensor, *, name: str) -> keras.KerasTensor:
    """``torch.nn.ReLU6``."""
    return layers.ReLU(max_value=6.0, name=name)(x)


# --- pooling --------------------------------------------------------------------------------


def max_pool(
    x: keras.KerasTensor,
    pool_size: IntPair,
    *,
    name: str,
    strides: IntPair | None = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
    nonnegative: bool,
) -> keras.KerasTensor:
    """``torch.nn.MaxPool2d(pool_size, strides, padding, ceil_mode=ceil_mode)``.

    PyTorch pads max pooling with -inf. ``nonnegative=True`` (the input comes straight from a
    ReLU, which the caller guarantees) pads with zeros, which then gives the same result;
    otherwise the padding is the dtype's lowest finite value (exportable to ONNX).
    ``ceil_mode`` (padding 0 only) adds ``stride - 1`` rows / columns at the bottom / right:
    a "valid" pool then yields ``ceil((H - k) / s) + 1`` windows, each starting inside the
    input, which is PyTorch's ceil-mode output.
    """
    pool, strides_ = _pair(pool_size), _pair(strides if strides is not None else pool_size)
    (top, bottom), (left, right) = _padding(padding)
    if ceil_mode:
        if top or bottom or left or right:
            raise NotImplementedError("ceil_mode with padding > 0 is not implemented")
        bottom, right = strides_[0] - 1, strides_[1] - 1
    pads = ((top, bottom), (left, right))
    if any(p for pair in pads for p in pair):
        if nonnegative:
            x = layers.ZeroPadding2D(pads, name=f"{name}.pad")(x)
        else:
            x = MaxPoolPadding2D(pads, name=f"{name}.pad")(x)
    return layers.MaxPooling2D(pool, strides=strides_, padding="valid", name=name)(x)


def max_pool_after_relu(
    x: keras.KerasTensor, pool_size: int, *, strides: int, padding: int, name: str
) -> keras.KerasTensor:
    """``torch.nn.MaxPool2d(pool_size, strides, padding)`` on a ReLU output (zero padding)."""
    return max_pool(x, pool_size, strides=strides, padding=padding, nonnegative=True, name=name)


def avg_pool(
    x: keras.KerasTensor,
    pool_size: IntPair,
    *,
    name: str,
    strides: IntPair | None = None,
    padding: int = 0,
    count_include_pad: bool = True,
) -> keras.KerasTensor:
    """``torch.nn.AvgPool2d`` (floor mode). Padding is supported for stride 1 with
    ``count_include_pad=False`` (Keras ``"same"`` on TensorFlow divides by the valid count)."""
    pool, strides_ = _pair(pool_size), _pair(strides if strides is not None else pool_size)
    if padding == 0:
        return layers.AveragePooling2D(pool, strides=strides_, padding="valid", name=name)(x)
    if count_include_pad or strides_ != (1, 1) or padding != pool[0] // 2 or pool[0] != pool[1]:
        raise NotImplementedError(
            "padded average pooling is implemented for stride 1, 'same' padding and "
            "count_include_pad=False only"
        )
    return layers.AveragePooling2D(pool, strides=1, padding="same", name=name)(x)
