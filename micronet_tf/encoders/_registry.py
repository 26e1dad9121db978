"""Name -> encoder-family builder registry (variants are data, families are code)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras

from micronet_tf.suggest import did_you_mean

# build(inputs, **params) -> smp's forward outputs after the input (strides 2, 4, 8, 16, 32),
# or all six (strides 1..32) when first_output_is_input is False. Dilation comes from the
# surrounding dilation_plan (see layers.encoder_stage), depth truncation from get_encoder.
FeatureBuilder = Callable[..., list[keras.KerasTensor]]
# head(last feature map, classes) -> logits, with layers named after the PyTorch head modules.
HeadBuilder = Callable[[keras.KerasTensor, int], keras.KerasTensor]


def average_linear_head(path: str) -> HeadBuilder:
    """Global average pooling + ``Linear`` at ``path`` (torchvision ResNet's ``fc``)."""

    def head(x: keras.KerasTensor, classes: int) -> keras.KerasTensor:
        pooled = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
        return keras.layers.Dense(classes, name=path)(pooled)

    return head


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to build one named encoder and to map a PyTorch checkpoint onto it.

    Which checkpoint tensors belong to which output stage is not listed here: it is derived
    from the built Keras graph (the layers each output depends on), see ``get_encoder``.
    """

    name: str
    family: str
    build: FeatureBuilder
    params: Mapping[str, Any]
    out_channels: tuple[int, ...]  # as smp reports them: the first output, then strides 2..32
    classifier_head: HeadBuilder  # the original classification network's head (MicroNet's)
    head_prefixes: tuple[str, ...]  # its module paths: ignored when loading an encoder
    head_output: str  # the head's last layer, whose weight's first axis is the class count
    # Checkpoint module paths that neither the encoder nor the classifier uses (always ignored).
    ignored_prefixes: tuple[str, ...] = ()
    # (regex, replacement) renames of legacy checkpoint keys, applied before loading (smp's
    # load_state_dict does the same, e.g. DenseNet's "norm.1" -> "norm1").
    key_renames: tuple[tuple[str, str], ...] = ()
    # Params that differ in the classification network (e.g. the original trunk paddings).
    classifier_params: Mapping[str, Any] = field(default_factory=dict)
    first_output_is_input: bool = True  # VGG: no, its first output is the stride-1 feature
    dilatable: bool = True  # smp can trade its last strides for dilation (output_stride 16 / 8)
    # smp's U-Net adds a center block (two Conv-BN-ReLU) on these encoders' deepest map, and
    # its UNet++ builds one it never uses (smp decides by the name prefix "vgg").
    unet_center: bool = False
    min_depth: int = 1
    # Build options a user may choose (name -> allowed values, the first is the default),
    # passed to ``build`` as keyword arguments. They may change what is computed (e.g. a
    # padding convention), never layer names or weight shapes, so any checkpoint fits.
    options: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # How the family's feature-map sizes follow the input's (README table); segmentation
    # models add their own rule (multiples of 32 for most).
    input_rule: str = "stride-2 steps round up"
    smp_name: str = ""  # the segmentation_models_pytorch encoder name, when it differs

    @property
    def reference_name(self) -> str:
        return self.smp_name or self.name

    def resolve_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """``options`` checked against :attr:`options`, with the defaults filled in."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(f"{k}={v!r}" for k, v in self.options.items()) or "none"
            raise ValueError(f"encoder {self.name!r} has no option {unknown}; its options: {valid}")
        resolved = {}
        for key, allowed in self.options.items():
            value = options.get(key, allowed[0])
            if value not in allowed:
                raise ValueError(
                    f"encoder {self.name!r}: {key}={value!r}; expected one of "
                    f"{list(allowed)} (default {allowed[0]!r})"
                )
            resolved[key] = value
        return resolved

    @property
    def encoder_ignored_prefixes(self) -> tuple[str, ...]:
        """Checkpoint module paths an encoder (as opposed to a classifier) has no place for."""
        return (*self.head_prefixes, *self.ignored_prefixes)


_REGISTRY: dict[str, EncoderSpec] = {}


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"encoder {spec.name!r} is registered twice")
    if len(spec.out_channels) != 6:
        raise ValueError(f"encoder {spec.name!r}: out_channels needs 6 values")
    _REGISTRY[spec.name] = spec
    return spec


def encoder_spec(name: str) -> EncoderSpec:
    """The registered spec for ``name``; a ``ValueError`` with close matches otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        hint = did_you_mean(str(name), _REGISTRY)
        raise ValueError(
            f"Unknown encoder {name!r}.{hint} Available: {', '.join(sorted(_REGISTRY))}."
        ) from None


def registered_names() -> list[str]:
    return list(_REGISTRY)


def registered_specs() -> list[EncoderSpec]:
    return list(_REGISTRY.values())
