"""Assign PyTorch state-dict tensors to Keras weights by module path, with strict accounting.

Each weighted Keras layer is named after the PyTorch module it mirrors (nested models add their
own name as a path component, ``encoder.layer1.0.conv1``). One table of per-layer-type rules says
which Keras variable takes which PyTorch tensor and how the layout changes.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from micronet_tf.torch_weights.checkpoint import read_torch_checkpoint
from micronet_tf.torch_weights.errors import ConversionError

Transform = Callable[[np.ndarray], np.ndarray]
# PyTorch buffers that have no Keras counterpart and carry no information for inference.
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def _same(value: np.ndarray) -> np.ndarray:
    return value


def _conv_kernel(value: np.ndarray) -> np.ndarray:
    """OIHW -> HWIO; for grouped convs I is in_channels // groups in both frameworks."""
    return np.transpose(value, (2, 3, 1, 0))


def _dense_kernel(value: np.ndarray) -> np.ndarray:
    """(out, in) -> (in, out)."""
    return np.transpose(value)


def _conv_transpose_kernel(value: np.ndarray) -> np.ndarray:
    """ConvTranspose2d (in, out, kh, kw) -> Conv2DTranspose (kh, kw, out, in), no spatial flip
    (both are the gradient of a cross-correlation)."""
    return np.transpose(value, (2, 3, 1, 0))


def _depthwise_kernel(value: np.ndarray) -> np.ndarray:
    """(C, 1, kh, kw) -> (kh, kw, C, 1): torch groups=in_channels conv, depth multiplier 1 (a
    multiplier m > 1 would need C; its (C*m, ...) tensor then fails the shape check)."""
    return np.transpose(value, (2, 3, 0, 1))


# (Keras layer class, ((Keras attribute, PyTorch parameter suffix, transform), ...)).
# First match wins, so subclasses must come before their bases.
_RULES: tuple[tuple[type, tuple[tuple[str, str, Transform], ...]], ...] = (
    (
        keras.layers.BatchNormalization,
        (
            ("gamma", "weight", _same),
            ("beta", "bias", _same),
            ("moving_mean", "running_mean", _same),
            ("moving_variance", "running_var", _same),
        ),
    ),
    (keras.layers.Conv2D, (("kernel", "weight", _conv_kernel), ("bias", "bias", _same))),
    (
        keras.layers.Conv2DTranspose,
        (("kernel", "weight", _conv_transpose_kernel), ("bias", "bias", _same)),
    ),
    (
        keras.layers.DepthwiseConv2D,
        (("kernel", "weight", _depthwise_kernel), ("bias", "bias", _same)),
    ),
    (keras.layers.Dense, (("kernel", "weight", _dense_kernel), ("bias", "bias", _same))),
    # torch.nn.GroupNorm (affine): same per-channel layout, no running statistics.
    (keras.layers.GroupNormalization, (("gamma", "weight", _same), ("beta", "bias", _same))),
)


@dataclass
class ConversionReport:
    """What a conversion did: tensors assigned, checkpoint entries ignored, weights left as is."""

    assigned: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    not_in_checkpoint: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.assigned)} tensors assigned, {len(self.ignored)} checkpoint entries "
            f"ignored, {len(self.not_in_checkpoint)} optional weights not in the checkpoint"
        )


def torch_named_layers(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.Layer]]:
    """Yield ``(pytorch_module_path, layer)`` for every layer of ``model`` that holds weights."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from torch_named_layers(layer, f"{prefix}{layer.name}.")
        elif layer.weights:
            yield f"{prefix}{layer.name}", layer


def _rule_for(path: str, layer: keras.Layer) -> tuple[tuple[str, str, Transform], ...]:
    for cls, rule in _RULES:
        if isinstance(layer, cls):
            return rule
    raise ConversionError(
        f"layer {path!r} is a {type(layer).__name__}, which has no PyTorch conversion rule; "
        "add one to micronet_tf.torch_weights.assign._RULES"
    )


def under_module_path(key: str, prefixes: Sequence[str] | set[str]) -> bool:
    """Whether ``key`` is one of the module paths ``prefixes`` or lies below one."""
    prefixes = prefixes if isinstance(prefixes, (set, frozenset)) else set(prefixes)
    parts = key.split(".")
    return any(".".join(parts[:end]) in prefixes for end in range(1, len(parts) + 1))


def rename_keys(
    state_dict: Mapping[str, np.ndarray], renames: Sequence[tuple[str, str]]
) -> dict[str, np.ndarray]:
    """Apply ``(regex, replacement)`` renames to legacy keys (the first matching rule per key),
    as smp's encoders do in ``load_state_dict``; a rename onto an existing key is an error."""
    if not renames:
        return dict(state_dict)
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in renames]
    renamed: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        new = key
        for pattern, replacement in compiled:
            if pattern.search(key):
                new = pattern.sub(replacement, key)
                break
        if new in renamed:
            raise ConversionError(f"checkpoint holds both {key!r} and its modern name {new!r}")
        renamed[new] = value
    return renamed


