"""Model-level layers and blocks: the decoders' building blocks named after smp's module paths,
the input checks and output of a segmentation model, and raw-image normalisation for exported
models (registered, so ``.keras`` files reload plainly). PyTorch-mirroring primitives:
:mod:`micronet_tf.layers`.

smp's ``Conv2dReLU`` is ``Sequential(conv, norm, relu)``, so its weights live at
``<path>.0`` (conv) and ``<path>.1`` (BatchNorm); every block here keeps those paths.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from micronet_tf.encoders import get_encoder
from micronet_tf.layers import Resize, batch_norm, conv2d

NORMS = ("batchnorm", "identity")


def resolve_norm(use_norm: bool | str) -> str:
    """smp's ``decoder_use_norm``: True / "batchnorm" -> BatchNorm, False / "identity" -> none."""
    if use_norm is True:
        return "batchnorm"
    if use_norm is False:
        return "identity"
    if isinstance(use_norm, str) and use_norm.lower() in NORMS:
        return use_norm.lower()
    raise ValueError(
        f"decoder_use_norm={use_norm!r} is not supported; use True/'batchnorm' or False/'identity'"
    )


def conv_norm_relu(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    padding: int | None = None,
    strides: int = 1,
    use_norm: bool | str = True,
    dilation: int = 1,
) -> keras.KerasTensor:
    """smp ``Conv2dReLU``: conv (bias only without norm) ``name.0``, norm ``name.1``, ReLU."""
    norm = resolve_norm(use_norm)
    padding = kernel_size // 2 * dilation if padding is None else padding
    x = conv2d(
        x,
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        dilation=dilation,
        use_bias=norm == "identity",
        name=f"{name}.0",
    )
    if norm == "batchnorm":
        x = batch_norm(x, name=f"{name}.1")
    return layers.ReLU(name=f"{name}.2")(x)


def attention(
    x: keras.KerasTensor, attention_type: str | None, *, name: str, reduction: int = 16
) -> keras.KerasTensor:
    """smp ``Attention``: identity, or SCSE at ``name.attention`` (``x*cSE(x) + x*sSE(x)``)."""
    if attention_type is None:
        return x
    if attention_type != "scse":
        raise ValueError(f"attention_type must be None or 'scse', got {attention_type!r}")
    channels = x.shape[-1]
    path = f"{name}.attention"
    c = layers.GlobalAveragePooling2D(keepdims=True, name=f"{path}.cSE.0")(x)
    c = layers.Conv2D(channels // reduction, 1, name=f"{path}.cSE.1")(c)
    c = layers.ReLU(name=f"{path}.cSE.2")(c)
    c = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{path}.cSE.3")(c)
    s = layers.Conv2D(1, 1, activation="sigmoid", name=f"{path}.sSE.0")(x)
    return layers.Add(name=f"{path}.add")(
        [layers.Multiply(name=f"{path}.cmul")([x, c]), layers.Multiply(name=f"{path}.smul")([x, s])]
    )


def segmentation_head(
    x: keras.KerasTensor,
    classes: int,
    *,
    kernel_size: int = 3,
    upsampling: int = 1,
    name: str = "segmentation_head",
) -> keras.KerasTensor:
    """smp ``SegmentationHead``: conv ``name.0`` then bilinear (align_corners) upsampling."""
    x = conv2d(x, classes, kernel_size, padding=kernel_size // 2, use_bias=True, name=f"{name}.0")
    if upsampling > 1:
        x = Resize(upsampling, "bilinear", align_corners=True, name=f"{name}.1")(x)
    return x


def encoder_features(
    inputs: keras.KerasTensor,
    encoder: str,
    weights,
    options=None,
    *,
    depth: int = 5,
    output_stride: int = 32,
    minimum_size: int = 0,
    size_reason: str = "",
) -> list[keras.KerasTensor]:
    """Run the named encoder (with its build ``options``) as a nested model called ``encoder``
    (checkpoint paths ``encoder.*``), after checking that the input size is a multiple of its
    output stride (and at least ``minimum_size``, with ``size_reason`` saying why)."""
    model = get_encoder(
        encoder,
        weights=weights,
        input_shape=tuple(inputs.shape[1:]),
        depth=depth,
        output_stride=output_stride,
        model_name="encoder",
        **dict(options or {}),
    )
    stride = min(output_stride, 2**depth)
    checked = InputSizeCheck(stride, minimum_size, size_reason, name="input_size_check")(inputs)
    return list(model(checked))


def check_channels(name: str, values: Sequence[int], expected_length: int) -> list[int]:
    values = list(values)
    if len(values) != expected_length:
        raise ValueError(f"{name} needs {expected_length} values, got {len(values)}: {values}")
    return values


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
