"""Convert PyTorch (segmentation_models_pytorch / NASA MicroNet) weights into Keras models.

The mapping is generic: Keras layers carry the PyTorch module path as their name, and a small
table of per-layer-type rules transforms the tensors (:mod:`micronet_tf.torch_weights`, whose
names this package re-exports). Every tensor is accounted for. This package builds the models:
encoders and classifiers from NASA's checkpoints, whole segmentation models from smp's.
"""

from __future__ import annotations

from micronet_tf.convert._encoder import convert_checkpoint, save_keras_model
from micronet_tf.convert._segmentation import segmentation_model_from_torch
from micronet_tf.torch_weights import (
    CheckpointSource,
    ConversionError,
    ConversionReport,
    StateDict,
    TorchCheckpoint,
    assign_torch_weights,
    load_torch_weights,
    read_torch_checkpoint,
    rename_keys,
    torch_named_layers,
)

__all__ = [
    "CheckpointSource",
    "ConversionError",
    "ConversionReport",
    "StateDict",
    "TorchCheckpoint",
    "assign_torch_weights",
    "convert_checkpoint",
    "load_torch_weights",
    "read_torch_checkpoint",
    "rename_keys",
    "save_keras_model",
    "segmentation_model_from_torch",
    "torch_named_layers",
]
