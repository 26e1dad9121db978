"""ONNX emitters for the Keras layers of our models: activations, convolutions, dense
layers, normalisation, merges and reshapes (padding, pooling and resizing:
:mod:`micronet_tf.onnx_resampling`). Each writes its layer's nodes, NCHW inside the graph,
with the layer's weights as initializers; importing this module registers them.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from onnx import TensorProto, helper

from micronet_tf.encoders.efficientnet import DropConnect
from micronet_tf.layers import ChannelSlice, GroupedConv2D
from micronet_tf.models.layers import InputSizeCheck, RawImageNormalization, SegmentationOutput
from micronet_tf.onnx_builder import (
    FLOAT,
    INT64_MAX,
    GraphBuilder,
    UnsupportedLayerError,
    Value,
    emits,
    onnx_axis,
    single,
    spatial,
    to_numpy,
)

# --- activations ----------------------------------------------------------------------------

_SIMPLE_ACTIVATIONS = {
    "relu": "Relu",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "elu": "Elu",
    "selu": "Selu",
    "softplus": "Softplus",
    "softsign": "Softsign",
    "exponential": "Exp",
}
_ACTIVATIONS = (
    "linear",
    *_SIMPLE_ACTIVATIONS,
    "relu6",
    "softmax",
    "log_softmax",
    "silu",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "leaky_relu",
    "gelu",
    "mish",
)


def _activation_name(function) -> str | None:
    name = keras.activations.serialize(function) if callable(function) else function
    return name if isinstance(name, str) else None


def _activation_reason(layer) -> str | None:
    """A layer's (fused) activation that has no emitter."""
    name = _activation_name(layer.activation)
    return None if name in _ACTIVATIONS else f"activation={name!r}"


def activation(builder: GraphBuilder, name: str, x: Value, node: str) -> Value:
    """Keras activation ``name`` (softmax over the last Keras axis)."""
    b = builder
    if name == "linear":
        return x
    if name in _SIMPLE_ACTIVATIONS:
        return Value(b.node(_SIMPLE_ACTIVATIONS[name], [x.name], node), x.rank)
    if name == "relu6":
        return Value(_clip(b, x.name, 0.0, 6.0, node), x.rank)
    if name in ("softmax", "log_softmax"):
        op = "Softmax" if name == "softmax" else "LogSoftmax"
        return Value(b.node(op, [x.name], node, axis=onnx_axis(x, -1)), x.rank)
    if name == "leaky_relu":
        return Value(b.node("LeakyRelu", [x.name], node, alpha=0.2), x.rank)
    if name == "silu":
        gate = b.node("Sigmoid", [x.name], f"{node}.sigmoid")
    elif name == "hard_sigmoid":
        return Value(b.node("HardSigmoid", [x.name], node, alpha=1 / 6, beta=0.5), x.rank)
    elif name in ("hard_silu", "hard_swish"):
        gate = b.node("HardSigmoid", [x.name], f"{node}.gate", alpha=1 / 6, beta=0.5)
    elif name == "gelu":  # Keras' default: exact, 0.5 * (1 + erf(x / sqrt(2)))
        scaled = b.node("Mul", [x.name, b.constant(np.sqrt(0.5), np.float32)], f"{node}.scaled")
        erf = b.node("Erf", [scaled], f"{node}.erf")
        one = b.node("Add", [erf, b.constant(1.0, np.float32)], f"{node}.one")
        gate = b.node("Mul", [one, b.constant(0.5, np.float32)], f"{node}.gate")
    elif name == "mish":
        softplus = b.node("Softplus", [x.name], f"{node}.softplus")
        gate = b.node("Tanh", [softplus], f"{node}.gate")
    else:
        raise UnsupportedLayerError(f"activation {name!r} has no ONNX emitter")
    return Value(b.node("Mul", [x.name, gate], node), x.rank)


def _clip(builder: GraphBuilder, x: str, low: float, high: float | None, node: str) -> str:
    bounds = [builder.constant(low, np.float32)]
    if high is not None:
        bounds.append(builder.constant(high, np.float32))
    return builder.node("Clip", [x, *bounds], node)


