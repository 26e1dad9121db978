"""PyTorch state dicts onto Keras layers: read checkpoints safely and assign their tensors by
module path, every tensor accounted for. Knows no model family; :mod:`micronet_tf.convert`
builds the Keras models and :mod:`micronet_tf.weights` resolves ``weights=`` arguments on it."""

from __future__ import annotations

from micronet_tf.torch_weights.assign import (
    CheckpointSource,
    ConversionReport,
    assign_torch_weights,
    load_torch_weights,
    rename_keys,
    torch_named_layers,
    under_module_path,
)
from micronet_tf.torch_weights.checkpoint import StateDict, TorchCheckpoint, read_torch_checkpoint
from micronet_tf.torch_weights.errors import ConversionError

__all__ = [
    "CheckpointSource",
    "ConversionError",
    "ConversionReport",
    "StateDict",
    "TorchCheckpoint",
    "assign_torch_weights",
    "load_torch_weights",
    "read_torch_checkpoint",
    "rename_keys",
    "torch_named_layers",
    "under_module_path",
]
