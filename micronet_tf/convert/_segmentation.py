"""Whole segmentation models from PyTorch: NASA's training checkpoints or bare smp state dicts."""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from micronet_tf.models import create_segmentation_model, load_torch_weights
from micronet_tf.torch_weights import ConversionError, read_torch_checkpoint

_HEAD_BIAS = "segmentation_head.0.bias"
# Training-history entries of the original checkpoints kept in the Keras model's info.
_HISTORY_KEYS = ("epoch", "max_score")


def _class_names(class_values: Any) -> list[str] | None:
    """The original code's ``class_values`` is ``{name: colour}`` (names kept) or a value list."""
    if isinstance(class_values, Mapping):
        return [str(name) for name in class_values]
    return None


def _plain_number(value: Any) -> Any:
    return float(value) if isinstance(value, numbers.Real) else value


def segmentation_model_from_torch(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    architecture: str | None = None,
    encoder: str | None = None,
    classes: int | None = None,
    *,
    activation: str | None = "auto",
    encoder_options: Mapping[str, Any] | None = None,
    **decoder_kwargs: Any,
) -> keras.Model:
    """A Keras segmentation model holding the weights of a PyTorch-trained smp model.

    ``checkpoint`` is the original training code's file (``architecture``, ``encoder``,
    ``state_dict`` possibly ``module.``-prefixed, ``class_values``, loss / IoU history) or a bare
    smp state dict, in which case ``architecture`` and ``encoder`` must be given. ``classes``
    defaults to the checkpoint's ``class_values`` or its segmentation head. ``activation="auto"``
    reproduces the original models (sigmoid for one class, softmax over channels otherwise).
    ``encoder_options``: the encoder family's build options (a state dict cannot tell them).
    """
    state = read_torch_checkpoint(checkpoint)
    meta = state.metadata
    architecture = architecture or meta.get("architecture")
    encoder = encoder or meta.get("encoder")
    missing = [n for n, v in (("architecture", architecture), ("encoder", encoder)) if not v]
    if missing:
        raise ConversionError(
            f"{state.source}: the checkpoint does not say its {' and '.join(missing)}; pass "
            + " and ".join(f"{n}=..." for n in missing)
            + " (e.g. architecture='Unet', encoder='resnet50')"
        )
    names = _class_names(meta.get("class_values"))
    head = int(state.state_dict[_HEAD_BIAS].shape[0]) if _HEAD_BIAS in state.state_dict else None
    if classes is None:
        # The head's channels decide (its weights must fit); class_values only name them.
        if head is not None:
            classes = head
        elif meta.get("class_values") is not None:
            classes = len(meta["class_values"])
        else:
            raise ConversionError(f"{state.source}: cannot tell the class count; pass classes=")
    if meta.get("class_values") is not None and len(meta["class_values"]) != classes:
        warnings.warn(
            f"{state.source}: its class_values name {len(meta['class_values'])} classes "
            f"({', '.join(map(str, names or meta['class_values']))}) but the model has "
            f"{classes} output channel(s) (its segmentation head's); the class names are "
            "not kept",
            stacklevel=2,
        )
        names = None
    model = create_segmentation_model(
        architecture,
        encoder,
        classes=classes,
        activation=activation,
        class_names=names,
        encoder_options=encoder_options,
        **decoder_kwargs,
    )
    try:
        load_torch_weights(model, state.state_dict)
    except ConversionError as error:
        raise ConversionError(f"{state.source}: {error}") from None
    info = model.get_layer("activation").model_info
    info["converted_from"] = Path(state.source).name
    info.update({k: _plain_number(meta[k]) for k in _HISTORY_KEYS if k in meta})
    return model
