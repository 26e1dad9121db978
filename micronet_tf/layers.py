"""Keras layers shared by the encoder families (registered, so ``.keras`` files reload plainly)."""

from __future__ import annotations

import keras


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


def percentile_bounds(images, low: float, high: float):
    """Per image of a B x H x W x C batch: its ``low`` and ``high`` percentiles (0-100) over
    every pixel and channel, by the inverted CDF as :mod:`micronet_tf.intensity` takes them
    (one sorted element each: ``sorted[ceil(q / 100 * n) - 1]``). Returns two B x 1 x 1 x 1
    tensors."""
    ops = keras.ops
    flat = ops.sort(ops.reshape(ops.cast(images, "float32"), (ops.shape(images)[0], -1)), axis=1)
    count = ops.shape(flat)[1]

    def at(percent: float):
        index = ops.ceil(ops.cast(count, "float64") * (percent / 100.0)) - 1.0
        index = ops.clip(ops.cast(index, "int32"), 0, count - 1)
        return ops.reshape(ops.take(flat, index, axis=1), (-1, 1, 1, 1))

    return at(low), at(high)


def scale_to_unit_range(images, normalization: dict, maximum: float):
    """Raw intensities -> [0, 1] by ``normalization`` (a
    :meth:`~micronet_tf.intensity.Normalization.to_config` dict): ``/ maximum`` (the input
    dtype's range) for ``"dtype"``, the image's percentiles (clipped) for ``"percentile"``."""
    ops = keras.ops
    x = ops.cast(images, "float32")
    if normalization.get("kind", "dtype") == "dtype":
        return x / maximum
    low, high = percentile_bounds(x, normalization["low"], normalization["high"])
    spread = high - low
    scaled = ops.clip((x - low) / ops.where(spread > 0, spread, 1.0), 0.0, 1.0)
    return ops.where(spread > 0, scaled, ops.zeros_like(scaled))


@keras.saving.register_keras_serializable(package="micronet_tf")
class RawImageNormalization(keras.layers.Layer):
    """Raw RGB (any numeric dtype) -> [0, 1] by ``normalization`` (``"dtype"``: ``/ maximum``,
    255 for 8-bit inputs; ``"percentile"``: each image's own percentiles) -> ImageNet's
    ``(x - mean) / std``, in the graph (exported models then take raw images directly)."""

    def __init__(self, normalization: dict | None = None, maximum: float = 255.0, **kwargs):
        super().__init__(**kwargs)
        self.normalization = dict(normalization or {"kind": "dtype"})
        self.maximum = float(maximum)

    def call(self, inputs):
        from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

        x = scale_to_unit_range(inputs, self.normalization, self.maximum)
        return (x - IMAGENET_MEAN) / IMAGENET_STD

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "normalization": self.normalization,
            "maximum": self.maximum,
        }


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
