"""tf.data input pipeline for segmentation: albumentations augmentation, normalisation, targets."""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from micronet_tf.data.augment import crop_only, paper_augmentation
from micronet_tf.intensity import Normalization, to_uint8_rgb
from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

_SEED_RANGE = 2**31 - 1


class _ThreadLocalAugmenter:
    """Applies one augmentation copy per tf.data thread, reseeded per sample when it can be."""

    def __init__(self, augment: Callable) -> None:
        self._prototype = augment
        self._albumentations = hasattr(augment, "get_transform_init_args") or hasattr(
            augment, "transforms"
        )
        self._local = threading.local()

    def _transform(self) -> Callable:
        transform = getattr(self._local, "transform", None)
        if transform is None:
            transform = copy.deepcopy(self._prototype) if self._albumentations else self._prototype
            self._local.transform = transform
        return transform

    def __call__(self, image: np.ndarray, mask: np.ndarray, seed: np.int64):
        transform = self._transform()
        if hasattr(transform, "set_random_seed"):
            transform.set_random_seed(int(seed) % _SEED_RANGE)
        if self._albumentations:
            out = transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        else:
            image, mask = transform(image, mask)
        mask = np.asarray(mask)
        if mask.ndim == 2:
            mask = mask[..., None]
        return np.ascontiguousarray(image, np.uint8), np.ascontiguousarray(mask, np.uint8)


def _pair_reader(normalization: Normalization) -> Callable:
    """Element -> (uint8 HxWx3 image scaled by ``normalization``, uint8 HxWx1 class mask).

    Elements: TFDS / :func:`segmentation_dataset_from_folders` dicts or (image, mask) pairs; the
    images may be 8- or 16-bit (folders keep 16-bit files' precision until here)."""

    def stretch(image):
        return to_uint8_rgb(image, normalization)

    def read(*element):
        if len(element) == 1 and isinstance(element[0], dict):
            image, mask = element[0]["image"], element[0]["segmentation_mask"]
        elif len(element) == 2:
            image, mask = element
        else:
            raise ValueError(
                "expected dataset elements {'image', 'segmentation_mask', ...} or "
                f"(image, mask) pairs, got {len(element)} components"
            )
        if image.shape.rank == 3 and image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        if normalization.kind == "percentile":  # the same NumPy code as predict's
            height, width = tf.shape(image)[0], tf.shape(image)[1]
            image = tf.numpy_function(stretch, [image], tf.uint8, stateful=False)
            image = tf.reshape(image, (height, width, 3))
        elif image.dtype != tf.uint8:  # 16-bit / float input: scaled by its range
            image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
        if mask.shape.rank == 2:
            mask = mask[..., None]
        return image, tf.cast(mask, tf.uint8)

    return read


def _standardizer(standardization: str | tuple | None) -> Callable[[tf.Tensor], tf.Tensor]:
    if standardization is None:
        return lambda image: tf.cast(image, tf.float32) / 255.0
    if isinstance(standardization, str) and standardization == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif isinstance(standardization, tuple) and len(standardization) == 2:
        mean, std = (np.asarray(v, np.float32) for v in standardization)
    else:
        raise ValueError(
            f"standardization={standardization!r}: expected 'imagenet', None or a (mean, std) pair"
        )
    mean, std = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)
    return lambda image: (tf.cast(image, tf.float32) / 255.0 - mean) / std


def _split_normalization(normalization, standardization):
    """Before 0.2, ``normalization=`` took what ``standardization=`` takes now."""
    if isinstance(normalization, tuple) or normalization == "imagenet":
        warnings.warn(
            f"make_segmentation_pipeline(normalization={normalization!r}) is deprecated: "
            "normalization= now names the intensity scaling ('dtype' or 'percentile'); pass "
            "the mean / std as standardization=",
            DeprecationWarning,
            stacklevel=3,
        )
        return Normalization(), normalization
    return Normalization.parse(normalization), standardization


def _targeter(classes: int | Sequence[int]) -> Callable[[tf.Tensor], tf.Tensor]:
    """Class-index mask HxWx1 -> float32 HxWxC: one-hot over ``range(classes)`` or one channel
    per listed class index (a single index: one binary channel)."""
    if isinstance(classes, int):
        if classes < 2:
            raise ValueError(
                f"classes={classes}: one-hot needs >= 2 classes; for a binary "
                "target pass the foreground index as a list, e.g. classes=[1]"
            )
        return lambda mask: tf.one_hot(tf.cast(mask[..., 0], tf.int32), classes, dtype=tf.float32)
    values = [int(c) for c in classes]
    if not values:
        raise ValueError("classes is empty; list the class indices that become target channels")
    return lambda mask: tf.stack(
        [tf.cast(tf.equal(mask[..., 0], v), tf.float32) for v in values], axis=-1
    )


def _make_augment(augment, crop: int | None, keep_orientation: bool) -> Callable:
    if callable(augment):
        return augment
    if augment == "paper":
        return paper_augmentation(crop, keep_orientation=keep_orientation)
    if augment in ("none", None):
        return crop_only(crop)
    raise ValueError(
        f"augment={augment!r}: expected 'paper', 'none' or a callable "
        "(an albumentations transform, or f(image, mask) -> (image, mask))"
    )


