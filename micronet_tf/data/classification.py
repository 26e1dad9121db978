"""tf.data pipeline for MicroNet-style classification (the pre-training recipe's inputs)."""

from __future__ import annotations

import tensorflow as tf

from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

# Validation: resize the short side to size / CENTRE_FRACTION, then take the central crop
# (ImageNet's 256 -> 224 convention).
CENTRE_FRACTION = 0.875


def _as_pair(*element):
    """A TFDS ``micronet`` dict, or the two components of an ``(image, label)`` dataset."""
    if len(element) == 1 and isinstance(element[0], dict):
        return element[0]["image"], element[0]["label"]
    return element


def _normalise(image: tf.Tensor) -> tf.Tensor:
    return (tf.cast(image, tf.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def _random_resized_crop(image: tf.Tensor, size: int, seed) -> tf.Tensor:
    """Random area 8-100%, aspect ratio 3/4-4/3 (torchvision's defaults), resized to size."""
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        tf.zeros((1, 0, 4)),
        seed=seed,
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        min_object_covered=0.0,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, extent)
    return tf.image.resize(crop, (size, size), method="bilinear")


def _augment(image: tf.Tensor, size: int, seed) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, 6)
    image = _random_resized_crop(image, size, seeds[0])
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    image = tf.image.stateless_random_flip_up_down(image, seeds[2])
    turns = tf.random.stateless_uniform((), seeds[3], 0, 4, dtype=tf.int32)
    image = tf.image.rot90(image, turns)
    image = tf.image.stateless_random_brightness(image, 0.1 * 255, seeds[4])
    image = tf.image.stateless_random_contrast(image, 0.8, 1.2, seeds[5])
    return tf.clip_by_value(image, 0.0, 255.0)


def _centre(image: tf.Tensor, size: int) -> tf.Tensor:
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / CENTRE_FRACTION) / tf.reduce_min(shape)
    resized = tf.image.resize(image, tf.cast(tf.round(shape * scale), tf.int32))
    return tf.image.resize_with_crop_or_pad(resized, size, size)


def make_classification_pipeline(
    ds: tf.data.Dataset,
    training: bool,
    *,
    size: int = 224,
    batch_size: int = 64,
    seed: int | None = None,
    shuffle_buffer: int = 1024,
) -> tf.data.Dataset:
    """``(image, label)`` batches, ImageNet-normalised: random resized crops with flips, 90°
    rotations, brightness / contrast noise for training; short-side resize + centre crop
    otherwise. ``ds`` yields TFDS ``micronet`` elements or ``(uint8 image, label)`` pairs."""
    autotune = tf.data.AUTOTUNE
    ds = ds.map(_as_pair, num_parallel_calls=autotune)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda pair, s: (_normalise(_augment(tf.cast(pair[0], tf.float32), size, s)), pair[1]),
            num_parallel_calls=autotune,
        )
    else:
        ds = ds.map(
            lambda image, label: (_normalise(_centre(tf.cast(image, tf.float32), size)), label),
            num_parallel_calls=autotune,
        )
    return ds.batch(batch_size).prefetch(autotune)
