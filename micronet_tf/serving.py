"""TensorFlow SavedModel export for TF Serving, TensorFlow Java and the viewers that run
SavedModel bundles: raw images in, class probabilities and the class-index mask out.

The ``serving_default`` signature takes a uint8 batch ``images`` (B x H x W x C, any H and W, C
= 1 or 3; ``serving_uint16`` the same in 16 bit), scales it to [0, 1] as training did (by its
dtype's range, or by each image's percentiles for a model trained with
``normalization="percentile"``), normalises it with ImageNet's mean / std, pads it by reflection
at the bottom and right to the model's size rule, runs the model, turns its logits into
probabilities and crops back: ``probabilities`` (B x H x W x classes, float32) and ``mask`` (B x
H x W, uint8: argmax, or probability > 0.5 for one channel) -- :func:`micronet_tf.predict` on
one tile with no overlap, in a graph that needs no micronet-tf to load.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from micronet_tf.prediction import _keras_activation, input_rule
from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

SIGNATURES = {"serving_default": tf.uint8, "serving_uint16": tf.uint16}


def _reflect_pad(images: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Reflection padding at the bottom / right up to ``height`` x ``width``, in steps when
    the padding is larger than the image (as ``numpy.pad(mode="reflect")`` does)."""
    for _ in range(8):  # each step at most doubles a side less one: 2 pixels reach 129
        shape = tf.shape(images)
        pad_h = tf.minimum(height - shape[1], shape[1] - 1)
        pad_w = tf.minimum(width - shape[2], shape[2] - 1)
        images = tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT")
    return images


def _serving_function(model: keras.Model, dtype: tf.DType):
    from micronet_tf.models import input_normalization
    from micronet_tf.models.layers import scale_to_unit_range

    multiple, minimum = input_rule(model)
    activation = _keras_activation(model, "auto")
    scale = float(dtype.max)
    normalization = input_normalization(model).to_config()
    mean = tf.constant(IMAGENET_MEAN, tf.float32)
    std = tf.constant(IMAGENET_STD, tf.float32)

    def serve(images):
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        rgb = tf.cond(
            shape[3] == 1, lambda: tf.tile(images[..., :1], [1, 1, 1, 3]), lambda: images[..., :3]
        )
        x = (scale_to_unit_range(rgb, normalization, scale) - mean) / std

        def padded(side):
            return tf.maximum((side + multiple - 1) // multiple * multiple, minimum)

        x = _reflect_pad(x, padded(height), padded(width))
        out = tf.cast(model(x, training=False), tf.float32)
        channels = out.shape[-1]
        if activation == "logits":
            out = tf.sigmoid(out) if channels == 1 else tf.nn.softmax(out, axis=-1)
        elif activation == "exp":
            out = tf.exp(out)
        out = out[:, :height, :width, :]
        if channels == 1:
            mask = tf.cast(out[..., 0] > 0.5, tf.uint8)
        else:
            mask = tf.cast(tf.argmax(out, axis=-1), tf.uint8)
        return {"probabilities": out, "mask": mask}

    return serve


def export_savedmodel(
    model: keras.Model, out: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write ``model`` as a SavedModel folder with the signatures described in this module's
    docstring (``saved_model_cli show --dir OUT --all`` lists them). An existing ``out`` is
    refused unless ``overwrite``; the folder appears complete or not at all."""
    from keras.export import ExportArchive

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"out={os.fspath(out)!r} exists: pass --force (overwrite=True) to replace it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".partial-{out.name}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    archive = ExportArchive()
    archive.track(model)
    for name, dtype in SIGNATURES.items():
        archive.add_endpoint(
            name,
            tf.function(_serving_function(model, dtype)),
            input_signature=[tf.TensorSpec((None, None, None, None), dtype, name="images")],
        )
    try:
        archive.write_out(str(partial), verbose=False)
        if out.exists():
            old = out.parent / f".partial-old-{out.name}-{os.getpid()}"
            os.replace(out, old)
            os.replace(partial, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out
