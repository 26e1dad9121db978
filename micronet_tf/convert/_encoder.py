"""Convert a NASA-format checkpoint into a Keras encoder or classifier and save it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from micronet_tf.encoders._build import build_classifier, build_encoder
from micronet_tf.encoders._registry import encoder_spec
from micronet_tf.files import atomic_output_path
from micronet_tf.torch_weights import (
    CheckpointSource,
    ConversionError,
    ConversionReport,
    assign_torch_weights,
    read_torch_checkpoint,
    rename_keys,
)


def convert_checkpoint(
    checkpoint: CheckpointSource,
    encoder: str,
    out: str | os.PathLike,
    *,
    classifier: bool = False,
    overwrite: bool = False,
    encoder_options: Mapping[str, Any] | None = None,
) -> tuple[keras.Model, ConversionReport]:
    """Convert a NASA-format checkpoint for ``encoder`` and save it as Keras ``.weights.h5``.

    With ``classifier=True`` the classification head (``fc`` / ``last_linear``) is converted
    too and the class count is read from the checkpoint. The file is written to a temporary
    name and renamed, so a failed run never leaves a partial file or replaces an existing one
    with garbage; an existing ``out`` is kept unless ``overwrite=True``. ``encoder_options``
    are checked against the encoder family's build options (they never change the weights).
    """
    out = _checked_output(out, ".weights.h5", overwrite)
    state = read_torch_checkpoint(checkpoint)
    spec = encoder_spec(encoder)
    state_dict = rename_keys(state.state_dict, spec.key_renames)
    if classifier:
        head_key = f"{spec.head_output}.weight"
        if head_key not in state_dict:
            raise ConversionError(
                f"{state.source}: no classification head ({head_key!r}) in the checkpoint; "
                "convert without --classifier to get the encoder"
            )
        classes = int(state_dict[head_key].shape[0])
        model = build_classifier(encoder, classes, **dict(encoder_options or {}))
        ignored = spec.ignored_prefixes
    else:
        model, _ = build_encoder(encoder, **dict(encoder_options or {}))
        ignored = spec.encoder_ignored_prefixes
    try:
        report = assign_torch_weights(model, state_dict, ignore_prefixes=ignored)
    except ConversionError as error:
        raise ConversionError(f"{state.source}: {error}") from None
    with atomic_output_path(out) as temporary:
        model.save_weights(temporary)
    return model, report


def _checked_output(out: str | os.PathLike, suffix: str, overwrite: bool) -> Path:
    out = Path(out)
    if not out.name.endswith(suffix):
        raise ValueError(f"out={str(out)!r}: the file name must end in {suffix!r}")
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"out={str(out)!r} exists; pass overwrite=True (--force) to replace it"
        )
    return out


def save_keras_model(
    model: keras.Model, out: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Save ``model`` as ``.keras`` through a temporary file; keep an existing ``out`` unless
    ``overwrite``."""
    out = _checked_output(out, ".keras", overwrite)
    with atomic_output_path(out) as temporary:
        model.save(temporary)
    return out
