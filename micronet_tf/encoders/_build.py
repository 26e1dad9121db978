"""Building MicroNet encoders and classifiers from the family registry, without weights
(:mod:`micronet_tf.encoders` adds them): what the converter and the weights resolver build on."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
from keras import layers

from micronet_tf.encoders._registry import (
    EncoderSpec,
    encoder_spec,
    registered_names,
    registered_specs,
)
from micronet_tf.layers import dilation_plan

_OUTPUT_STRIDES = (8, 16, 32)
MAX_DEPTH = 5
# Every public module of this package is one encoder family that registers its variants on
# import; they are imported in NASA's order (which list_encoders() keeps), others after.
_FAMILY_ORDER = (
    "resnet",
    "senet",
    "densenet",
    "dpn",
    "efficientnet",
    "inceptionv4",
    "inceptionresnetv2",
    "xception",
    "mobilenet",
    "vgg",
)


def _import_families() -> None:
    folder = str(Path(__file__).parent)
    found = [m.name for m in pkgutil.iter_modules([folder]) if not m.name.startswith("_")]
    rank = {name: index for index, name in enumerate(_FAMILY_ORDER)}
    for name in sorted(found, key=lambda n: (rank.get(n, len(rank)), n)):
        importlib.import_module(f"micronet_tf.encoders.{name}")


_import_families()


def list_encoders() -> list[str]:
    """Names accepted by :func:`get_encoder` (smp's encoder names)."""
    return registered_names()


def dilatable_encoders() -> list[str]:
    """Encoders that smp (and so micronet-tf) can dilate: what DeepLabV3(+) and PAN accept."""
    return [spec.name for spec in registered_specs() if spec.dilatable]


def _dilations(output_stride: int) -> dict[int, int]:
    """smp's ``make_dilated``: each stage whose stride exceeds ``output_stride`` is dilated by
    ``stage_stride // output_stride``."""
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


def _check_depth(spec: EncoderSpec, depth: int) -> None:
    if not isinstance(depth, int) or not spec.min_depth <= depth <= MAX_DEPTH:
        raise ValueError(
            f"depth must be an integer in {spec.min_depth}..{MAX_DEPTH} for {spec.name!r}, "
            f"got {depth!r}"
        )


def _check_dilatable(spec: EncoderSpec, output_stride: int) -> dict[int, int]:
    dilations = _dilations(output_stride)
    if dilations and not spec.dilatable:
        raise ValueError(
            f"encoder {spec.name!r} cannot be dilated (output_stride={output_stride}): smp "
            f"refuses to dilate {spec.family} encoders, whose downsampling includes pooling. "
            "DeepLabV3, DeepLabV3Plus and PAN (unless encoder_output_stride=32) need a dilated "
            f"encoder; these can be: {', '.join(dilatable_encoders())}"
        )
    return dilations


def _all_outputs(
    spec: EncoderSpec,
    inputs: keras.KerasTensor,
    dilations: dict[int, int],
    options: Mapping[str, Any] | None = None,
    **params: Any,
) -> list[keras.KerasTensor]:
    """The six outputs of smp's depth-5 ``forward`` (stride 1 or the input, then 2..32)."""
    params = {**spec.params, **params, **spec.resolve_options(options)}
    with dilation_plan(dilations):
        features = list(spec.build(inputs, **params))
    if spec.first_output_is_input:
        features.insert(0, layers.Identity(name="identity")(inputs))
    if len(features) != MAX_DEPTH + 1:
        raise RuntimeError(f"{spec.name}: the family builder returned {len(features)} maps")
    return features


def _unbuilt_layers(inputs, outputs: list[keras.KerasTensor], depth: int) -> tuple[str, ...]:
    """Weighted layers that only outputs deeper than ``depth`` depend on: their checkpoint
    tensors are what a shallower encoder ignores (derived from the graph, never hand-listed)."""
    if depth == MAX_DEPTH:
        return ()

    def weighted(model: keras.Model) -> set[str]:
        return {layer.name for layer in model.layers if layer.weights}

    used = weighted(keras.Model(inputs, outputs[: depth + 1]))
    return tuple(sorted(weighted(keras.Model(inputs, outputs)) - used))


def build_encoder(
    name: str,
    input_shape: Sequence[int | None] = (None, None, 3),
    depth: int = 5,
    output_stride: int = 32,
    *,
    model_name: str | None = None,
    **options: Any,
) -> tuple[keras.Model, tuple[str, ...]]:
    """The encoder ``name`` with random weights (arguments as :func:`micronet_tf.encoders.
    get_encoder`), and the checkpoint prefixes it has no place for (head, deeper stages)."""
    spec = encoder_spec(name)
    _check_depth(spec, depth)
    dilations = _check_dilatable(spec, output_stride)
    inputs = keras.Input(_check_input_shape(input_shape), name="image")
    outputs = _all_outputs(spec, inputs, dilations, options)
    model = keras.Model(inputs, outputs[: depth + 1], name=model_name or name)
    unused = (*spec.encoder_ignored_prefixes, *_unbuilt_layers(inputs, outputs, depth))
    return model, unused


def build_classifier(
    name: str,
    classes: int,
    input_shape: Sequence[int | None] = (None, None, 3),
    *,
    model_name: str | None = None,
    **options: Any,
) -> keras.Model:
    """The classification network of ``name`` with random weights (see
    :func:`micronet_tf.encoders.get_classifier`)."""
    spec = encoder_spec(name)
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be a positive integer, got {classes!r}")
    inputs = keras.Input(_check_input_shape(input_shape), name="image")
    features = _all_outputs(spec, inputs, {}, options, **spec.classifier_params)
    logits = spec.classifier_head(features[-1], classes)
    return keras.Model(inputs, logits, name=model_name or f"{name}_classifier")


@functools.lru_cache(maxsize=64)
def unused_checkpoint_prefixes(name: str, depth: int = MAX_DEPTH) -> tuple[str, ...]:
    """Module paths that a checkpoint of ``name``'s full network holds and a depth-``depth``
    encoder does not use: the classification head and the deeper stages."""
    spec = encoder_spec(name)
    _check_depth(spec, depth)
    if depth == MAX_DEPTH:
        return spec.encoder_ignored_prefixes
    inputs = keras.Input((None, None, 3))
    unbuilt = _unbuilt_layers(inputs, _all_outputs(spec, inputs, {}), depth)
    return (*spec.encoder_ignored_prefixes, *unbuilt)
