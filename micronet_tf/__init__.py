"""micronet-tf: NASA's MicroNet microscopy encoders in Keras 3, matching the PyTorch originals.

Submodules load lazily, so that ``micronet_tf.torch_reference`` (which imports torchvision) can be
imported before TensorFlow: the reverse order crashes the process.
"""

from __future__ import annotations

import importlib
from typing import Any

from micronet_tf import _cpu_kernels  # noqa: F401  (must run before TensorFlow is imported)
from micronet_tf.saving import load_model

__version__ = "0.1.0"

_SUBMODULES = (
    "cli",
    "convert",
    "data",
    "encoders",
    "layers",
    "local_paths",
    "measure",
    "models",
    "prediction",
    "preprocessing",
    "tiling",  # deprecated: micronet_tf.prediction
    "weights",
    "zoo",
)

__all__ = [
    "__version__",
    "create_segmentation_model",
    "load_model",
    "predict",
    "train_classifier",
    *_SUBMODULES,
]


# keras.saving.load_model finds our classes once micronet_tf is imported (without importing
# Keras now: see micronet_tf._registration).
importlib.import_module("micronet_tf._registration").install()

# Registers the TFDS datasets (tfds.load("micronet_segmentation/super1")); this imports
# tensorflow_datasets but not TensorFlow, so the import-order rule above still holds.
importlib.import_module("micronet_tf.tfds_datasets")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"micronet_tf.{name}")
    raise AttributeError(f"module 'micronet_tf' has no attribute {name!r}")


def create_segmentation_model(*args: Any, **kwargs: Any) -> Any:
    """See :func:`micronet_tf.models.create_segmentation_model`."""
    from micronet_tf.models import create_segmentation_model as create

    return create(*args, **kwargs)


def train_classifier(*args: Any, **kwargs: Any) -> Any:
    """See :func:`micronet_tf.training.classifier.train_classifier`."""
    from micronet_tf.training.classifier import train_classifier as train

    return train(*args, **kwargs)


def predict(*args: Any, **kwargs: Any) -> Any:
    """Tiled prediction at any size: see :func:`micronet_tf.prediction.predict`."""
    from micronet_tf.prediction import predict as tiled

    return tiled(*args, **kwargs)
