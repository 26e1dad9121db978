"""Exports for tools outside Python-TF: ONNX (optionally taking raw 8-bit images) and
bioimage.io packages."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

from micronet_tf._files import atomic_output_path
from micronet_tf.layers import RawImageNormalization

FORMATS = ("onnx", "bioimageio")
# Protobuf cannot serialise one message above 2 GiB: bigger models keep their tensors in a
# ``<name>.data`` file beside the ``.onnx`` (ONNX's external-data format).
_PROTOBUF_LIMIT = 2**31 - 2**24


def with_preprocessing(model: keras.Model) -> keras.Model:
    """``model`` behind ImageNet normalisation: takes raw 0-255 RGB (uint8 or float) images."""
    inputs = keras.Input(model.input_shape[1:], dtype="uint8", name="raw_image")
    x = RawImageNormalization(name="imagenet_normalization")(inputs)
    return keras.Model(inputs, model(x), name=f"{model.name}_raw_input")


@contextlib.contextmanager
def _lean_tf2onnx(result: dict) -> Iterator[None]:
    """Make Keras' tf2onnx export (pinned tf2onnx 1.17) cost what the model is worth.

    tf2onnx re-serialises every constant into its node protos after each of its ~40 optimizer
    passes, and protobuf keeps each copy until the conversion ends (13.9 GB peak for
    UNet++-resnet50, of 100 MB of weights); without external tensor storage it also deep-copies
    the graph before every pass. Here the conversion runs with external tensor storage and
    without the intermediate proto refresh (``make_model`` does the final one); the model
    proto and its tensors land in ``result`` instead of a file.
    """
    import tf2onnx.convert
    from tf2onnx.optimizer.optimizer_base import GraphOptimizerBase

    original_convert, original_optimize = tf2onnx.convert.from_function, GraphOptimizerBase.optimize

    def convert(function, input_signature=None, **kwargs):
        kwargs.update(large_model=True, output_path=None)
        result["proto"], result["tensors"] = original_convert(function, input_signature, **kwargs)
        return result["proto"], result["tensors"]

    def optimize(self, graph, iteration):
        self.opt_iteration = iteration
        graph = self._optimize(graph)
        graph.delete_unused_nodes(graph.outputs)
        return graph

    tf2onnx.convert.from_function, GraphOptimizerBase.optimize = convert, optimize
    try:
        yield
    finally:
        tf2onnx.convert.from_function, GraphOptimizerBase.optimize = (
            original_convert,
            original_optimize,
        )


def _save_onnx(proto, tensors, path: Path, data_name: str) -> None:
    """Write tf2onnx's external-storage model to ``path`` as one file (tensors embedded), or,
    above protobuf's 2 GiB limit, with its tensors in ``data_name`` beside it."""
    import onnx

    with tempfile.TemporaryDirectory() as folder:
        for name, data in tensors.name_to_tensor_data.items():
            Path(folder, name).write_bytes(data)
        Path(folder, "model.onnx").write_bytes(proto.SerializeToString())
        model = onnx.load(str(Path(folder, "model.onnx")), load_external_data=True)
    if model.ByteSize() < _PROTOBUF_LIMIT:
        onnx.save_model(model, str(path))
    else:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            location=data_name,
            all_tensors_to_one_file=True,
        )


def export_onnx(
    model: keras.Model,
    out: str | os.PathLike,
    *,
    opset: int | None = None,
    preprocessing: bool = False,
) -> Path:
    """ONNX with dynamic batch, height and width (``opset`` None: tf2onnx's default).

    Written through a temporary file; an existing ``out`` is replaced only on success. Models
    above 2 GiB keep their tensors in ``<out>.data`` beside it (ONNX external data).
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"out={str(out)!r}: expected a .onnx file name")
    if preprocessing:
        model = with_preprocessing(model)
    # 128: a multiple of 32 that every architecture accepts (PAN needs at least 128)
    sample = np.zeros((1, 128, 128, model.input_shape[-1]), "uint8" if preprocessing else "float32")
    model(sample)  # Keras exports only models that have been called
    result: dict = {}
    with _lean_tf2onnx(result):
        kwargs = {"opset_version": opset} if opset is not None else {}
        # The patched converter returns the model instead of writing this path.
        model.export(str(out), format="onnx", verbose=False, **kwargs)
    with atomic_output_path(out) as temporary:
        _save_onnx(result["proto"], result["tensors"], temporary, f"{out.name}.data")
    import onnx

    onnx.checker.check_model(str(out))
    return out
