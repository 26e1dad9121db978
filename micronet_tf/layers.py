"""PyTorch-mirroring primitives: the Keras functions and registered layers that reproduce one
torch.nn layer or functional op each (PyTorch padding, BatchNorm constants, grouped convolution,
max-pool padding, legacy nearest / bilinear resizing, adaptive average pooling), shared by every
encoder family and decoder. Model-level layers and decoder blocks: :mod:`micronet_tf.models.layers`.

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


@keras.saving.register_keras_serializable(package="micronet_tf")
class GroupedConv2D(keras.layers.Conv2D):
    """``Conv2D`` with ``groups > 1`` that runs TensorFlow's native grouped convolution.

    Keras 3 routes grouped convolutions through an XLA-compiled function on the TensorFlow
    backend, which is about 10x slower on CPU and recompiles for every input size; TensorFlow's
    own ``conv2d`` accepts the same grouped kernel (``(kh, kw, in // groups, out)``) directly.
    Other backends keep Keras' implementation. Weights and config are those of ``Conv2D``.
    """

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() != "tensorflow" or self.data_format != "channels_last":
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        return tf.nn.conv2d(
            inputs,
            kernel,
            strides=(1, *self.strides, 1),
            padding=self.padding.upper(),
            dilations=(1, *self.dilation_rate, 1),
        )


@keras.saving.register_keras_serializable(package="micronet_tf")
class MaxPoolPadding2D(keras.layers.Layer):
    """Pads height and width with the dtype's lowest finite value: PyTorch pads max pooling
    with -inf, and zeros would win over negative inputs. (Finite, so ONNX exports keep it.)

    ``padding`` is ``((top, bottom), (left, right))``.
    """

    def __init__(self, padding=((1, 1), (1, 1)), **kwargs) -> None:
        super().__init__(**kwargs)
        self.padding = tuple(tuple(int(p) for p in pair) for pair in padding)

    def call(self, inputs):
        import numpy as np

        lowest = float(np.finfo(keras.backend.standardize_dtype(inputs.dtype)).min)
        pads = ((0, 0), *self.padding, (0, 0))
        return keras.ops.pad(inputs, pads, mode="constant", constant_values=lowest)

    def compute_output_shape(self, input_shape):
        (top, bottom), (left, right) = self.padding
        height, width = input_shape[1:3]
        return (
            input_shape[0],
            None if height is None else height + top + bottom,
            None if width is None else width + left + right,
            input_shape[3],
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


@keras.saving.register_keras_serializable(package="micronet_tf")
class ChannelSlice(keras.layers.Layer):
    """``x[..., start:stop]`` of a channels-last map (a registered layer, not a ``Lambda``):
    PyTorch's ``x[:, start:stop]`` where a family splits its channels (DPN's dual path)."""

    def __init__(self, start: int, stop: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.start = int(start)
        self.stop = None if stop is None else int(stop)

    def call(self, inputs):
        stop = inputs.shape[-1] if self.stop is None else self.stop
        return inputs[..., self.start : stop]

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        stop = channels if self.stop is None else self.stop
        return (*input_shape[:-1], None if stop is None else stop - self.start)

    def get_config(self) -> dict:
        return {**super().get_config(), "start": self.start, "stop": self.stop}


_INTERPOLATIONS = ("nearest", "bilinear")


def _nearest_sources(source: int, target: int):
    """PyTorch's legacy nearest source index of each of ``target`` positions."""
    scale = keras.ops.cast(source, "float32") / keras.ops.cast(target, "float32")
    positions = keras.ops.cast(keras.ops.arange(target), "float32")
    index = keras.ops.cast(keras.ops.floor(positions * scale), "int32")
    return keras.ops.minimum(index, keras.ops.cast(source, "int32") - 1)


def _gather_nearest(x, size):
    shape = keras.ops.shape(x)
    for axis in (1, 2):
        x = keras.ops.take(x, _nearest_sources(shape[axis], size[axis - 1]), axis=axis)
    return x


def _tf_nearest(x, size):
    """TensorFlow's nearest resize (legacy semantics) with an XLA-compilable gradient."""
    import tensorflow as tf

    size = tf.cast(tf.stack(size), tf.int32)

    @tf.custom_gradient
    def resize(images):
        shape = tf.shape(images)
        resized = tf.raw_ops.ResizeNearestNeighbor(
            images=images, size=size, align_corners=False, half_pixel_centers=False
        )

        def gradient(upstream):
            def doubled():
                return tf.nn.avg_pool2d(upstream, 2, 2, "VALID") * 4.0

            def general():
                with tf.GradientTape() as tape:
                    tape.watch(images)
                    gathered = _gather_nearest(images, (size[0], size[1]))
                return tape.gradient(gathered, images, output_gradients=upstream)

            exact = tf.reduce_all(tf.equal(size, 2 * shape[1:3]))
            return tf.cond(exact, doubled, general)

        return resized, gradient

    return resize(tf.convert_to_tensor(x))


@keras.saving.register_keras_serializable(package="micronet_tf")
class Resize(keras.layers.Layer):
    """``torch.nn.functional.interpolate`` for NHWC maps, with dynamic height and width.

    Called on one tensor it scales by ``scale``; called on ``[x, like]`` it resizes ``x`` to
    ``like``'s height and width. ``nearest`` is PyTorch's legacy nearest (source index
    ``floor(dst * (in / out))`` in float32, as PyTorch and TensorFlow compute it): on TensorFlow
    its resize kernel, with a gradient that XLA can compile (XLA has none for that kernel):
    2 x 2 sum pooling for exact doubling, else that of two gathers; elsewhere two gathers.
    ``bilinear`` honours ``align_corners`` (smp uses
    ``True`` in FPN, PAN, DeepLabV3+ and the segmentation head); on TensorFlow it calls the
    resize kernel that has exactly these semantics. Both trace with unknown sizes and export
    to ONNX.
    """

    def __init__(
        self,
        scale: int | None = None,
        interpolation: str = "nearest",
        align_corners: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}"
            )
        if align_corners and interpolation != "bilinear":
            raise ValueError("align_corners=True needs interpolation='bilinear'")
        self.scale = scale
        self.interpolation = interpolation
        self.align_corners = bool(align_corners)

    def _target_size(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return keras.ops.shape(inputs[1])[1:3]
        if self.scale is None:
            raise ValueError(f"{self.name}: call on [x, like] or set scale")
        shape = keras.ops.shape(inputs)
        return (shape[1] * self.scale, shape[2] * self.scale)

    def call(self, inputs):
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        size = self._target_size(inputs)
        if self.interpolation == "nearest":
            if keras.backend.backend() == "tensorflow":
                return _tf_nearest(x, size)
            return _gather_nearest(x, size)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            size = tf.cast(tf.stack(size), tf.int32)
            resized = tf.raw_ops.ResizeBilinear(
                images=x,
                size=size,
                align_corners=self.align_corners,
                half_pixel_centers=not self.align_corners,
            )
            return tf.cast(resized, x.dtype)
        if self.align_corners:
            raise NotImplementedError("align_corners=True is implemented for TensorFlow only")
        return keras.ops.image.resize(x, size, interpolation=self.interpolation)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            x_shape, like_shape = input_shape
            return (x_shape[0], like_shape[1], like_shape[2], x_shape[3])
        scaled = [None if d is None else d * self.scale for d in input_shape[1:3]]
        return (input_shape[0], *scaled, input_shape[3])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "scale": self.scale,
            "interpolation": self.interpolation,
            "align_corners": self.align_corners,
        }


