"""Load a zoo entry's encoder weights into any model built on that encoder, by layer name."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from micronet_tf.zoo._cache import download
from micronet_tf.zoo._manifest import PRETRAININGS, ZooError


def is_zoo_name(text: str) -> bool:
    """``micronet``, ``imagenet-micronet``, ``resnet50.micronet``, ``resnet50.micronet@v1.1``."""
    name = text.partition("@")[0]
    return (
        "@" in text or name in PRETRAININGS or name.endswith(tuple(f".{p}" for p in PRETRAININGS))
    )


def _weighted_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    return {layer.name: layer for layer in model.layers if layer.weights}


def load_zoo_weights(
    model: keras.Model,
    name: str,
    *,
    encoder: str,
    argument: str = "weights",
    ignore_prefixes: Sequence[str] = (),
    optional_prefixes: Sequence[str] = (),
    **download_options,
) -> None:
    """Load zoo entry ``name`` into ``model`` (an encoder or classifier built for ``encoder``).

    The entry's full encoder weights are read into a depth-5 encoder and copied layer by layer
    (Keras layer names are the PyTorch module paths), so shallower encoders and classifiers
    load them too. Layers under ``ignore_prefixes`` may be absent from ``model``, layers under
    ``optional_prefixes`` (a classifier head) absent from the weights; anything else is an error.
    """
    from micronet_tf.encoders import get_encoder
    from micronet_tf.zoo._cache import current_manifest

    entry = current_manifest(download_options.get("cache_dir")).resolve(name, encoder)
    if entry.encoder != encoder:
        raise ZooError(
            f"{argument}={name!r} holds {entry.encoder} weights; this model is a "
            f"{encoder}: use '{encoder}.{entry.pretraining}'"
        )
    path = download(entry.key, "keras", **download_options)
    full = get_encoder(encoder)
    full.load_weights(path)
    source = _weighted_layers(full)
    target = _weighted_layers(model)

    def under(layer: str, prefixes: Sequence[str]) -> bool:
        return any(layer == p or layer.startswith(f"{p}.") for p in prefixes)

    missing = [n for n in target if n not in source and not under(n, optional_prefixes)]
    unused = [n for n in source if n not in target and not under(n, ignore_prefixes)]
    if missing or unused:
        raise ZooError(
            f"{argument}={name!r} ({path}) does not fit {model.name!r}: "
            f"layers without weights {missing[:5]}, unused weights {unused[:5]}"
        )
    for layer_name, layer in target.items():
        if layer_name in source:
            layer.set_weights(source[layer_name].get_weights())
