"""Exports for tools outside Python-TF: ONNX (optionally taking raw 8-bit images) and
bioimage.io packages."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

from micronet_tf.files import atomic_output_path
from micronet_tf.models.layers import RawImageNormalization

FORMATS = ("onnx", "bioimageio")
CONVERTERS = ("auto", "direct", "tf2onnx")
# Protobuf cannot serialise one message above 2 GiB: bigger models keep their tensors in a
# ``<name>.data`` file beside the ``.onnx`` (ONNX's external-data format).
_PROTOBUF_LIMIT = 2**31 - 2**24


RAW_INPUT_DTYPES = ("uint8", "uint16")


def with_preprocessing(model: keras.Model, input_dtype: str = "uint8") -> keras.Model:
    """``model`` behind its own intensity normalisation (the one it was trained with:
    ``/ dtype max`` or each image's percentiles) and ImageNet's mean / std: takes raw RGB
    images of ``input_dtype`` (``"uint8"`` or ``"uint16"``)."""
    from micronet_tf.models import input_normalization

    if input_dtype not in RAW_INPUT_DTYPES:
        raise ValueError(f"input_dtype={input_dtype!r}: expected one of {RAW_INPUT_DTYPES}")
    inputs = keras.Input(model.input_shape[1:], dtype=input_dtype, name="raw_image")
    layer = RawImageNormalization(
        normalization=input_normalization(model).to_config(),
        maximum=float(np.iinfo(input_dtype).max),
        name="imagenet_normalization",
    )
    return keras.Model(inputs, model(layer(inputs)), name=f"{model.name}_raw_input")


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


def _write_model(model, path: Path, data_name: str) -> None:
    """Write ``model`` (a ModelProto, serialised once) to ``path`` as one file, or, above
    protobuf's 2 GiB limit, with its tensors in ``data_name`` beside it."""
    import onnx

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


def _tf2onnx_model(model: keras.Model, opset: int | None):
    """The ONNX ModelProto of Keras' own export (tf2onnx, patched by ``_lean_tf2onnx``)."""
    import onnx

    # 128: a multiple of 32 that every architecture accepts (PAN needs at least 128)
    sample = np.zeros((1, 128, 128, model.input_shape[-1]), model.inputs[0].dtype)
    model(sample)  # Keras exports only models that have been called
    result: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        with _lean_tf2onnx(result):
            kwargs = {"opset_version": opset} if opset is not None else {}
            # The patched converter returns the model instead of writing this path.
            model.export(str(Path(folder, "unused.onnx")), format="onnx", verbose=False, **kwargs)
        for name, data in result["tensors"].name_to_tensor_data.items():
            Path(folder, name).write_bytes(data)
        Path(folder, "model.onnx").write_bytes(result["proto"].SerializeToString())
        del result
        return onnx.load(str(Path(folder, "model.onnx")), load_external_data=True)


def export_onnx(
    model: keras.Model,
    out: str | os.PathLike,
    *,
    opset: int | None = None,
    preprocessing: bool = False,
    input_dtype: str = "uint8",
    converter: str = "auto",
) -> Path:
    """ONNX with NHWC input and outputs and dynamic batch, height and width.

    ``preprocessing``: the graph takes raw ``input_dtype`` images and normalises them as the
    model was trained to (:func:`with_preprocessing`); else it takes normalised float32 ones.

    ``converter``: ``"direct"`` writes the Keras graph layer by layer
    (:mod:`micronet_tf.onnx_graph`; ``opset`` None: 17), at about the cost of the model's
    weights; ``"tf2onnx"`` goes through Keras' export and tf2onnx (``opset`` None: tf2onnx's
    own), which needs far more time and memory; ``"auto"`` is ``"direct"`` when that converter
    can write every layer, else tf2onnx with a warning naming the layers it cannot.
    Written through a temporary file; an existing ``out`` is replaced only on success. Models
    above 2 GiB keep their tensors in ``<out>.data`` beside it (ONNX external data).
    """
    from micronet_tf import onnx_graph

    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"out={str(out)!r}: expected a .onnx file name")
    if converter not in CONVERTERS:
        raise ValueError(f"converter={converter!r}: expected one of {CONVERTERS}")
    if converter != "tf2onnx" and opset is not None:
        onnx_graph.check_opset(opset)
    if preprocessing:
        model = with_preprocessing(model, input_dtype)
    proto = None
    if converter != "tf2onnx":
        try:
            proto = onnx_graph.keras_to_onnx(model, opset or onnx_graph.DEFAULT_OPSET)
        except onnx_graph.UnsupportedLayerError as error:
            if converter == "direct":
                raise
            warnings.warn(
                f"export_onnx: {error}; exporting through tf2onnx instead (slower, more memory)",
                stacklevel=2,
            )
    if proto is None:
        proto = _tf2onnx_model(model, opset)
    with atomic_output_path(out) as temporary:
        _write_model(proto, temporary, f"{out.name}.data")
    del proto
    import onnx

    onnx.checker.check_model(str(out))
    return out


def zoo_onnx_file(
    name: str,
    *,
    encoder: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    trust_unverified: bool | None = None,
    progress: bool | None = None,
) -> Path:
    """Zoo entry ``name``'s encoder as ONNX, verified: the published file
    (:func:`micronet_tf.zoo.download`), else exported into the cache from its Keras weights
    (``*.converted.onnx`` beside its sha256)."""
    from micronet_tf import zoo
    from micronet_tf.encoders import get_encoder, zoo_encoder
    from micronet_tf.weights import load_zoo_weights

    options = {"cache_dir": cache_dir, "trust_unverified": trust_unverified, "progress": progress}
    entry = zoo.current_manifest(cache_dir).resolve(name, encoder)
    published = zoo.published_file(entry.key, "onnx", **options)
    if published is not None:
        return published
    target = zoo.entry_cache_dir(entry, cache_dir) / f"{entry.name}-{entry.version}.converted.onnx"
    if zoo.verified_by_record(target):
        return target
    encoder_model = get_encoder(entry.encoder)
    load_zoo_weights(
        encoder_model, entry.key, encoder=entry.encoder, zoo_encoder=zoo_encoder, **options
    )
    export_onnx(encoder_model, target)
    zoo.write_hash_record(target)
    return target
