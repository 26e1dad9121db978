"""Name -> encoder-family builder registry (variants are data, families are code)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras

# build(inputs, depth=..., dilations=..., **params) -> feature maps at strides 2, 4, ... 2**depth.
FeatureBuilder = Callable[..., list[keras.KerasTensor]]


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to build one named encoder and to map a PyTorch checkpoint onto it."""

    name: str
    family: str
    build: FeatureBuilder
    params: Mapping[str, Any]
    out_channels: tuple[int, ...]  # as smp reports them: input channels first, then strides 2..32
    stage_prefixes: tuple[tuple[str, ...], ...]  # PyTorch module paths of stages 1..5
    head: str = "fc"  # module path of the classification head in a full-classifier checkpoint
    dilatable: bool = True  # smp can trade its last strides for dilation (output_stride 16 / 8)
    smp_name: str = ""  # the segmentation_models_pytorch encoder name, when it differs
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reference_name(self) -> str:
        return self.smp_name or self.name


_REGISTRY: dict[str, EncoderSpec] = {}


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"encoder {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def encoder_spec(name: str) -> EncoderSpec:
    """The registered spec for ``name``; a ``ValueError`` with close matches otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown encoder {name!r}.{hint} Available: {', '.join(sorted(_REGISTRY))}."
        ) from None


def registered_names() -> list[str]:
    return list(_REGISTRY)
