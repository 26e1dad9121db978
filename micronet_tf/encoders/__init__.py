"""MicroNet encoders: Keras 3 twins of segmentation_models_pytorch's encoders.

``get_encoder`` returns a ``keras.Model`` whose outputs are the ``depth + 1`` feature maps that
smp's encoder ``forward`` returns (the input itself, then strides 2, 4, 8, 16, 32), channels-last.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from micronet_tf._weights import WeightsArg, apply_weights
from micronet_tf.encoders import resnet  # noqa: F401  (registers the ResNet family)
from micronet_tf.encoders._registry import EncoderSpec, encoder_spec, registered_names

__all__ = ["EncoderSpec", "encoder_spec", "get_classifier", "get_encoder", "list_encoders"]

_OUTPUT_STRIDES = (8, 16, 32)


def list_encoders() -> list[str]:
    """Names accepted by :func:`get_encoder` (smp's encoder names)."""
    return registered_names()


def _dilations(output_stride: int) -> dict[int, int]:
    """smp's ``make_dilated``: each stage whose stride exceeds ``output_stride`` is dilated."""
    if output_stride not in _OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {_OUTPUT_STRIDES}, got {output_stride!r}")
    return {stage: stage // output_stride for stage in (16, 32) if stage > output_stride}


def _check_input_shape(input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] is None:
        raise ValueError(
            f"input_shape must be (height, width, channels) with a known channel count, "
            f"got {input_shape!r}"
        )
    return shape


def get_encoder(
    name: str,
    weights: WeightsArg = None,
    input_shape: Sequence[int | None] = (None, None, 3),
    depth: int = 5,
    output_stride: int = 32,
    *,
    model_name: str | None = None,
) -> keras.Model:
    """Build the encoder ``name`` (see :func:`list_encoders`) and optionally load weights.

    Args:
        weights: ``None`` (random), a model-zoo name (``"micronet"``,
            ``"imagenet-micronet"``, ``"resnet50.micronet@v1.1"``; see :mod:`micronet_tf.zoo`),
            a Keras ``.weights.h5`` file, or a PyTorch checkpoint (``.pth`` / ``.pth.tar``,
            NASA's format) converted on the fly (needs ``torch``).
        depth: number of downsampling stages, 1..5; the model has ``depth + 1`` outputs.
        output_stride: 32, or 16 / 8 to replace the last strides by dilation (for DeepLab).
    """
    spec = encoder_spec(name)
    if not 1 <= depth <= 5:
        raise ValueError(f"depth must be in 1..5, got {depth!r}")
    dilations = _dilations(output_stride)
    if dilations and not spec.dilatable:
        raise ValueError(
            f"encoder {name!r} does not support dilation (output_stride={output_stride}), as in "
            "smp; DeepLabV3, DeepLabV3Plus and PAN need it: pick another encoder"
        )
    inputs = keras.Input(_check_input_shape(input_shape), name="image")
    features = spec.build(inputs, depth=depth, dilations=dilations, **spec.params)
    outputs = [layers.Identity(name="identity")(inputs), *features]
    model = keras.Model(inputs, outputs, name=model_name or name)
    skipped_stages = spec.stage_prefixes[depth:]
    apply_weights(
        model,
        weights,
        ignore_prefixes=(spec.head, *(p for stage in skipped_stages for p in stage)),
        encoder=name,
    )
    return model


def get_classifier(
    name: str,
    classes: int,
    weights: WeightsArg = None,
    input_shape: Sequence[int | None] = (None, None, 3),
    *,
    model_name: str | None = None,
) -> keras.Model:
    """Encoder + global average pooling + dense head (``fc`` / ``last_linear``), returning logits.

    This is the classification network MicroNet was pre-trained as (54 classes). A checkpoint
    without head weights (NASA publishes encoders only) loads the trunk and leaves the head
    randomly initialised, with a warning.
    """
    spec = encoder_spec(name)
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be a positive integer, got {classes!r}")
    inputs = keras.Input(_check_input_shape(input_shape), name="image")
    features = spec.build(inputs, depth=5, dilations={}, **spec.params)
    pooled = layers.GlobalAveragePooling2D(name="avgpool")(features[-1])
    logits = layers.Dense(classes, name=spec.head)(pooled)
    model = keras.Model(inputs, logits, name=model_name or f"{name}_classifier")
    apply_weights(model, weights, optional_prefixes=(spec.head,), encoder=name)
    return model
