"""Small synthetic segmentation data and models for training tests (no benchmark data needed)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def blobs(count: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images with bright discs on noise and their 0/1 masks (NHWC float32)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0, 0.3, (count, size, size, 3)).astype("float32")
    masks = np.zeros((count, size, size, 1), "float32")
    for i in range(count):
        for _ in range(3):
            cy, cx, r = rng.integers(8, size - 8, 2).tolist() + [int(rng.integers(4, 9))]
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            masks[i, disc, 0] = 1
            images[i, disc] += 1.5
    return images, masks


def dataset(images: np.ndarray, masks: np.ndarray, batch: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((images, masks)).batch(batch)


def small_conv_model() -> keras.Model:
    """A BatchNorm-free conv net: its gradients do not depend on how a batch is split."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, keras.layers.Conv2D(1, 1)(x))
