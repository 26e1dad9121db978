"""Segmentation models (encoder + decoder + head) at segmentation_models_pytorch parity.

One module per architecture; each registers its builder under smp's class name.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from micronet_tf.encoders import encoder_spec, unused_checkpoint_prefixes
from micronet_tf.intensity import Normalization
from micronet_tf.layers import Resize
from micronet_tf.models._registry import (
    ArchitectureSpec,
    architecture_spec,
    registered_architectures,
)
from micronet_tf.models.layers import InputSizeCheck, SegmentationOutput
from micronet_tf.torch_weights import load_torch_weights as assign_checkpoint
from micronet_tf.weights import WeightsArg

__all__ = [
    "ArchitectureSpec",
    "InputSizeCheck",
    "Resize",
    "SegmentationOutput",
    "architecture_spec",
    "class_names",
    "create_segmentation_model",
    "input_normalization",
    "list_architectures",
    "load_torch_weights",
    "model_info",
    "set_input_normalization",
    "set_training_labels",
    "training_labels",
]

_ARCHITECTURE_MODULES = ("unet", "unetplusplus", "linknet", "pspnet", "deeplabv3", "fpn", "pan")
for _module in _ARCHITECTURE_MODULES:
    importlib.import_module(f"micronet_tf.models.{_module}")

_ACTIVATION_ALIASES = {
    None: "identity",
    "identity": "identity",
    "sigmoid": "sigmoid",
    "softmax": "softmax",
    "softmax2d": "softmax",
    "logsoftmax": "logsoftmax",
    "tanh": "tanh",
}


def list_architectures() -> list[str]:
    """Architecture names accepted by :func:`create_segmentation_model` (smp's class names)."""
    return registered_architectures()


def _resolve_activation(activation: str | None, classes: int) -> str:
    if activation == "auto":  # the original pretrained-microscopy-models choice
        return "sigmoid" if classes == 1 else "softmax"
    try:
        return _ACTIVATION_ALIASES[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation={activation!r}; expected None/'identity' (logits), 'sigmoid', "
            "'softmax'/'softmax2d' (over channels), 'logsoftmax', 'tanh' or 'auto' (sigmoid for "
            "one class, softmax for more, as the original code does)"
        ) from None


def create_segmentation_model(
    architecture: str,
    encoder: str,
    encoder_weights: WeightsArg = None,
    classes: int = 1,
    activation: str | None = None,
    input_shape: Sequence[int | None] = (None, None, 3),
    *,
    class_names: Sequence[str] | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    **decoder_kwargs,
) -> keras.Model:
    """Build ``architecture`` (``Unet``, ``UnetPlusPlus``, ``Linknet``, ``FPN``, ``PSPNet``,
    ``PAN``, ``DeepLabV3``, ``DeepLabV3Plus``; case-insensitive) on a MicroNet ``encoder``.

    Defaults and ``decoder_kwargs`` are smp 0.6.0's. ``classes=1`` is binary segmentation;
    ``activation=None`` returns logits, ``"auto"`` applies sigmoid (one class) or a softmax
    over channels (several), like the original training code. ``class_names`` are stored in the
    model (``micronet_tf.models.class_names(model)``) and survive ``.keras`` saving;
    ``encoder_options`` are the encoder family's build options (``encoder_spec(encoder).
    options``), stored in the model's info with their defaults filled in.
    """
    spec = architecture_spec(architecture)
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be a positive integer, got {classes!r}")
    if classes == 2:
        raise ValueError(
            "classes=2: binary segmentation is classes=1 (one sigmoid channel: foreground vs "
            "background), as in smp and the original code; use classes>=3 for several classes "
            "with a softmax"
        )
    if class_names is not None and len(class_names) != classes:
        raise ValueError(f"class_names has {len(class_names)} names for classes={classes}")
    output_activation = _resolve_activation(activation, classes)
    accepted = inspect.signature(spec.build).parameters
    unknown = sorted(set(decoder_kwargs) - set(accepted))
    if unknown:
        options = [
            p
            for p in accepted
            if p not in ("inputs", "encoder", "encoder_weights", "encoder_options", "classes")
        ]
        raise ValueError(f"{spec.name} does not take {unknown}; its options are {options}")
    options = encoder_spec(encoder).resolve_options(encoder_options)
    inputs = keras.Input(tuple(input_shape), name="image")
    logits = spec.build(
        inputs,
        encoder=encoder,
        encoder_weights=encoder_weights,
        encoder_options=options,
        classes=classes,
        **decoder_kwargs,
    )
    info = {
        "architecture": spec.name,
        "encoder": encoder,
        "classes": classes,
        "decoder_kwargs": _jsonable(decoder_kwargs),
        "encoder_options": options,
    }
    outputs = SegmentationOutput(output_activation, class_names, info, name="activation")(logits)
    return keras.Model(inputs, outputs, name=f"{spec.name}_{encoder}")


def _jsonable(options: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _output_layer(model: keras.Model) -> SegmentationOutput:
    try:
        layer = model.get_layer("activation")
    except ValueError:
        layer = None
    if not isinstance(layer, SegmentationOutput):
        raise ValueError(f"{model.name!r} is not a model made by create_segmentation_model")
    return layer


def class_names(model: keras.Model) -> list[str] | None:
    """The class names stored in a segmentation model, or ``None``."""
    return _output_layer(model).class_names


def model_info(model: keras.Model) -> dict:
    """``architecture``, ``encoder``, ``classes`` and ``decoder_kwargs`` of a segmentation model."""
    return dict(_output_layer(model).model_info)


def training_labels(model: keras.Model) -> dict | None:
    """How the model's training read its masks (class map, channels, orientation), or None."""
    return _output_layer(model).model_info.get("labels")


def set_training_labels(model: keras.Model, record: dict) -> None:
    """Store ``record`` (``SegmentationTask.labels_record()``) in the model (saved with it)."""
    _output_layer(model).model_info["labels"] = dict(record)


def input_normalization(model: keras.Model):
    """The :class:`~micronet_tf.intensity.Normalization` the model was trained with
    (``"dtype"`` for models that record none, as before it was recorded)."""
    try:
        layer = _output_layer(model)
    except ValueError:
        return Normalization()
    return Normalization.parse(layer.model_info.get("normalization"))


def set_input_normalization(model: keras.Model, normalization) -> None:
    """Store the intensity normalisation (``"dtype"``, ``"percentile"``, ...) in the model."""
    _output_layer(model).model_info["normalization"] = Normalization.parse(
        normalization
    ).to_config()


def load_torch_weights(model: keras.Model, checkpoint):
    """Load an smp model's state dict (path or mapping) into ``model``, strictly; parameters
    that smp creates but never uses (encoder stages below ``encoder_depth``, decoder modules
    unused with these options) are skipped, legacy encoder keys renamed as smp does."""
    info = model_info(model)
    encoder = encoder_spec(info["encoder"])
    unused = architecture_spec(info["architecture"]).unused_checkpoint_prefixes(
        info["decoder_kwargs"], encoder
    )
    depth = len(model.get_layer("encoder").outputs) - 1
    unused += tuple(f"encoder.{p}" for p in unused_checkpoint_prefixes(encoder.name, depth))
    return assign_checkpoint(model, checkpoint, ignore_prefixes=unused, renames=encoder.key_renames)
