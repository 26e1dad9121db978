"""segmentation_dataset_from_folders: pairing rules and the errors users will meet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from micronet_tf.data import segmentation_dataset_from_folders

COLOURS = {"matrix": (0, 0, 0), "secondary": (0, 0, 255), "tertiary": (255, 0, 0)}


def _write(
    images: Path, masks: Path, name: str, mask_name: str, mask: np.ndarray, size=(16, 20)
) -> None:
    images.mkdir(exist_ok=True)
    masks.mkdir(exist_ok=True)
    tifffile.imwrite(images / f"{name}.tif", np.zeros((*size, 3), np.uint8))
    Image.fromarray(mask).save(masks / mask_name)


def _rgb_mask(size=(16, 20)) -> np.ndarray:
    mask = np.zeros((*size, 3), np.uint8)
    mask[:4, :, 2] = 255  # secondary
    mask[4:5, :2, 0] = 255  # tertiary
    return mask


def test_rgb_and_index_masks(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    _write(images, masks, "a", "a_mask.png", _rgb_mask())
    _write(images, masks, "b #1 (x)", "b #1 (x).png", _rgb_mask())
    (images / ".DS_Store").write_bytes(b"")
    examples = list(segmentation_dataset_from_folders(images, masks, COLOURS).as_numpy_iterator())
    assert [e["image/filename"].decode() for e in examples] == ["a.tif", "b #1 (x).tif"]
    mask = examples[0]["segmentation_mask"]
    assert mask.shape == (16, 20, 1) and mask.dtype == np.uint8
    assert (mask == 1).sum() == 80 and (mask == 2).sum() == 2

    idx_images, idx_masks = tmp_path / "i2", tmp_path / "m2"
    _write(idx_images, idx_masks, "c", "c.png", np.eye(16, 20, dtype=np.uint8))
    ds = segmentation_dataset_from_folders(
        idx_images, idx_masks, ["background", "oxide"], mask_format="index"
    )
    assert next(iter(ds))["segmentation_mask"].numpy().sum() == 16


def test_unpaired_files_are_named(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    _write(images, masks, "a", "a_mask.png", _rgb_mask())
    _write(images, masks, "lonely", "other_mask.png", _rgb_mask())
    with pytest.raises(
        ValueError,
        match=r"images without a mask: lonely\.tif; "
        r"masks without an image: other_mask\.png",
    ):
        segmentation_dataset_from_folders(images, masks, COLOURS)
    ds = segmentation_dataset_from_folders(images, masks, COLOURS, on_unpaired="skip")
    assert len(list(ds)) == 1


def test_colours_outside_the_map(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    mask = _rgb_mask()
    mask[10:14, :5] = (12, 200, 7)  # 20 of 320 pixels
    _write(images, masks, "a", "a_mask.png", mask)
    with pytest.raises(
        ValueError,
        match=r"a_mask\.png.*outside the class map \(20 of 320 "
        r"pixels, 6\.2%, e\.g\. \(12, 200, 7\)\)",
    ):
        segmentation_dataset_from_folders(images, masks, COLOURS)
    # One class may take every other colour (how the Super masks are encoded).
    ds = segmentation_dataset_from_folders(images, masks, {**COLOURS, "matrix": None})
    assert (next(iter(ds))["segmentation_mask"].numpy() == 0).sum() == 320 - 82


def test_index_values_outside_the_classes(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    mask = np.zeros((16, 20), np.uint8)
    mask[0, :8] = 7
    _write(images, masks, "a", "a.png", mask)
    with pytest.raises(
        ValueError, match=r"values outside 0\.\.1 \(8 of 320 pixels, 2\.5%, e\.g\. \[7\]"
    ):
        segmentation_dataset_from_folders(images, masks, ["background", "oxide"], "index")


def test_size_mismatch(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    _write(images, masks, "a", "a_mask.png", _rgb_mask(size=(16, 24)))
    with pytest.raises(
        ValueError,
        match=r"image 'a\.tif' is 20x16 \(WxH\) but its mask "
        r"'a_mask\.png' is 24x16",
    ):
        segmentation_dataset_from_folders(images, masks, COLOURS)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="images_dir="):
        segmentation_dataset_from_folders(tmp_path / "nope", tmp_path, COLOURS)
    with pytest.raises(ValueError, match="mask_format="):
        segmentation_dataset_from_folders(tmp_path, tmp_path, COLOURS, mask_format="bgr")
    with pytest.raises(TypeError, match="mask_format='rgb' needs classes as"):
        segmentation_dataset_from_folders(tmp_path, tmp_path, ["a", "b"])
