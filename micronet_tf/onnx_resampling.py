"""ONNX emitters for padding, pooling (plain, global, adaptive at any size) and resizing
(PyTorch's legacy nearest, bilinear with or without aligned corners): importing this module
registers them (see :mod:`micronet_tf.onnx_builder`).
"""

from __future__ import annotations

import keras
import numpy as np

from micronet_tf.layers import AdaptiveAveragePooling2D, MaxPoolPadding2D, Resize
from micronet_tf.onnx_builder import (
    FLOAT,
    INT64,
    INT64_MAX,
    UnsupportedLayerError,
    Value,
    emits,
    single,
    spatial,
)

# --- padding and pooling --------------------------------------------------------------------


def _pad(b, x: Value, padding, name: str, value: float | None = None) -> Value:
    (top, bottom), (left, right) = padding
    inputs = [x.name, b.constant([0, 0, top, left, 0, 0, bottom, right])]
    if value is not None:
        inputs.append(b.constant(value, np.float32))
    return Value(b.node("Pad", inputs, name, mode="constant"), 4)


@emits(keras.layers.ZeroPadding2D)
def _zero_padding(b, layer, inputs, name):
    return _pad(b, spatial(inputs, layer), layer.padding, name)


@emits(MaxPoolPadding2D)
def _max_pool_padding(b, layer, inputs, name):
    lowest = float(np.finfo(np.float32).min)
    return _pad(b, spatial(inputs, layer), layer.padding, name, lowest)


@emits(keras.layers.Cropping2D)
def _cropping(b, layer, inputs, name):
    x = spatial(inputs, layer)
    (top, bottom), (left, right) = layer.cropping
    starts = b.constant([top, left])
    ends = b.constant([-bottom if bottom else INT64_MAX, -right if right else INT64_MAX])
    return Value(b.node("Slice", [x.name, starts, ends, b.constant([2, 3])], name), 4)


