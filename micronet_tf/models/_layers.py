"""Custom Keras layers of the segmentation models (registered: ``.keras`` files reload plainly)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

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


@keras.saving.register_keras_serializable(package="micronet_tf")
class InputSizeCheck(keras.layers.Layer):
    """Identity that rejects an input whose height or width is not a multiple of ``multiple``
    (or is below ``minimum``, for which ``reason`` ends the message).

    The check runs whenever the size is known when the model is called (eager calls, ``predict``
    on fixed-size batches); the message says which size to pad to.
    """

    def __init__(self, multiple: int, minimum: int = 0, reason: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.minimum = int(minimum)
        self.reason = reason

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if height is not None and width is not None:
            if height < self.minimum or width < self.minimum:
                raise ValueError(
                    f"input of height {height} and width {width}: this model needs both to be "
                    f"at least {self.minimum}{self.reason}"
                )
            if height % self.multiple or width % self.multiple:
                padded = [-(-d // self.multiple) * self.multiple for d in (height, width)]
                raise ValueError(
                    f"input of height {height} and width {width}: this model needs both to be "
                    f"multiples of {self.multiple}; pad to {padded[0]}x{padded[1]} (or use "
                    "tiled prediction)"
                )
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "multiple": self.multiple,
            "minimum": self.minimum,
            "reason": self.reason,
        }


@keras.saving.register_keras_serializable(package="micronet_tf")
class SegmentationOutput(keras.layers.Layer):
    """The model's final activation. It also carries what the model is (architecture, encoder,
    decoder options) and its class names, so that they survive ``.keras`` saving."""

    ACTIVATIONS = ("identity", "sigmoid", "softmax", "logsoftmax", "tanh")

    def __init__(
        self,
        activation: str = "identity",
        class_names: Sequence[str] | None = None,
        model_info: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {self.ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.class_names = list(class_names) if class_names is not None else None
        self.model_info = dict(model_info or {})

    def call(self, inputs):
        if self.activation == "sigmoid":
            return keras.ops.sigmoid(inputs)
        if self.activation == "softmax":
            return keras.ops.softmax(inputs, axis=-1)
        if self.activation == "logsoftmax":
            return keras.ops.log_softmax(inputs, axis=-1)
        if self.activation == "tanh":
            return keras.ops.tanh(inputs)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "activation": self.activation,
            "class_names": self.class_names,
            "model_info": self.model_info,
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