def assign_torch_weights(
    model: keras.Model,
    state_dict: Mapping[str, np.ndarray],
    *,
    ignore_prefixes: Sequence[str] = (),
    optional_prefixes: Sequence[str] = (),
) -> ConversionReport:
    """Copy ``state_dict`` into ``model``: every tensor used once, every Keras weight set once.

    Args:
        ignore_prefixes: module paths whose checkpoint tensors the model has no place for on
            purpose (a classification head when loading an encoder).
        optional_prefixes: module paths whose Keras weights may be absent from the checkpoint
            (they keep their current values).

    Raises:
        ConversionError: listing every missing, unexpected and mis-shaped tensor; nothing is
            assigned then.
    """
    ignore_prefixes, optional_prefixes = set(ignore_prefixes), set(optional_prefixes)
    report = ConversionReport()
    plan: list[tuple[keras.Variable, np.ndarray]] = []
    missing: list[str] = []
    mismatched: list[str] = []
    used: set[str] = set()
    for path, layer in torch_named_layers(model):
        covered = set()
        for attribute, suffix, transform in _rule_for(path, layer):
            variable = getattr(layer, attribute, None)
            if variable is None:
                continue
            covered.add(id(variable))
            key = f"{path}.{suffix}"
            if key not in state_dict:
                optional = under_module_path(key, optional_prefixes)
                (report.not_in_checkpoint if optional else missing).append(key)
                continue
            used.add(key)
            source = np.asarray(state_dict[key])
            value = transform(source)
            if tuple(value.shape) != tuple(variable.shape):
                mismatched.append(
                    f"{key}: checkpoint {tuple(source.shape)} becomes {tuple(value.shape)} in "
                    f"Keras layout, but {type(layer).__name__} {path!r} expects "
                    f"{tuple(variable.shape)}"
                )
                continue
            plan.append((variable, value))
            report.assigned.append(key)
        unhandled = [w.path for w in layer.weights if id(w) not in covered]
        if unhandled:
            raise ConversionError(f"layer {path!r} has weights no rule covers: {unhandled}")
    unexpected = []
    for key in state_dict:
        if key in used:
            continue
        if key.endswith(_IGNORED_SUFFIXES) or under_module_path(key, ignore_prefixes):
            report.ignored.append(key)
        else:
            unexpected.append(key)
    if missing or unexpected or mismatched:
        raise ConversionError(_describe_failure(model, missing, unexpected, mismatched))
    for variable, value in plan:
        variable.assign(value.astype(variable.dtype, copy=False))
    if report.not_in_checkpoint:
        warnings.warn(
            f"{model.name}: {len(report.not_in_checkpoint)} weights are not in the checkpoint and "
            f"keep their initial values: {', '.join(report.not_in_checkpoint)}",
            stacklevel=3,
        )
    return report


def _describe_failure(
    model: keras.Model, missing: list[str], unexpected: list[str], mismatched: list[str]
) -> str:
    def listing(title: str, items: list[str], limit: int = 12) -> str:
        shown = "\n    ".join(items[:limit])
        more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
        return f"\n  {title} ({len(items)}):\n    {shown}{more}"

    text = f"checkpoint does not match Keras model {model.name!r}:"
    if missing:
        text += listing("missing from the checkpoint", missing)
    if unexpected:
        text += listing("in the checkpoint but not in the model", unexpected)
    if mismatched:
        text += listing("shape mismatch", mismatched)
    text += "\n  Check that the encoder name (and classes, for a classifier) match the checkpoint."
    return text


CheckpointSource = str | os.PathLike | Mapping[str, Any]


def load_torch_weights(
    model: keras.Model,
    checkpoint: CheckpointSource,
    *,
    ignore_prefixes: Sequence[str] = (),
    optional_prefixes: Sequence[str] = (),
    renames: Sequence[tuple[str, str]] = (),
) -> ConversionReport:
    """Read a PyTorch checkpoint (path or state dict) and assign it to ``model`` strictly;
    ``renames`` (regex, replacement) modernise legacy keys first."""
    state = read_torch_checkpoint(checkpoint)
    try:
        return assign_torch_weights(
            model,
            rename_keys(state.state_dict, renames),
            ignore_prefixes=ignore_prefixes,
            optional_prefixes=optional_prefixes,
        )
    except ConversionError as error:
        raise ConversionError(f"{state.source}: {error}") from None
