"""Data: TFDS builders for the paper's benchmarks and MicroNet-style folders, users' own labelled
micrographs, and a tf.data pipeline with the paper's augmentation.

Importing :mod:`micronet_tf` registers the TFDS datasets ``micronet_segmentation`` and
``micronet``. TensorFlow is imported only when a function that needs it is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from micronet_tf.data.benchmark import BENCHMARK_SETS, EBC_CLASSES, SUPER_CLASSES

_LAZY = {
    "segmentation_dataset_from_folders": "micronet_tf.data.folders",
    "make_segmentation_pipeline": "micronet_tf.data.pipeline",
    "make_classification_pipeline": "micronet_tf.data.classification",
    "paper_augmentation": "micronet_tf.data.augment",
    "MicronetConfig": "micronet_tf.tfds_datasets.micronet",
    "ClassMap": "micronet_tf.data.class_map",
    "parse_class_map": "micronet_tf.data.class_map",
    "write_segmentation_tfds": "micronet_tf.data.folder_tfds",
    "load_segmentation_tfds_info": "micronet_tf.data.folder_tfds",
    "load_segmentation_tfds_split": "micronet_tf.data.folder_tfds",
}

__all__ = ["BENCHMARK_SETS", "EBC_CLASSES", "SUPER_CLASSES", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'micronet_tf.data' has no attribute {name!r}")


def _register_tfds_datasets() -> None:
    importlib.import_module("micronet_tf.tfds_datasets")


_register_tfds_datasets()
