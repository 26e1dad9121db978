"""make_segmentation_pipeline: shapes, seeds, EBC orientation, whole-image padding."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import tensorflow as tf

from micronet_tf.data import make_segmentation_pipeline, paper_augmentation
from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD


def _dataset(n=4, size=(96, 80)) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)
    masks = np.zeros((n, *size, 1), np.uint8)
    masks[:, :20] = 1
    masks[:, 50:55, :10] = 2
    return tf.data.Dataset.from_tensor_slices({"image": images, "segmentation_mask": masks})


def test_training_shapes_and_targets() -> None:
    ds = make_segmentation_pipeline(
        _dataset(), training=True, crop=64, batch_size=2, classes=3, seed=0
    )
    x, y = next(iter(ds))
    assert x.shape == (2, 64, 64, 3) and x.dtype == tf.float32
    assert y.shape == (2, 64, 64, 3) and y.dtype == tf.float32
    np.testing.assert_array_equal(tf.reduce_sum(y, -1).numpy(), 1.0)  # one-hot
    binary = make_segmentation_pipeline(
        _dataset(), training=True, crop=64, batch_size=4, classes=[1], seed=0
    )
    _, y = next(iter(binary))
    assert y.shape == (4, 64, 64, 1) and set(np.unique(y.numpy())) <= {0.0, 1.0}


def test_seeded_runs_repeat_and_epochs_differ() -> None:
    def batches(seed):
        ds = make_segmentation_pipeline(
            _dataset(),
            training=True,
            crop=48,
            batch_size=4,
            classes=3,
            seed=seed,
            deterministic=True,
        )
        return [x.numpy() for x, _ in ds], [x.numpy() for x, _ in ds]  # two epochs

    first, second = batches(7), batches(7)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])  # a new draw each epoch
    assert not np.array_equal(first[0], batches(8)[0])


def test_ebc_keeps_orientation() -> None:
    names = [type(t).__name__ for t in paper_augmentation(64, keep_orientation=True).transforms]
    assert "HorizontalFlip" in names
    assert not {"VerticalFlip", "RandomRotate90", "Transpose"} & set(names)
    # Behaviour: a mask with a top-bottom structure is only ever mirrored left-right.
    mask = np.zeros((64, 64, 1), np.uint8)
    mask[:16] = 1
    mask[40:, :8] = 2
    image = np.zeros((64, 64, 3), np.uint8)
    ds = tf.data.Dataset.from_tensors((image, mask)).repeat(40)
    out = make_segmentation_pipeline(
        ds,
        training=True,
        crop=64,
        batch_size=40,
        classes=3,
        keep_orientation=True,
        seed=1,
        shuffle=False,
    )
    _, y = next(iter(out))
    got = np.argmax(y.numpy(), -1)
    allowed = (mask[..., 0], mask[:, ::-1, 0])
    assert all(any(np.array_equal(g, a) for a in allowed) for g in got)
    assert any(np.array_equal(g, allowed[1]) for g in got)  # flips do happen


def test_whole_image_evaluation_pads_and_crops_back() -> None:
    ds = make_segmentation_pipeline(
        _dataset(n=2, size=(50, 70)), training=False, batch_size=2, classes=[1]
    )
    x, y, weight = next(iter(ds))
    assert x.shape == (2, 64, 96, 3) and y.shape == (2, 64, 96, 1) and weight.shape == (2, 64, 96)
    assert weight.numpy().sum() == 2 * 50 * 70 and weight[0, 49, 69] == 1 and weight[0, 50, 0] == 0
    raw = next(iter(_dataset(n=2, size=(50, 70))))["image"].numpy()
    expected = (raw / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(x[0, :50, :70].numpy(), expected, atol=1e-5)
    info_ds = make_segmentation_pipeline(
        _dataset(n=1, size=(50, 70)), training=False, batch_size=1, classes=3, return_info=True
    )
    _, _, info = next(iter(info_ds))
    assert (int(info["height"][0]), int(info["width"][0])) == (50, 70)


def test_evaluation_batches_images_of_one_size_within_a_pixel_budget() -> None:
    sizes = [(50, 70), (30, 40), (50, 70), (50, 70), (30, 40)]
    ds = _dataset(n=1, size=sizes[0])
    for size in sizes[1:]:
        ds = ds.concatenate(_dataset(n=1, size=size))
    batches = list(make_segmentation_pipeline(ds, training=False, batch_size=2, classes=3))
    # Padded to 64x96 and 32x64; never to a batch-mate's size, so the weights stay exact.
    assert sorted(tuple(x.shape[:3]) for x, _, _ in batches) == [
        (1, 64, 96),
        (2, 32, 64),
        (2, 64, 96),
    ]
    assert sum(float(w.numpy().sum()) for _, _, w in batches) == 3 * 50 * 70 + 2 * 30 * 40
    within_budget = make_segmentation_pipeline(
        ds, training=False, batch_size=2, classes=3, max_batch_pixels=2 * 32 * 64
    )
    shapes = sorted(tuple(x.shape[:3]) for x, _, _ in within_budget)
    assert shapes == [(1, 64, 96)] * 3 + [(2, 32, 64)]
    with pytest.raises(ValueError, match="max_batch_pixels=0"):
        make_segmentation_pipeline(ds, training=False, classes=3, max_batch_pixels=0)


def test_small_images_are_padded_for_the_training_crop() -> None:
    ds = make_segmentation_pipeline(
        _dataset(n=2, size=(30, 40)),
        training=True,
        crop=64,
        batch_size=2,
        classes=3,
        augment="none",
        seed=0,
    )
    x, y = next(iter(ds))
    assert x.shape == (2, 64, 64, 3)
    assert y.numpy()[..., 0].sum() >= 2 * (64 * 64 - 30 * 40)  # padding is class 0


def test_custom_and_invalid_augment() -> None:
    flip = A.Compose([A.RandomCrop(32, 32), A.VerticalFlip(p=1.0)])
    x, _ = next(
        iter(
            make_segmentation_pipeline(
                _dataset(), True, crop=32, batch_size=1, augment=flip, classes=3, seed=0
            )
        )
    )
    assert x.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="augment="):
        make_segmentation_pipeline(_dataset(), True, augment="heavy", classes=3)
    with pytest.raises(ValueError, match="classes=1"):
        make_segmentation_pipeline(_dataset(), True, classes=1)
