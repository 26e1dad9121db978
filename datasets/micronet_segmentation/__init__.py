"""TFDS ``micronet_segmentation``; importing this package registers the dataset."""

from .micronet_segmentation_dataset_builder import Builder

__all__ = ["Builder"]