def _fused_activation(builder, layer, x: Value, name: str) -> Value:
    return activation(builder, _activation_name(layer.activation), x, f"{name}.activation")


@emits(keras.layers.Activation, check=_activation_reason)
def _activation_layer(b, layer, inputs, name):
    return activation(b, _activation_name(layer.activation), single(inputs), name)


def _relu_check(layer) -> str | None:
    return f"threshold={layer.threshold}" if layer.threshold else None


@emits(keras.layers.ReLU, check=_relu_check)
def _relu(b, layer, inputs, name):
    x = single(inputs)
    slope, top = float(layer.negative_slope), layer.max_value
    if slope:
        out = b.node("LeakyRelu", [x.name], name if top is None else f"{name}.leaky", alpha=slope)
        if top is not None:
            out = b.node("Min", [out, b.constant(float(top), np.float32)], name)
    elif top is None:
        out = b.node("Relu", [x.name], name)
    else:
        out = _clip(b, x.name, 0.0, float(top), name)
    return Value(out, x.rank)


@emits(SegmentationOutput)
def _segmentation_output(b, layer, inputs, name):
    names = {"identity": "linear", "logsoftmax": "log_softmax"}
    return activation(b, names.get(layer.activation, layer.activation), single(inputs), name)


# --- convolutions ---------------------------------------------------------------------------


