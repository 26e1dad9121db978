"""`micronet-tf dataset`: users' image / mask folders written as a TFDS dataset that tfds.load
reads like the benchmark sets (real benchmark files, copied into folders of a user's layout)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from micronet_tf.cli import main
from micronet_tf.data.benchmark import resolve_pointer
from micronet_tf.data.class_map import parse_class_map
from micronet_tf.data.folder_tfds import (
    load_segmentation_tfds_info,
    load_segmentation_tfds_split,
)
from micronet_tf.data.folders import load_folder_pairs
from micronet_tf.preprocessing import read_image

SUPER_CLASSES = ["matrix", "secondary:0,0,255", "tertiary:255,0,0"]


def _copy(
    benchmark_data: Path, set_folder: str, split_folder: str, count: int, dest: Path
) -> tuple[Path, Path]:
    """The first ``count`` image / mask pairs of a benchmark folder, as a user would have them."""
    images, masks = dest / "images", dest / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for source, target in ((split_folder, images), (f"{split_folder}_annot", masks)):
        for path in sorted((benchmark_data / set_folder / source).iterdir())[:count]:
            shutil.copyfile(resolve_pointer(path), target / path.name)
    return images, masks


def _by_name(dataset) -> dict[str, dict]:
    return {e["image/filename"].decode(): e for e in tfds.as_numpy(dataset)}


def _expected(images: Path, masks: Path, classes, mask_format: str) -> dict[str, dict]:
    return {e["image/filename"]: e for e in load_folder_pairs(images, masks, classes, mask_format)}


def _assert_same(loaded: dict[str, dict], expected: dict[str, dict]) -> None:
    assert sorted(loaded) == sorted(expected)
    for name, example in expected.items():
        for key in ("image", "segmentation_mask"):
            assert loaded[name][key].dtype == np.uint8
            np.testing.assert_array_equal(loaded[name][key], example[key], err_msg=f"{name} {key}")


def _benchmark_spec():
    """What tfds.load("micronet_segmentation/...") gives (from its builder; nothing is built)."""
    return tfds.builder("micronet_segmentation/super1").info.features.get_tensor_spec()


def test_colour_masks_round_trip_through_tfds_load(
    benchmark_data: Path, tmp_path: Path, capsys
) -> None:
    images, masks = _copy(benchmark_data, "Super1", "train", 3, tmp_path / "train")
    val_images, val_masks = _copy(benchmark_data, "Super1", "val", 1, tmp_path / "val")
    out = tmp_path / "out"
    assert (
        main(
            [
                "dataset",
                "--images",
                str(images),
                "--masks",
                str(masks),
                "--val-images",
                str(val_images),
                "--val-masks",
                str(val_masks),
                "--classes",
                *SUPER_CLASSES,
                "--out",
                str(out),
                "--shard-examples",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    version_dir = out / "micrographs" / "1.0.0"
    assert f"wrote {version_dir}" in printed
    assert (
        "train      3 examples, 2 shards" in printed
        and "validation 1 examples, 1 shard\n" in printed
    )
    assert f'tfds.load("micrographs", data_dir="{out}"' in printed
    assert sorted(p.name for p in version_dir.glob("*.tfrecord*")) == [
        "micrographs-train.tfrecord-00000-of-00002",
        "micrographs-train.tfrecord-00001-of-00002",
        "micrographs-validation.tfrecord-00000-of-00001",
    ]

    # tfds.load finds it by name in data_dir, with no builder code: the same keys, dtypes and
    # shapes as the benchmark sets, and the decoded originals, pixel for pixel.
    colours = parse_class_map(SUPER_CLASSES)
    train = tfds.load("micrographs", data_dir=out, split="train")
    assert train.element_spec == _benchmark_spec()
    expected = _expected(images, masks, colours.folder_classes, "rgb")
    assert all(set(np.unique(e["segmentation_mask"])) == {0, 1, 2} for e in expected.values())
    _assert_same(_by_name(train), expected)
    validation = load_segmentation_tfds_split(out / "micrographs", "validation")
    assert validation.element_spec == _benchmark_spec()
    _assert_same(
        _by_name(validation), _expected(val_images, val_masks, colours.folder_classes, "rgb")
    )

    info = load_segmentation_tfds_info(out / "micrographs")
    assert info.path == version_dir and info.data_dir == out and info.name == "micrographs"
    assert info.class_map == colours and not info.keep_orientation
    assert info.splits == {"train": 3, "validation": 1}
    assert info.shards == {"train": 2, "validation": 1}
    first = sorted(info.sources["train"], key=lambda s: s["image"])[0]
    assert first["image"] == sorted(p.name for p in images.iterdir())[0]
    assert first["mask_sha256"] == hashlib.sha256((masks / first["mask"]).read_bytes()).hexdigest()
    assert (
        first["image_sha256"] == hashlib.sha256((images / first["image"]).read_bytes()).hexdigest()
    )
    # TFDS itself carries the class map: in the features and in info.metadata.
    builder = tfds.builder("micrographs", data_dir=out)
    assert builder.info.features["segmentation_mask"].names == ["matrix", "secondary", "tertiary"]
    assert builder.info.metadata["micronet_tf"]["class_map"] == colours.to_json()


def test_index_masks_keep_orientation_and_default_shards(
    benchmark_data: Path, tmp_path: Path
) -> None:
    images, masks = _copy(benchmark_data, "EBC2", "train", 2, tmp_path / "train")
    test_images, test_masks = _copy(benchmark_data, "EBC2", "test", 1, tmp_path / "test")
    out = tmp_path / "data"
    assert (
        main(
            [
                "dataset",
                "--images",
                str(images),
                "--masks",
                str(masks),
                "--test-images",
                str(test_images),
                "--test-masks",
                str(test_masks),
                "--mask-format",
                "index",
                "--classes",
                "background",
                "oxide",
                "crack",
                "--keep-orientation",
                "--name",
                "coatings",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    info = load_segmentation_tfds_info("coatings", data_dir=out)
    assert info.class_map == parse_class_map(["background", "oxide", "crack"], "index")
    assert info.keep_orientation
    assert info.splits == {"train": 2, "test": 1} and info.shards == {"train": 1, "test": 1}
    train = _by_name(load_segmentation_tfds_split(info.path, "train"))
    _assert_same(train, _expected(images, masks, list(info.class_map.names), "index"))
    # Index masks are stored as they are: the raw values, 0..2.
    for name, example in train.items():
        np.testing.assert_array_equal(
            example["segmentation_mask"][..., 0], read_image(masks / name)
        )
    test = _by_name(tfds.load("coatings", data_dir=out, split="test"))
    assert sorted(test) == sorted(p.name for p in test_images.iterdir())


def test_existing_output_is_refused_then_replaced_with_force(
    benchmark_data: Path, tmp_path: Path, capsys
) -> None:
    images, masks = _copy(benchmark_data, "Super3", "train", 1, tmp_path)
    out = tmp_path / "out"
    command = [
        "dataset",
        "--images",
        str(images),
        "--masks",
        str(masks),
        "--classes",
        *SUPER_CLASSES,
        "--out",
        str(out),
    ]
    assert main(command) == 0
    (out / "notes.txt").write_text("the user's")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert main([*command, "--keep-orientation"]) == 2
    error = capsys.readouterr().err
    assert f"--out {str(out)!r} already holds a dataset named 'micrographs'" in error
    assert "--force" in error
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not load_segmentation_tfds_info(out / "micrographs").keep_orientation

    assert main([*command, "--keep-orientation", "--force"]) == 0
    assert load_segmentation_tfds_info(out / "micrographs" / "1.0.0").keep_orientation
    assert sorted(p.name for p in (out / "micrographs").iterdir()) == ["1.0.0"]  # no leftovers
    assert (out / "notes.txt").read_text() == "the user's"
    with pytest.raises(ValueError, match=r"split='validation': dataset .* has the splits train"):
        load_segmentation_tfds_split(out / "micrographs", "validation")


def test_errors_name_the_argument_and_leave_nothing(tmp_path: Path, capsys) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(images / "a.png")
    Image.fromarray(np.full((8, 10), 5, np.uint8)).save(masks / "a.png")  # 5: not a class
    out = tmp_path / "out"
    base = [
        "dataset",
        "--images",
        str(images),
        "--masks",
        str(masks),
        "--out",
        str(out),
        "--classes",
        "background",
        "oxide",
    ]

    assert main(base) == 2
    assert "values outside 0..1" in capsys.readouterr().err
    assert not out.exists()  # a failed write leaves no folder behind

    assert main([*base[:4], str(tmp_path / "none"), *base[5:]]) == 2
    assert f"--masks {str(tmp_path / 'none')!r} is not a folder" in capsys.readouterr().err
    assert main([*base, "--val-masks", str(masks)]) == 2
    assert "--val-masks is given but --val-images is not" in capsys.readouterr().err
    assert main([*base, "--mask-format", "index", "--classes", "a:0,0,255", "b"]) == 2
    assert "--classes" in capsys.readouterr().err

    with pytest.raises(
        FileNotFoundError,
        match=r"expected a dataset written by `micronet-tf "
        r"dataset`, the folder OUT/NAME or "
        r"OUT/NAME/1\.0\.0",
    ):
        load_segmentation_tfds_info(tmp_path)


def test_shards_close_at_the_size_target(tmp_path: Path, monkeypatch) -> None:
    from micronet_tf.data import folder_tfds

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 10, 3), i, np.uint8)).save(images / f"{i}.png")
        Image.fromarray(np.eye(8, 10, dtype=np.uint8)).save(masks / f"{i}.png")
    class_map = parse_class_map(["background", "oxide"])
    path = folder_tfds.write_segmentation_tfds(images, masks, class_map, out_dir=tmp_path / "a")
    assert load_segmentation_tfds_info(path).shards == {"train": 1}
    monkeypatch.setattr(folder_tfds, "SHARD_BYTES", 1)  # every example fills a shard
    path = folder_tfds.write_segmentation_tfds(images, masks, class_map, out_dir=tmp_path / "b")
    assert load_segmentation_tfds_info(path).shards == {"train": 3}
    loaded = _by_name(load_segmentation_tfds_split(path, "train"))
    assert sorted(loaded) == ["0.png", "1.png", "2.png"]
    assert [int(loaded[f"{i}.png"]["image"].max()) for i in range(3)] == [0, 1, 2]
