"""Resolve a ``weights=`` argument (None, Keras weights file, PyTorch checkpoint, model-zoo
name) onto a model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import keras

WeightsArg = str | os.PathLike | None

KERAS_SUFFIXES = (".weights.h5",)
TORCH_SUFFIXES = (".pth", ".pth.tar", ".pt", ".tar", ".bin", ".ckpt")
# Model-zoo names: "micronet", "imagenet-micronet", "resnet50.micronet", "...@v1.1".
ZOO_WEIGHT_NAMES = ("micronet", "imagenet-micronet")


def _describe_expected(argument: str) -> str:
    nothing = f"{argument} none" if argument.startswith("--") else f"{argument}=None"
    return (
        f"Expected {nothing}, a model-zoo name ('micronet', 'imagenet-micronet', "
        f"'resnet50.micronet@v1.1'), a Keras weights file ({', '.join(KERAS_SUFFIXES)}) or a "
        f"PyTorch checkpoint ({', '.join(TORCH_SUFFIXES)}) such as NASA's "
        "'resnet50_pretrained_microscopynet_v1.0.pth.tar'."
    )


def check_weights_argument(weights: WeightsArg, argument: str = "weights") -> None:
    """The cheap checks of :func:`apply_weights` (exists / zoo name / file type), without a
    model: for validating a command's arguments before any work starts."""
    if weights is None:
        return
    path = Path(weights)
    given = (
        f"{argument} {os.fspath(weights)!r}"
        if argument.startswith("--")
        else f"{argument}={os.fspath(weights)!r}"
    )
    if not path.is_file():
        from micronet_tf.zoo import is_zoo_name

        if not is_zoo_name(os.fspath(weights)):
            raise FileNotFoundError(f"{given}: no such file. " + _describe_expected(argument))
    elif not path.name.lower().endswith(KERAS_SUFFIXES + TORCH_SUFFIXES):
        raise ValueError(f"{given}: unknown file type. " + _describe_expected(argument))


def apply_weights(
    model: keras.Model,
    weights: WeightsArg,
    *,
    argument: str = "weights",
    ignore_prefixes: Sequence[str] = (),
    optional_prefixes: Sequence[str] = (),
    renames: Sequence[tuple[str, str]] = (),
    encoder: str | None = None,
) -> None:
    """Load ``weights`` into ``model`` in place; ``None`` leaves the random initialisation.

    A model-zoo name resolves through :mod:`micronet_tf.zoo` for ``encoder`` (the encoder the
    model is built on; a bare ``"micronet"`` means ``"<encoder>.micronet"``).

    ``ignore_prefixes`` / ``optional_prefixes`` / ``renames`` are passed to the PyTorch
    converter (checkpoint tensors the model has no place for / model weights the checkpoint may
    lack / legacy key renames).
    """
    if weights is None:
        return
    path = Path(weights)
    if not path.is_file():
        text = os.fspath(weights)
        from micronet_tf.zoo import is_zoo_name, load_zoo_weights

        if is_zoo_name(text):
            if encoder is None:
                raise ValueError(f"{argument}={text!r}: model-zoo weights need the encoder name")
            load_zoo_weights(
                model,
                text,
                encoder=encoder,
                argument=argument,
                ignore_prefixes=ignore_prefixes,
                optional_prefixes=optional_prefixes,
            )
            return
        raise FileNotFoundError(
            f"{argument}={text!r}: no such file. " + _describe_expected(argument)
        )
    lowered = path.name.lower()
    if lowered.endswith(KERAS_SUFFIXES):
        model.load_weights(path)
    elif lowered.endswith(TORCH_SUFFIXES):
        from micronet_tf.convert import load_torch_weights

        load_torch_weights(
            model,
            path,
            ignore_prefixes=ignore_prefixes,
            optional_prefixes=optional_prefixes,
            renames=renames,
        )
    else:
        raise ValueError(
            f"{argument}={str(path)!r}: unknown file type. " + _describe_expected(argument)
        )