def _conv_padding(layer, kernel: Sequence[int], transpose: bool = False) -> dict:
    """ONNX padding attributes for Keras ``padding`` (TensorFlow's "same": the odd pixel of
    an uneven total padding goes at the bottom / right)."""
    if layer.padding == "valid":
        return {}
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, layer.dilation_rate)]
    if transpose or tuple(layer.strides) == (1, 1):
        # Static: stride 1 pads k - 1 in all; a transposed "same" crops k - s (output H * s).
        totals = [e - (s if transpose else 1) for e, s in zip(effective, layer.strides)]
        if min(totals) < 0:
            return {}
        return {"pads": [t // 2 for t in totals] + [t - t // 2 for t in totals]}
    return {"auto_pad": "SAME_UPPER"}


def _conv_check(layer) -> str | None:
    if layer.padding not in ("valid", "same"):
        return f"padding={layer.padding!r}"
    return _activation_reason(layer)


def _conv_node(b, layer, x: Value, weight: np.ndarray, name: str, **attributes) -> Value:
    inputs = [x.name, b.weight(weight, f"{name}.weight")]
    if layer.use_bias:
        inputs.append(b.weight(to_numpy(layer.bias), f"{name}.bias"))
    out = Value(b.node("Conv", inputs, name, **attributes), 4)
    return _fused_activation(b, layer, out, name)


@emits(keras.layers.Conv2D, GroupedConv2D, check=_conv_check)
def _conv2d(b, layer, inputs, name):
    kernel = to_numpy(layer.kernel)  # (kh, kw, in / groups, out) -> (out, in / groups, kh, kw)
    return _conv_node(
        b,
        layer,
        spatial(inputs, layer),
        kernel.transpose(3, 2, 0, 1),
        name,
        kernel_shape=list(kernel.shape[:2]),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        group=int(layer.groups),
        **_conv_padding(layer, kernel.shape[:2]),
    )


@emits(keras.layers.DepthwiseConv2D, check=_conv_check)
def _depthwise_conv2d(b, layer, inputs, name):
    kernel = to_numpy(layer.kernel)  # (kh, kw, C, M): output channel c * M + m
    height, width, channels, multiplier = kernel.shape
    weight = kernel.reshape(height, width, channels * multiplier).transpose(2, 0, 1)[:, None]
    return _conv_node(
        b,
        layer,
        spatial(inputs, layer),
        weight,
        name,
        kernel_shape=[height, width],
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        group=channels,
        **_conv_padding(layer, (height, width)),
    )


def _transpose_check(layer) -> str | None:
    if layer.output_padding is not None:
        return f"output_padding={layer.output_padding}"
    return _conv_check(layer)


@emits(keras.layers.Conv2DTranspose, check=_transpose_check)
def _conv2d_transpose(b, layer, inputs, name):
    x = spatial(inputs, layer)
    kernel = to_numpy(layer.kernel)  # (kh, kw, out, in) -> (in, out, kh, kw), no flip
    effective = [(k - 1) * d + 1 for k, d in zip(kernel.shape[:2], layer.dilation_rate)]
    # Keras makes the output at least H * stride: what a kernel shorter than the stride
    # leaves out is ONNX's output_padding (bias only, at the end, as TensorFlow).
    extra = [max(s - e, 0) for s, e in zip(layer.strides, effective)]
    inputs = [x.name, b.weight(kernel.transpose(3, 2, 0, 1), f"{name}.weight")]
    if layer.use_bias:
        inputs.append(b.weight(to_numpy(layer.bias), f"{name}.bias"))
    attributes = _conv_padding(layer, kernel.shape[:2], transpose=True)
    if any(extra):
        attributes["output_padding"] = extra
    out = b.node(
        "ConvTranspose",
        inputs,
        name,
        kernel_shape=list(kernel.shape[:2]),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        **attributes,
    )
    return _fused_activation(b, layer, Value(out, 4), name)


def _dense_check(layer) -> str | None:
    if not layer.built:
        return "not built"
    return _activation_reason(layer)


@emits(keras.layers.Dense, check=_dense_check)
def _dense(b, layer, inputs, name):
    x = single(inputs)
    kernel = to_numpy(layer.kernel)  # (in, out)
    if x.rank == 4:  # over the channels: a 1x1 convolution
        op, kernel = "Conv", kernel.T[:, :, None, None]
    elif x.rank == 2:
        op = "Gemm"
    else:
        raise UnsupportedLayerError(f"layer {layer.name!r}: Dense on a {x.rank}-D input")
    inputs = [x.name, b.weight(kernel, f"{name}.weight")]
    if layer.use_bias:
        inputs.append(b.weight(to_numpy(layer.bias), f"{name}.bias"))
    return _fused_activation(b, layer, Value(b.node(op, inputs, name), x.rank), name)


# --- normalisation --------------------------------------------------------------------------


def _channel_axis_check(layer) -> str | None:
    axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
    return None if axis in (-1, 3, (-1,), (3,)) else f"axis={layer.axis}"


def _channel_vector(b, vector: np.ndarray, x: Value, name: str) -> str:
    """A per-channel vector shaped to broadcast over ``x`` (C, 1, 1 for NCHW)."""
    return b.weight(vector.reshape((-1, 1, 1) if x.rank == 4 else (-1,)), name)


@emits(keras.layers.BatchNormalization, check=_channel_axis_check)
def _batch_norm(b, layer, inputs, name):
    x = single(inputs)
    mean, variance = to_numpy(layer.moving_mean), to_numpy(layer.moving_variance)
    gamma = to_numpy(layer.gamma) if layer.scale else np.ones_like(mean)
    beta = to_numpy(layer.beta) if layer.center else np.zeros_like(mean)
    parameters = [
        b.weight(v, f"{name}.{label}")
        for v, label in ((gamma, "gamma"), (beta, "beta"), (mean, "mean"), (variance, "var"))
    ]
    out = b.node("BatchNormalization", [x.name, *parameters], name, epsilon=float(layer.epsilon))
    return Value(out, x.rank)


@emits(keras.layers.GroupNormalization, check=_channel_axis_check)
def _group_norm(b, layer, inputs, name):
    """Groups as instance normalisation of (N, G, -1), then the per-channel affine (Keras'
    biased variance and epsilon; no opset-dependent GroupNormalization node)."""
    x = spatial(inputs, layer)
    groups = int(layer.groups)
    grouped = b.node("Reshape", [x.name, b.constant([0, groups, -1])], f"{name}.grouped")
    normalised = b.node(
        "InstanceNormalization",
        [
            grouped,
            b.constant(np.ones(groups), np.float32),
            b.constant(np.zeros(groups), np.float32),
        ],
        f"{name}.normalised",
        epsilon=float(layer.epsilon),
    )
    shape = b.node("Shape", [x.name], f"{name}.shape")
    out = b.node("Reshape", [normalised, shape], f"{name}.ungrouped")
    if layer.scale:
        gamma = _channel_vector(b, to_numpy(layer.gamma), x, f"{name}.gamma")
        out = b.node("Mul", [out, gamma], f"{name}.scaled" if layer.center else name)
    if layer.center:
        out = b.node(
            "Add", [out, _channel_vector(b, to_numpy(layer.beta), x, f"{name}.beta")], name
        )
    return Value(out, 4)


def _rescaling_check(layer) -> str | None:
    for value in (layer.scale, layer.offset):
        if np.ndim(value) > 1:
            return "scale / offset of more than one axis"
    return None


@emits(keras.layers.Rescaling, check=_rescaling_check)
def _rescaling(b, layer, inputs, name):
    x = _as_float(b, single(inputs), name)
    out = x.name
    for op, value, label in (("Mul", layer.scale, "scale"), ("Add", layer.offset, "offset")):
        value = np.asarray(value, np.float32)
        if np.all(value == (1.0 if op == "Mul" else 0.0)):
            continue
        operand = (
            _channel_vector(b, value, x, f"{name}.{label}")
            if value.ndim
            else b.constant(value, np.float32)
        )
        out = b.node(op, [out, operand], f"{name}.{label}")
    return Value(out, x.rank)


def _as_float(b, x: Value, name: str) -> Value:
    if x.dtype == FLOAT:
        return x
    return Value(b.node("Cast", [x.name], f"{name}.cast", to=FLOAT), x.rank)


def _percentile(b, flat: str, count: str, percent: float, name: str) -> str:
    """Per row of the ascending ``flat`` (B x N): the element at ``ceil(percent / 100 * N) - 1``
    (the inverted CDF, in float64 as :func:`micronet_tf.layers.percentile_bounds`), B x 1."""
    n = b.node("Cast", [count], f"{name}.n", to=TensorProto.DOUBLE)
    fraction = b.fresh(f"{name}.fraction")  # float64: b.weight stores float32
    b.graph.initializer.append(
        helper.make_tensor(fraction, TensorProto.DOUBLE, [1], [percent / 100.0])
    )
    rank = b.node("Ceil", [b.node("Mul", [n, fraction], f"{name}.scaled")], f"{name}.ceil")
    index = b.node("Cast", [rank], f"{name}.rank", to=TensorProto.INT64)
    index = b.node("Sub", [index, b.constant([1])], f"{name}.index")
    last = b.node("Sub", [count, b.constant([1])], f"{name}.last")
    index = b.node("Min", [b.node("Max", [index, b.constant([0])], f"{name}.low")], f"{name}.i")
    index = b.node("Min", [index, last], f"{name}.clipped")
    return b.node("Gather", [flat, index], name, axis=1)


def _percentile_scaling(b, x: Value, low: float, high: float, name: str) -> str:
    """Each image scaled by its own ``low`` / ``high`` percentiles to [0, 1], clipped; a flat
    image (no spread) gives zeros, as :func:`micronet_tf.layers.scale_to_unit_range`."""
    flat = b.node("Reshape", [x.name, b.constant([0, -1])], f"{name}.flat")
    count = b.dims(Value(flat, 2), 1, 2, f"{name}.count")
    ascending = b.fresh(f"{name}.sorted")
    b.graph.node.append(
        helper.make_node(
            "TopK",
            [flat, count],
            [ascending, b.fresh(f"{name}.order")],
            ascending,
            axis=1,
            largest=0,
            sorted=1,
        )
    )
    bounds = []
    for percent, label in ((low, "low"), (high, "high")):
        bound = _percentile(b, ascending, count, percent, f"{name}.{label}")
        bounds.append(b.node("Reshape", [bound, b.constant([-1, 1, 1, 1])], f"{name}.{label}4"))
    low_value, high_value = bounds
    spread = b.node("Sub", [high_value, low_value], f"{name}.spread")
    positive = b.node("Greater", [spread, b.constant(0.0, np.float32)], f"{name}.positive")
    one, zero = b.constant(1.0, np.float32), b.constant(0.0, np.float32)
    divisor = b.node("Where", [positive, spread, one], f"{name}.divisor")
    shifted = b.node("Sub", [x.name, low_value], f"{name}.shifted")
    scaled = b.node("Div", [shifted, divisor], f"{name}.scaled")
    clipped = b.node("Clip", [scaled, zero, one], f"{name}.clipped")
    return b.node("Where", [positive, clipped, zero], f"{name}.unit")


@emits(RawImageNormalization)
def _raw_image_normalization(b, layer, inputs, name):
    """Raw values -> [0, 1] (``/ maximum`` or each image's percentiles) -> ImageNet's
    ``(x - mean) / std``; the dtype case folds the division into the mean and std."""
    from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

    x = _as_float(b, single(inputs), name)
    normalization = layer.normalization
    if normalization.get("kind", "dtype") == "dtype":
        unit, factor = x.name, layer.maximum
    else:
        low, high = float(normalization["low"]), float(normalization["high"])
        unit, factor = _percentile_scaling(b, x, low, high, f"{name}.percentile"), 1.0
    mean = _channel_vector(b, np.asarray(IMAGENET_MEAN) * factor, x, f"{name}.mean")
    std = _channel_vector(b, np.asarray(IMAGENET_STD) * factor, x, f"{name}.std")
    centred = b.node("Sub", [unit, mean], f"{name}.centred")
    return Value(b.node("Div", [centred, std], name), x.rank)


# --- merging and slicing --------------------------------------------------------------------

_MERGES = {
    keras.layers.Add: "Add",
    keras.layers.Subtract: "Sub",
    keras.layers.Multiply: "Mul",
    keras.layers.Maximum: "Max",
    keras.layers.Minimum: "Min",
    keras.layers.Average: "Add",
}


def _same_rank(layer, values: Sequence[Value]) -> None:
    if len({v.rank for v in values}) != 1:
        raise UnsupportedLayerError(f"layer {layer.name!r}: inputs of different ranks")


@emits(*_MERGES)
def _merge(b, layer, inputs, name):
    values = list(inputs)
    _same_rank(layer, values)
    op = _MERGES[type(layer)]
    out = values[0].name
    for index, value in enumerate(values[1:], 1):
        last = index == len(values) - 1 and not isinstance(layer, keras.layers.Average)
        out = b.node(op, [out, value.name], name if last else f"{name}.{index}")
    if isinstance(layer, keras.layers.Average):
        count = b.constant(float(len(values)), np.float32)
        out = b.node("Div", [out, count], name)
    return Value(out, values[0].rank)


@emits(keras.layers.Concatenate)
def _concatenate(b, layer, inputs, name):
    values = list(inputs)
    _same_rank(layer, values)
    axis = onnx_axis(values[0], layer.axis)
    return Value(b.node("Concat", [v.name for v in values], name, axis=axis), values[0].rank)


@emits(ChannelSlice)
def _channel_slice(b, layer, inputs, name):
    x = single(inputs)
    stop = INT64_MAX if layer.stop is None else layer.stop
    axis = onnx_axis(x, -1)
    starts, ends = b.constant([layer.start]), b.constant([stop])
    return Value(b.node("Slice", [x.name, starts, ends, b.constant([axis])], name), x.rank)


@emits(keras.layers.Flatten)
def _flatten(b, layer, inputs, name):
    x = single(inputs)
    if x.rank == 2:
        return x
    source = x.name
    if x.rank == 4:  # Keras flattens (H, W, C) in that order
        source = b.node("Transpose", [x.name], f"{name}.nhwc", perm=[0, 2, 3, 1])
    return Value(b.node("Flatten", [source], name, axis=1), 2)


@emits(keras.layers.Permute)
def _permute(b, layer, inputs, name):
    x = single(inputs)
    permutation = [0, *layer.dims]  # Keras axes of the input, for each output axis
    if x.rank != 4:
        return Value(b.node("Transpose", [x.name], name, perm=permutation), x.rank)
    # stored -> Keras (0, 2, 3, 1), Keras permutation, Keras -> stored (0, 3, 1, 2)
    composed = [(0, 2, 3, 1)[permutation[i]] for i in (0, 3, 1, 2)]
    return Value(b.node("Transpose", [x.name], name, perm=composed), 4)


def _identity(b, layer, inputs, name):
    return single(inputs)


emits(
    keras.layers.Identity,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    DropConnect,
    InputSizeCheck,
)(_identity)
