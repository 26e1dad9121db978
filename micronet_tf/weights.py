"""Resolve a ``weights=`` argument (None, Keras weights file, PyTorch checkpoint, model-zoo
name) onto a model: the one place where the zoo's verified files and the PyTorch tensor
assignment meet. The zoo (:mod:`micronet_tf.zoo`) only finds and verifies files; the caller
(:func:`micronet_tf.encoders.get_encoder`) says how to build the full encoder that a zoo entry's
weights are stored for, so this module knows no model family."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from micronet_tf import zoo
from micronet_tf.files import atomic_output_path
from micronet_tf.torch_weights import (
    ConversionError,
    assign_torch_weights,
    load_torch_weights,
    read_torch_checkpoint,
    rename_keys,
    under_module_path,
)

WeightsArg = str | os.PathLike | None


@dataclass(frozen=True)
class ZooEncoder:
    """The encoder a zoo entry stores weights for, as the resolver needs it: how to build it
    (depth 5, default options, no weights) and how NASA's checkpoint keys map onto it.
    :func:`micronet_tf.encoders.zoo_encoder` makes one per encoder name."""

    build: Callable[[], keras.Model]
    key_renames: Sequence[tuple[str, str]] = ()
    # Checkpoint tensors the encoder has no place for (the classification head).
    ignored_prefixes: Sequence[str] = ()


ZooEncoderLookup = Callable[[str], ZooEncoder]

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
        if not zoo.is_zoo_name(os.fspath(weights)):
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
    zoo_encoder: ZooEncoderLookup | None = None,
) -> None:
    """Load ``weights`` into ``model`` in place; ``None`` leaves the random initialisation.

    A model-zoo name resolves through :mod:`micronet_tf.zoo` for ``encoder`` (the encoder the
    model is built on; a bare ``"micronet"`` means ``"<encoder>.micronet"``); ``zoo_encoder``
    says how to build that encoder (see :func:`load_zoo_weights`).

    ``ignore_prefixes`` / ``optional_prefixes`` / ``renames`` are passed to the PyTorch
    converter (checkpoint tensors the model has no place for / model weights the checkpoint may
    lack / legacy key renames).
    """
    if weights is None:
        return
    path = Path(weights)
    if not path.is_file():
        text = os.fspath(weights)
        if zoo.is_zoo_name(text):
            if encoder is None or zoo_encoder is None:
                raise ValueError(
                    f"{argument}={text!r}: model-zoo weights load into encoders and classifiers "
                    "(micronet_tf.encoders.get_encoder / get_classifier, or a segmentation "
                    "model's encoder_weights=)"
                )
            load_zoo_weights(
                model,
                text,
                encoder=encoder,
                zoo_encoder=zoo_encoder,
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


def zoo_weights_file(
    name: str,
    zoo_encoder: ZooEncoderLookup,
    *,
    encoder: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    trust_unverified: bool | None = None,
    progress: bool | None = None,
) -> Path:
    """Zoo entry ``name``'s encoder weights (``.weights.h5``), verified: the published file
    (:func:`micronet_tf.zoo.download`), else NASA's checkpoint converted into the cache
    (``*.converted.weights.h5`` beside its sha256 record; needs torch the first time) on the
    encoder that ``zoo_encoder(entry.encoder)`` builds."""
    options = {"cache_dir": cache_dir, "trust_unverified": trust_unverified, "progress": progress}
    entry = zoo.current_manifest(cache_dir).resolve(name, encoder)
    published = zoo.published_file(entry.key, "keras", **options)
    if published is not None:
        return published
    target = zoo.entry_cache_dir(entry, cache_dir) / (
        f"{entry.name}-{entry.version}.converted.weights.h5"
    )
    if zoo.verified_by_record(target):
        return target
    source = zoo.download(entry.key, "source", **options)
    recipe = zoo_encoder(entry.encoder)
    try:
        state = read_torch_checkpoint(source)
    except ImportError as error:
        raise zoo.ZooError(
            f"{entry.key}: no Keras weights are published for it, and converting NASA's "
            f"checkpoint on the fly needs torch: pip install 'micronet-tf[torch]' ({error})"
        ) from error
    full = recipe.build()
    try:
        assign_torch_weights(
            full,
            rename_keys(state.state_dict, recipe.key_renames),
            ignore_prefixes=recipe.ignored_prefixes,
        )
    except ConversionError as error:
        raise ConversionError(f"{state.source}: {error}") from None
    with atomic_output_path(target) as temporary:
        full.save_weights(temporary)
    zoo.write_hash_record(target)
    return target


def _weighted_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    return {layer.name: layer for layer in model.layers if layer.weights}


def load_zoo_weights(
    model: keras.Model,
    name: str,
    *,
    encoder: str,
    zoo_encoder: ZooEncoderLookup,
    argument: str = "weights",
    ignore_prefixes: Sequence[str] = (),
    optional_prefixes: Sequence[str] = (),
    **download_options,
) -> None:
    """Load zoo entry ``name`` into ``model`` (an encoder or classifier built for ``encoder``).

    The entry's full encoder weights are read into the depth-5 encoder ``zoo_encoder(encoder)``
    builds and copied layer by layer (Keras layer names are the PyTorch module paths), so
    shallower encoders and classifiers load them too. Layers under ``ignore_prefixes`` may be
    absent from ``model``, layers under ``optional_prefixes`` (a classifier head) absent from
    the weights; anything else is an error.
    """
    entry = zoo.current_manifest(download_options.get("cache_dir")).resolve(name, encoder)
    if entry.encoder != encoder:
        raise zoo.ZooError(
            f"{argument}={name!r} holds {entry.encoder} weights; this model is a "
            f"{encoder}: use '{encoder}.{entry.pretraining}'"
        )
    path = zoo_weights_file(entry.key, zoo_encoder, **download_options)
    full = zoo_encoder(encoder).build()
    full.load_weights(path)
    source = _weighted_layers(full)
    target = _weighted_layers(model)
    missing = [n for n in target if n not in source and not under_module_path(n, optional_prefixes)]
    unused = [n for n in source if n not in target and not under_module_path(n, ignore_prefixes)]
    if missing or unused:
        raise zoo.ZooError(
            f"{argument}={name!r} ({path}) does not fit {model.name!r}: "
            f"layers without weights {missing[:5]}, unused weights {unused[:5]}"
        )
    for layer_name, layer in target.items():
        if layer_name in source:
            layer.set_weights(source[layer_name].get_weights())
