"""Exports for tools outside Python-TF: ONNX (optionally taking raw 8-bit images) and
bioimage.io packages."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from micronet_tf._files import atomic_output_path
from micronet_tf.layers import RawImageNormalization

FORMATS = ("onnx", "bioimageio")


def with_preprocessing(model: keras.Model) -> keras.Model:
    """``model`` behind ImageNet normalisation: takes raw 0-255 RGB (uint8 or float) images."""
    inputs = keras.Input(model.input_shape[1:], dtype="uint8", name="raw_image")
    x = RawImageNormalization(name="imagenet_normalization")(inputs)
    return keras.Model(inputs, model(x), name=f"{model.name}_raw_input")


def export_onnx(model: keras.Model, out: str | os.PathLike, *, opset: int | None = None,
                preprocessing: bool = False) -> Path:
    """ONNX with dynamic batch, height and width (``opset`` None: tf2onnx's default)."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"out={str(out)!r}: expected a .onnx file name")
    if preprocessing:
        model = with_preprocessing(model)
    # 128: a multiple of 32 that every architecture accepts (PAN needs at least 128)
    sample = np.zeros((1, 128, 128, model.input_shape[-1]),
                      "uint8" if preprocessing else "float32")
    model(sample)  # Keras exports only models that have been called
    with atomic_output_path(out) as temporary:
        kwargs = {"opset_version": opset} if opset is not None else {}
        model.export(str(temporary), format="onnx", verbose=False, **kwargs)
    import onnx

    onnx.checker.check_model(str(out))
    return out
