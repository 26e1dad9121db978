"""The pieces every ONNX layer emitter shares: values (4-D ones held NCHW inside the graph),
a graph builder that writes nodes and initializers in place, and the registry of emitters
(filled by :mod:`micronet_tf.onnx_layers` and :mod:`micronet_tf.onnx_resampling`).

A 4-D value is held channels-first (``Value.rank == 4``), every other rank in Keras' own
layout, so convolutions need no per-layer transposes; Keras axes map with :func:`onnx_axis`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import onnx
from onnx import TensorProto, helper

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
INT64_MAX = np.iinfo(np.int64).max
# Keras NHWC axis -> axis of the NCHW value that holds it.
_NCHW_AXIS = (0, 2, 3, 1)


class UnsupportedLayerError(ValueError):
    """A layer (type or configuration) the direct ONNX converter cannot express."""


@dataclass(frozen=True)
class Value:
    """An ONNX tensor standing for a Keras tensor: 4-D ones are stored NCHW."""

    name: str
    rank: int
    dtype: int = FLOAT
    origin: str = ""  # the Keras layer that made it (names the graph's outputs)


def onnx_axis(value: Value, axis: int) -> int:
    """The ONNX axis of Keras axis ``axis`` (negative allowed) of ``value``."""
    axis = axis % value.rank
    return _NCHW_AXIS[axis] if value.rank == 4 else axis


class GraphBuilder:
    """Appends nodes and initializers to ``graph`` in place (weights are copied once, into
    the initializer's ``raw_data``), with unique names and shared small constants."""

    def __init__(self, graph: onnx.GraphProto, opset: int) -> None:
        self.graph = graph
        self.opset = opset
        self._names: set[str] = set()
        self._constants: dict[tuple, str] = {}

    def fresh(self, base: str) -> str:
        name, index = base, 1
        while name in self._names:
            name, index = f"{base}_{index}", index + 1
        self._names.add(name)
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, **attributes) -> str:
        output = self.fresh(name)
        self.graph.node.append(helper.make_node(op, list(inputs), [output], output, **attributes))
        return output

    def weight(self, array: np.ndarray, name: str) -> str:
        """An initializer holding ``array`` (float32 unless integer)."""
        array = np.asarray(array)
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32, copy=False)
        tensor = self.graph.initializer.add()
        tensor.name = self.fresh(name)
        tensor.data_type = INT64 if array.dtype == np.int64 else FLOAT
        tensor.dims.extend(array.shape)
        tensor.raw_data = np.ascontiguousarray(array).tobytes()
        return tensor.name

    def constant(self, values, dtype=np.int64) -> str:
        """A small constant (``dtype`` int64 or float32), shared by every node that needs it."""
        array = np.asarray(values, dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            label = "_".join(str(v) for v in array.ravel()[:4]).replace("-", "m")
            self._constants[key] = self.weight(array, f"const_{array.dtype.name}_{label}")
        return self._constants[key]

    def dims(self, value: Value, start: int, end: int, name: str) -> str:
        """``shape(value)[start:end]`` of the ONNX tensor, as a 1-D int64 tensor."""
        shape = self.node("Shape", [value.name], f"{name}.shape")
        return self.node(
            "Slice",
            [shape, self.constant([start]), self.constant([end]), self.constant([0])],
            f"{name}.dims",
        )


Emitter = Callable[[GraphBuilder, keras.layers.Layer, "Value | list[Value]", str], Value]
_EMITTERS: dict[type, Emitter] = {}
_CHECKS: dict[type, Callable[[keras.layers.Layer], str | None]] = {}


def emits(*classes: type, check: Callable[[keras.layers.Layer], str | None] | None = None):
    def register(function: Emitter) -> Emitter:
        for cls in classes:
            _EMITTERS[cls] = function
            if check is not None:
                _CHECKS[cls] = check
        return function

    return register


def unsupported_reason(layer: keras.layers.Layer) -> str | None:
    """Why ``layer`` cannot be converted (its type, or the part of its config), else None.
    Types match exactly: a subclass may compute something else."""
    if type(layer) not in _EMITTERS:
        if not isinstance(layer, keras.layers.Layer):
            return f"{type(layer).__name__} (a keras.ops call, not a layer)"
        return type(layer).__name__
    check = _CHECKS.get(type(layer))
    reason = check(layer) if check is not None else None
    if reason is None and getattr(layer, "data_format", "channels_last") != "channels_last":
        reason = "data_format='channels_first'"
    return None if reason is None else f"{type(layer).__name__}({reason})"


def emit(builder: GraphBuilder, layer, inputs, name: str) -> Value:
    """The nodes of ``layer`` applied to ``inputs`` (a Value or a list of them)."""
    reason = unsupported_reason(layer)
    if reason is not None:
        raise UnsupportedLayerError(f"layer {layer.name!r}: {reason} has no ONNX emitter")
    return _EMITTERS[type(layer)](builder, layer, inputs, name)


def to_numpy(variable) -> np.ndarray:
    return keras.ops.convert_to_numpy(variable)


def single(inputs) -> Value:
    if isinstance(inputs, (list, tuple)):
        if len(inputs) != 1:
            raise UnsupportedLayerError(f"expected one input, got {len(inputs)}")
        return inputs[0]
    return inputs


def spatial(inputs, layer) -> Value:
    value = single(inputs)
    if value.rank != 4:
        raise UnsupportedLayerError(f"layer {layer.name!r}: expected a 4-D input")
    return value