def _pool_padding(layer) -> dict:
    if layer.padding == "valid":
        return {}
    if tuple(layer.strides) == (1, 1):
        totals = [k - 1 for k in layer.pool_size]
        return {"pads": [t // 2 for t in totals] + [t - t // 2 for t in totals]}
    return {"auto_pad": "SAME_UPPER"}


@emits(keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
def _pool(b, layer, inputs, name):
    """Keras "same" pooling ignores the padding (max) or leaves it out of the count (average,
    as TensorFlow does): ONNX's defaults."""
    op = "MaxPool" if isinstance(layer, keras.layers.MaxPooling2D) else "AveragePool"
    out = b.node(
        op,
        [spatial(inputs, layer).name],
        name,
        kernel_shape=list(layer.pool_size),
        strides=list(layer.strides),
        **_pool_padding(layer),
    )
    return Value(out, 4)


@emits(keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
def _global_pool(b, layer, inputs, name):
    average = isinstance(layer, keras.layers.GlobalAveragePooling2D)
    op = "GlobalAveragePool" if average else "GlobalMaxPool"
    x = spatial(inputs, layer)
    if layer.keepdims:
        return Value(b.node(op, [x.name], name), 4)
    pooled = b.node(op, [x.name], f"{name}.pool")
    return Value(b.node("Flatten", [pooled], name, axis=1), 2)


def _adaptive_check(layer) -> str | None:
    return None if len(layer.output_size) == 2 else f"output_size={layer.output_size}"


@emits(AdaptiveAveragePooling2D, keras.layers.AdaptiveAveragePooling2D, check=_adaptive_check)
def _adaptive_average_pool(b, layer, inputs, name):
    """PyTorch's adaptive windows ``floor(i*H/n) .. ceil((i+1)*H/n)`` at any (run-time) size:
    0/1 window masks multiplied with the map, divided by each window's area."""
    x = spatial(inputs, layer)
    rows, row_counts = _bin_mask(b, x, 2, layer.output_size[0], f"{name}.rows")
    cols, col_counts = _bin_mask(b, x, 3, layer.output_size[1], f"{name}.cols")
    sums = b.node("MatMul", [rows, x.name], f"{name}.row_sums")  # (N, C, n_h, W)
    cols_t = b.node("Transpose", [cols], f"{name}.cols_t", perm=[1, 0])
    sums = b.node("MatMul", [sums, cols_t], f"{name}.sums")  # (N, C, n_h, n_w)
    row_counts = b.node("Unsqueeze", [row_counts, b.constant([1])], f"{name}.row_counts")
    area = b.node("Mul", [row_counts, col_counts], f"{name}.area")
    return Value(b.node("Div", [sums, area], name), 4)


def _bin_mask(b, x: Value, axis: int, bins: int, name: str) -> tuple[str, str]:
    """(bins, size) float mask of the windows along ``axis`` and each window's length."""
    size = b.dims(x, axis, axis + 1, name)  # [size]
    index = b.constant(np.arange(bins))
    start = b.node(
        "Div", [b.node("Mul", [index, size], f"{name}.i_size"), b.constant(bins)], f"{name}.start"
    )
    end_numerator = b.node("Mul", [b.constant(np.arange(1, bins + 1)), size], f"{name}.j_size")
    end_numerator = b.node("Add", [end_numerator, b.constant(bins - 1)], f"{name}.end_num")
    end = b.node("Div", [end_numerator, b.constant(bins)], f"{name}.end")
    scalar = b.node("Squeeze", [size, b.constant([0])], f"{name}.size")
    position = b.node("Range", [b.constant(0), scalar, b.constant(1)], f"{name}.position")
    position = b.node("Unsqueeze", [position, b.constant([0])], f"{name}.position_row")
    start = b.node("Unsqueeze", [start, b.constant([1])], f"{name}.start_col")
    end_col = b.node("Unsqueeze", [end, b.constant([1])], f"{name}.end_col")
    inside = b.node(
        "And",
        [
            b.node("GreaterOrEqual", [position, start], f"{name}.after_start"),
            b.node("Less", [position, end_col], f"{name}.before_end"),
        ],
        f"{name}.inside",
    )
    mask = b.node("Cast", [inside], f"{name}.mask", to=FLOAT)
    start_flat = b.node("Squeeze", [start, b.constant([1])], f"{name}.start_flat")
    length = b.node("Sub", [end, start_flat], f"{name}.length_int")
    return mask, b.node("Cast", [length], f"{name}.length", to=FLOAT)


# --- resizing -------------------------------------------------------------------------------


@emits(Resize)
def _resize(b, layer, inputs, name):
    """PyTorch's legacy nearest (as TensorFlow's kernel: source ``floor(dst * (in / out))``
    in float32, by gathers; by ONNX's Resize for power-of-two scales, where it is the same),
    or bilinear with half-pixel centres / aligned corners (ONNX's Resize)."""
    pair = isinstance(inputs, (list, tuple)) and len(inputs) == 2
    x = inputs[0] if pair else single(inputs)
    if x.rank != 4:
        raise UnsupportedLayerError(f"layer {layer.name!r}: expected a 4-D input")
    scale = None if pair else int(layer.scale)
    if scale is not None and (layer.interpolation == "bilinear" or scale & (scale - 1) == 0):
        scales = b.constant([1.0, 1.0, scale, scale], np.float32)
        return Value(b.node("Resize", [x.name, "", scales], name, **_resize_mode(layer)), 4)
    if pair:
        target = b.dims(inputs[1], 2, 4, f"{name}.like")
    else:
        target = b.node("Mul", [b.dims(x, 2, 4, f"{name}.in"), b.constant(scale)], f"{name}.target")
    if layer.interpolation == "bilinear":
        sizes = b.node("Concat", [b.dims(x, 0, 2, f"{name}.nc"), target], f"{name}.sizes", axis=0)
        return Value(b.node("Resize", [x.name, "", "", sizes], name, **_resize_mode(layer)), 4)
    out = x.name
    for axis in (2, 3):
        length = b.node("Gather", [target, b.constant([axis - 2])], f"{name}.out{axis}")  # [out]
        out = b.node(
            "Gather",
            [out, _nearest_sources(b, x, axis, length, f"{name}.source{axis}")],
            name if axis == 3 else f"{name}.rows",
            axis=axis,
        )
    return Value(out, 4)


def _resize_mode(layer) -> dict:
    if layer.interpolation == "nearest":
        return {
            "mode": "nearest",
            "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "floor",
        }
    transform = "align_corners" if layer.align_corners else "half_pixel"
    return {"mode": "linear", "coordinate_transformation_mode": transform}


def _nearest_sources(b, x: Value, axis: int, length: str, name: str) -> str:
    """``min(floor(dst * float32(in / out)), in - 1)`` for ``dst`` in ``0 .. out - 1``."""
    size = b.dims(x, axis, axis + 1, name)
    ratio = b.node(
        "Div",
        [
            b.node("Cast", [size], f"{name}.in_f", to=FLOAT),
            b.node("Cast", [length], f"{name}.out_f", to=FLOAT),
        ],
        f"{name}.ratio",
    )
    scalar = b.node("Squeeze", [length, b.constant([0])], f"{name}.out_scalar")
    position = b.node("Range", [b.constant(0), scalar, b.constant(1)], f"{name}.dst")
    position = b.node("Cast", [position], f"{name}.dst_f", to=FLOAT)
    source = b.node("Floor", [b.node("Mul", [position, ratio], f"{name}.scaled")], f"{name}.floor")
    source = b.node("Cast", [source], f"{name}.index", to=INT64)
    last = b.node("Sub", [size, b.constant([1])], f"{name}.last")
    return b.node("Min", [source, last], name)
