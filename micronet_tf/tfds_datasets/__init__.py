"""TFDS datasets shipped with micronet-tf; importing this package registers them with TFDS.

The dataset folders live under ``datasets/`` at the top of the repository, in TFDS's folder
convention; packaging maps them here (``setup.py``), so ``datasets`` itself is never a package.
"""

from pathlib import Path

# A source tree used without installation: the dataset folders sit in ../../datasets.
_SOURCE_DATASETS = Path(__file__).resolve().parents[2] / "datasets"
if (_SOURCE_DATASETS.parent / "setup.cfg").is_file() and _SOURCE_DATASETS.is_dir():
    __path__.append(str(_SOURCE_DATASETS))  # noqa: F821  (the package's own __path__)

from micronet_tf.tfds_datasets import micronet, micronet_segmentation  # noqa: E402

__all__ = ["micronet", "micronet_segmentation"]