def _bin_mask(size, bins: int, dtype):
    """PyTorch's adaptive pooling windows along one axis: a (bins, size) 0/1 mask of
    ``floor(i*size/bins) <= pos < ceil((i+1)*size/bins)`` and each window's length."""
    index = keras.ops.arange(bins, dtype="int32")
    size = keras.ops.cast(size, "int32")
    start = keras.ops.floor_divide(index * size, bins)
    end = keras.ops.floor_divide((index + 1) * size + bins - 1, bins)
    position = keras.ops.arange(size, dtype="int32")
    mask = keras.ops.logical_and(
        keras.ops.greater_equal(position[None, :], start[:, None]),
        keras.ops.less(position[None, :], end[:, None]),
    )
    return keras.ops.cast(mask, dtype), keras.ops.cast(end - start, dtype)


@keras.saving.register_keras_serializable(package="micronet_tf")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """``torch.nn.AdaptiveAvgPool2d(output_size)`` for NHWC maps of any (dynamic) size.

    Window ``i`` covers ``floor(i*H/n) .. ceil((i+1)*H/n)`` (uneven and overlapping when ``H``
    is not a multiple of ``n``, as in PyTorch); window sums come from 0/1 masks contracted with
    the map, then are divided by the window area.
    """

    def __init__(self, output_size: int | tuple[int, int], **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(s) for s in output_size)
        if len(self.output_size) != 2 or min(self.output_size) < 1:
            raise ValueError(f"output_size must be one or two positive ints, got {output_size!r}")

    def call(self, inputs):
        shape = keras.ops.shape(inputs)
        rows, row_counts = _bin_mask(shape[1], self.output_size[0], inputs.dtype)
        cols, col_counts = _bin_mask(shape[2], self.output_size[1], inputs.dtype)
        sums = keras.ops.einsum("ih,bhwc->biwc", rows, inputs)
        sums = keras.ops.einsum("jw,biwc->bijc", cols, sums)
        area = row_counts[:, None, None] * col_counts[None, :, None]
        return sums / area

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self) -> dict:
        return {**super().get_config(), "output_size": self.output_size}
