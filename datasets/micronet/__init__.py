"""TFDS ``micronet`` (classification); importing this package registers the dataset."""

from .micronet_dataset_builder import Builder, MicronetConfig

__all__ = ["Builder", "MicronetConfig"]
