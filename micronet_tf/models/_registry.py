"""Architecture name -> builder registry (smp's names, case-insensitive aliases)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import keras

from micronet_tf.suggest import did_you_mean

# build(inputs, *, encoder, encoder_weights, classes, **decoder_kwargs) -> logits (no activation)
ArchitectureBuilder = Callable[..., keras.KerasTensor]


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str  # smp's class name, e.g. "UnetPlusPlus"
    build: ArchitectureBuilder
    aliases: tuple[str, ...] = ()
    input_rule: str = "height and width multiples of 32"
    # Checkpoint module paths that smp creates but never uses in forward (given the decoder
    # options and the encoder's spec), so a converted checkpoint may hold them without a Keras
    # counterpart.
    unused_checkpoint_prefixes: Callable[[Mapping[str, Any], Any], tuple[str, ...]] = (
        lambda options, encoder: ()
    )


_ARCHITECTURES: dict[str, ArchitectureSpec] = {}
_LOOKUP: dict[str, str] = {}


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def register_architecture(spec: ArchitectureSpec) -> ArchitectureSpec:
    for alias in (spec.name, *spec.aliases):
        _LOOKUP[_key(alias)] = spec.name
    _ARCHITECTURES[spec.name] = spec
    return spec


def architecture_spec(name: str) -> ArchitectureSpec:
    try:
        return _ARCHITECTURES[_LOOKUP[_key(name)]]
    except KeyError:
        hint = did_you_mean(_key(name), _LOOKUP, n=2, shown_as=_LOOKUP.__getitem__)
        raise ValueError(
            f"Unknown architecture {name!r}.{hint} Available: {', '.join(_ARCHITECTURES)}."
        ) from None


def registered_architectures() -> list[str]:
    return list(_ARCHITECTURES)