def make_segmentation_pipeline(
    ds: tf.data.Dataset,
    training: bool,
    crop: int | None = 512,
    batch_size: int = 8,
    augment: str | Callable | None = "paper",
    normalization: Normalization | str | None = "dtype",
    *,
    classes: int | Sequence[int],
    keep_orientation: bool = False,
    seed: int | None = None,
    deterministic: bool = False,
    shuffle: bool | None = None,
    size_multiple: int = 32,
    cache: bool = True,
    return_info: bool = False,
    standardization: str | tuple | None = "imagenet",
    max_batch_pixels: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``(image, target)`` for training, ``(image, target, weight)`` for evaluation.

    ``ds``: TFDS ``micronet_segmentation`` / :func:`segmentation_dataset_from_folders` elements
    or ``(image, mask)`` pairs (uint8 HxWx3, class-index HxW(x1) mask). Training: ``augment``
    (``"paper"``: :func:`~micronet_tf.data.augment.paper_augmentation`, ``keep_orientation=True``
    for EBC; ``"none"``: padded random crop only; or a callable) runs in parallel threads; with
    ``seed`` it is reproducible, and ``deterministic=True`` also fixes the order. Evaluation
    (``training=False``, or ``crop=None``): whole images zero-padded at the bottom / right to a
    multiple of ``size_multiple``; ``weight`` is 1 on real pixels and 0 on padding (Keras uses
    it as ``sample_weight``), and ``return_info=True`` replaces it by ``{"height", "width"}``
    for cropping predictions back (``prediction[:height, :width]``). An evaluation batch holds
    up to ``batch_size`` images of one padded size (mixed sizes: in the order their batches
    fill) and at most ``max_batch_pixels`` pixels: on CPUs without AVX-512, oneDNN's
    convolutions take twice as long per pixel for one image as for four.

    ``normalization``: how raw intensities become [0, 1] (:mod:`micronet_tf.intensity`:
    ``"dtype"``, the default, or ``"percentile"`` / ``"percentile:0.1,99.9"``, per whole image
    before any crop); ``standardization``: then ImageNet's mean / std (``"imagenet"``), a
    ``(mean, std)`` pair, or None (the [0, 1] values as they are).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected >= 1")
    if max_batch_pixels is not None and max_batch_pixels < 1:
        raise ValueError(f"max_batch_pixels={max_batch_pixels}: expected >= 1 or None")
    normalization, standardization = _split_normalization(normalization, standardization)
    normalize, targets = _standardizer(standardization), _targeter(classes)
    autotune = tf.data.AUTOTUNE
    ds = ds.map(_pair_reader(normalization), num_parallel_calls=autotune)
    if cache:
        ds = ds.cache()
    if training if shuffle is None else shuffle:
        ds = ds.shuffle(256, seed=seed, reshuffle_each_iteration=True)
    if training:
        augmenter = _ThreadLocalAugmenter(_make_augment(augment, crop, keep_orientation))
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

        def apply(pair, sample_seed):
            image, mask = tf.numpy_function(
                augmenter, [pair[0], pair[1], sample_seed], [tf.uint8, tf.uint8], stateful=False
            )
            image.set_shape((crop, crop, 3))
            mask.set_shape((crop, crop, 1))
            return image, mask

        ds = tf.data.Dataset.zip((ds, seeds)).map(
            apply, num_parallel_calls=autotune, deterministic=deterministic
        )
    if training and crop is not None:
        ds = ds.map(
            lambda image, mask: (normalize(image), targets(mask)),
            num_parallel_calls=autotune,
            deterministic=deterministic,
        )
        return ds.batch(batch_size).prefetch(autotune)

    def pad(image, mask):
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        pad_h, pad_w = (-height) % size_multiple, (-width) % size_multiple
        padding = [[0, pad_h], [0, pad_w], [0, 0]]
        x = tf.pad(normalize(image), padding)
        y = tf.pad(targets(mask), padding)
        if return_info:
            return x, y, {"height": height, "width": width}
        weight = tf.pad(tf.ones((height, width), tf.float32), padding[:2])
        return x, y, weight

    ds = ds.map(pad, num_parallel_calls=autotune, deterministic=deterministic or not training)
    return _batch_by_size(ds, batch_size, max_batch_pixels).prefetch(autotune)


def _batch_by_size(
    ds: tf.data.Dataset, batch_size: int, max_batch_pixels: int | None
) -> tf.data.Dataset:
    """Batches of up to ``batch_size`` whole images of one padded size, at most
    ``max_batch_pixels`` pixels each (at least one image); no image is padded to a batch-mate's
    size, so the unweighted loss and metrics see the same pixels as one image at a time."""
    if batch_size == 1:
        return ds.batch(1)
    shift = tf.constant(2**31, tf.int64)

    def size_key(image, *rest):
        shape = tf.shape(image, out_type=tf.int64)
        return shape[0] * shift + shape[1]

    def window(key):
        if max_batch_pixels is None:
            return tf.constant(batch_size, tf.int64)
        images = tf.constant(max_batch_pixels, tf.int64) // ((key // shift) * (key % shift))
        return tf.clip_by_value(images, 1, batch_size)

    return ds.group_by_window(
        size_key, lambda _, images: images.batch(batch_size), window_size_func=window
    )


def without_autotuning(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` with tf.data's autotuning off (``AUTOTUNE`` parallelism then means one thread per
    core). Freeing an iterator waits for its autotuning thread, and Keras frees one at the
    start of each validation and at the end of ``fit``: measured stalls of 2 to 20 s per epoch,
    both cores idle, and ~20 s at the end of a U-Net resnet18 run on Super-1 (2 cores)."""
    if not isinstance(ds, tf.data.Dataset):
        return ds
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)
