"""Keras functional graph to ONNX graph, layer by layer: the direct ONNX converter.

It walks the model's graph (nested functional models and ``Sequential`` ones included) and
asks each layer's emitter (:mod:`micronet_tf.onnx_layers`, :mod:`micronet_tf.onnx_resampling`)
for its nodes, with the layer's weights as initializers. The graph takes and returns NHWC
tensors with dynamic batch, height and width; inside it runs NCHW (one ``Transpose`` after
each 4-D input and one before each 4-D output). No graph freezing, no optimizer passes: the
cost is one copy of the weights into the ModelProto (onnxruntime fuses at load time).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import onnx
from onnx import helper

import micronet_tf.onnx_layers  # noqa: F401  (registers the emitters)
import micronet_tf.onnx_resampling  # noqa: F401  (registers the emitters)
from micronet_tf.onnx_builder import (
    GraphBuilder,
    UnsupportedLayerError,
    Value,
    emit,
    unsupported_reason,
)

# 13: Softmax over one axis, Squeeze / Unsqueeze / Resize with tensor inputs.
MIN_OPSET = 13
DEFAULT_OPSET = 17


def _is_functional(layer) -> bool:
    return (
        isinstance(layer, keras.Model)
        and not isinstance(layer, keras.Sequential)
        and hasattr(layer, "_nodes_by_depth")
    )


def _leaf_operations(model: keras.Model):
    """Every operation of ``model``'s graph (``keras.ops`` calls too), nested models opened."""
    operations = model.layers if isinstance(model, keras.Sequential) else model.operations
    for operation in operations:
        if _is_functional(operation) or isinstance(operation, keras.Sequential):
            yield from _leaf_operations(operation)
        elif not isinstance(operation, keras.layers.InputLayer):
            yield operation


def unsupported_layers(model: keras.Model) -> list[str]:
    """The layer types (with the unsupported part of their config) in ``model``, nested
    models included, that the direct converter cannot write; empty when it can."""
    if not _is_functional(model) and not isinstance(model, keras.Sequential):
        return [type(model).__name__]
    reasons = {unsupported_reason(operation) for operation in _leaf_operations(model)}
    return sorted(reason for reason in reasons if reason is not None)


def check_opset(opset: int) -> int:
    """``opset`` if the direct converter can write it, else a ValueError saying the range."""
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset={opset!r}: the direct ONNX converter writes opsets {MIN_OPSET} to "
            f"{newest} (default {DEFAULT_OPSET}); pass converter='tf2onnx' for older ones"
        )
    return opset


def _run(builder: GraphBuilder, model: keras.Model, inputs, scope: str):
    """Emit ``model``'s layers on ``inputs`` (Values); returns its outputs as Values.

    Keras' own graph execution (``Function._run_through_graph``, the loop ``Functional.call``
    runs) visits the nodes in order and fills in each call's arguments; here each call
    writes ONNX nodes instead of computing.
    """
    scope = f"{scope}{model.name}/"

    def call(layer, *args, **kwargs):
        if _is_functional(layer) or isinstance(layer, keras.Sequential):
            outputs = _run(builder, layer, args[0], scope)
        else:
            outputs = emit(builder, layer, args[0], f"{scope}{layer.name}")
        if isinstance(outputs, Value):  # the name an output of the whole graph gets
            return dataclasses.replace(outputs, origin=layer.name)
        return outputs

    if isinstance(model, keras.Sequential):
        value = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        for layer in model.layers:
            value = call(layer, value)
        return value
    return model._run_through_graph(inputs, operation_fn=lambda layer: layer, call_fn=call)


def _tensor_info(name: str, dtype: int, dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, dims)


def keras_to_onnx(model: keras.Model, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The ONNX model of ``model``: NHWC inputs and outputs (same order and count), dynamic
    batch / height / width, NCHW inside. Raises UnsupportedLayerError naming the layer types
    it cannot write (see :func:`unsupported_layers`)."""
    check_opset(opset)
    missing = unsupported_layers(model)
    if missing:
        raise UnsupportedLayerError(
            f"model {model.name!r}: the direct ONNX converter has no emitter for "
            f"{', '.join(missing)}"
        )
    proto = onnx.ModelProto()
    proto.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    proto.opset_import.add(domain="", version=opset)
    proto.producer_name = "micronet-tf"
    proto.graph.name = model.name
    builder = GraphBuilder(proto.graph, opset)

    values = []
    for tensor in model.inputs:
        name = builder.fresh(tensor.name)
        dtype = helper.np_dtype_to_tensor_dtype(np.dtype(tensor.dtype))
        dims = ["batch", "height", "width", *tensor.shape[3:]]
        if len(tensor.shape) != 4:
            dims = ["batch", *tensor.shape[1:]]
        proto.graph.input.append(_tensor_info(name, dtype, dims))
        value = Value(name, len(tensor.shape), dtype)
        if value.rank == 4:
            value = Value(
                builder.node("Transpose", [name], f"{name}.nchw", perm=[0, 3, 1, 2]), 4, dtype
            )
        values.append(value)
    outputs = _run(builder, model, values, "")
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    for value, tensor in zip(outputs, model.outputs):
        name = builder.fresh(value.origin or "output")
        if value.rank == 4:
            builder.graph.node.append(
                helper.make_node("Transpose", [value.name], [name], name, perm=[0, 2, 3, 1])
            )
            dims = ["batch", f"{name}_height", f"{name}_width", tensor.shape[-1]]
        else:
            builder.graph.node.append(helper.make_node("Identity", [value.name], [name], name))
            dims = ["batch", *tensor.shape[1:]]
        proto.graph.output.append(_tensor_info(name, value.dtype, dims))
    return proto
