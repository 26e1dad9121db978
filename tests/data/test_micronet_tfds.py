"""TFDS ``micronet`` (classification folders): dummy data, formats, corrupt files, the split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
import tifffile
from PIL import Image

import micronet_tf  # noqa: F401  (registers the datasets)
from micronet_tf.data import MicronetConfig
from micronet_tf.data.class_folders import list_class_folders, split_validation

Builder = tfds.builder_cls("micronet")


class MicronetDummyTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = Builder
    SPLITS = {"train": 4, "validation": 2}  # 3 per class, at most half of a class validates


def _tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = root / "ni_superalloy", root / "steel" / "nested"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (30, 20), dtype=np.uint8)).save(a / "grey8.png")
    Image.fromarray(rng.integers(0, 65536, (30, 20), dtype=np.uint16)).save(a / "grey16.png")
    Image.fromarray(rng.integers(0, 256, (12, 14, 4), dtype=np.uint8)).save(a / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)).save(a / "rgb.jpg")
    tifffile.imwrite(b / "rgb16.tif", np.full((9, 11, 3), 65535, np.uint16))
    tifffile.imwrite(b / "grey16.tif", rng.integers(0, 65536, (9, 11), dtype=np.uint16))
    tifffile.imwrite(b / "rgba8.tiff", rng.integers(0, 256, (9, 11, 4), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).convert("P").save(b / "p.png")
    (b / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (b / "notes.txt").write_text("not an image; ignored")
    (root / "empty_class").mkdir()


def test_generated_tree_with_corrupt_file(tmp_path: Path, caplog) -> None:
    _tree(tmp_path / "manual")
    config = MicronetConfig(name="tiny", validation_per_class=1, seed=3)
    builder = Builder(config=config, data_dir=tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / "manual")
        )
    assert builder.info.features["label"].names == ["ni_superalloy", "steel"]
    splits = {s: i.num_examples for s, i in builder.info.splits.items()}
    assert sum(splits.values()) == 8  # 9 images, the corrupt one skipped
    assert "steel/nested/broken.png" in caplog.text and "skipped 1 unreadable" in caplog.text
    assert "empty_class" in caplog.text
    images = {
        e["image/filename"].decode(): e["image"]
        for split in splits
        for e in tfds.as_numpy(builder.as_dataset(split))
    }
    assert all(i.dtype == np.uint8 and i.ndim == 3 and i.shape[-1] == 3 for i in images.values())
    assert images["steel/nested/rgb16.tif"].min() == 255  # 16-bit scaled by its range
    assert images["ni_superalloy/grey16.png"].max() > 200


def test_validation_draw_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(120):
            (tmp_path / name / f"{i:03d}.png").write_bytes(b"")
    classes = list_class_folders(tmp_path)
    train, validation = split_validation(classes, per_class=50, seed=0)
    assert len(validation) == 100 and len(train) == 140
    assert [p.name for p, _ in validation] == [
        p.name for p, _ in split_validation(classes, 50, seed=0)[1]
    ]
    assert validation != split_validation(classes, 50, seed=1)[1]
    assert {label for _, label in validation} == {0, 1}
