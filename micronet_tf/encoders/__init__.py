"""MicroNet encoders: Keras 3 twins of segmentation_models_pytorch's encoders.

``get_encoder`` returns a ``keras.Model`` whose outputs are the ``depth + 1`` feature maps that
smp's encoder ``forward`` returns (for most families the input itself, then strides 2, 4, 8,
16, 32; for VGG the stride-1 feature first), channels-last. Building lives in
:mod:`micronet_tf.encoders._build`, weights resolution in :mod:`micronet_tf.weights`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from micronet_tf.encoders._build import (
    MAX_DEPTH,
    build_classifier,
    build_encoder,
    dilatable_encoders,
    list_encoders,
    unused_checkpoint_prefixes,
)
from micronet_tf.encoders._registry import EncoderSpec, encoder_spec
from micronet_tf.weights import WeightsArg, ZooEncoder, apply_weights

__all__ = [
    "MAX_DEPTH",
    "EncoderSpec",
    "dilatable_encoders",
    "encoder_spec",
    "get_classifier",
    "get_encoder",
    "list_encoders",
    "unused_checkpoint_prefixes",
    "zoo_encoder",
]


def zoo_encoder(name: str) -> ZooEncoder:
    """How the weights resolver builds encoder ``name`` for a model-zoo entry (depth 5, default
    options) and maps NASA's checkpoint onto it."""
    spec = encoder_spec(name)
    return ZooEncoder(
        build=lambda: build_encoder(name)[0],
        key_renames=spec.key_renames,
        ignored_prefixes=spec.encoder_ignored_prefixes,
    )


def get_encoder(
    name: str,
    weights: WeightsArg = None,
    input_shape: Sequence[int | None] = (None, None, 3),
    depth: int = 5,
    output_stride: int = 32,
    *,
    model_name: str | None = None,
    **options: Any,
) -> keras.Model:
    """Build the encoder ``name`` (see :func:`list_encoders`) and optionally load weights.

    Args:
        weights: ``None`` (random), a model-zoo name (``"micronet"``,
            ``"imagenet-micronet"``, ``"resnet50.micronet@v1.1"``; see :mod:`micronet_tf.zoo`),
            a Keras ``.weights.h5`` file, or a PyTorch checkpoint (``.pth`` / ``.pth.tar``,
            NASA's format) converted on the fly (needs ``torch``).
        depth: number of downsampling stages, 1..5; the model has ``depth + 1`` outputs.
        output_stride: 32, or 16 / 8 to replace the last strides by dilation (for DeepLab);
            encoders that smp cannot dilate refuse it.
        options: the encoder family's build options (``encoder_spec(name).options``).
    """
    model, unused = build_encoder(
        name, input_shape, depth, output_stride, model_name=model_name, **options
    )
    apply_weights(
        model,
        weights,
        ignore_prefixes=unused,
        renames=encoder_spec(name).key_renames,
        encoder=name,
        zoo_encoder=zoo_encoder,
    )
    return model


def get_classifier(
    name: str,
    classes: int,
    weights: WeightsArg = None,
    input_shape: Sequence[int | None] = (None, None, 3),
    *,
    model_name: str | None = None,
    **options: Any,
) -> keras.Model:
    """The classification network MicroNet was pre-trained as (54 classes), returning logits:
    the family's original trunk and head (ResNet: average + ``fc``; DenseNet: ReLU, average,
    ``classifier``; MobileNetV2: average, dropout, ``classifier.1``; VGG: adaptive 7x7 average,
    ``classifier.0/3/6``).

    A checkpoint without head weights (NASA publishes encoders only) loads the trunk and leaves
    the head randomly initialised, with a warning.
    """
    spec = encoder_spec(name)
    model = build_classifier(name, classes, input_shape, model_name=model_name, **options)
    apply_weights(
        model,
        weights,
        optional_prefixes=spec.head_prefixes,
        ignore_prefixes=spec.ignored_prefixes,
        renames=spec.key_renames,
        encoder=name,
        zoo_encoder=zoo_encoder,
    )
    return model
