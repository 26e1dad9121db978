"""Training and evaluating on one's own labelled folders from the command line: one-shot with
a held-out strip, colour and index masks, fine-tuning with a new class map, clear errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from micronet_tf.cli import main
from tests.labelled_folders import copy_pairs

SUPER_CLASSES = ["matrix", "secondary:0,0,255", "tertiary:255,0,0"]
QUICK = ["--encoder", "resnet18", "--crop", "64", "--epochs", "1", "--checkpoint-every", "1"]


@pytest.fixture(scope="module")
def one_shot_run(tmp_path_factory, benchmark_data: Path) -> Path:
    """Super-3's single training image (a 256 crop), a quarter held out: a finished run."""
    root = tmp_path_factory.mktemp("one_shot")
    copy_pairs(benchmark_data, "Super3", "train", root / "images", root / "masks", 1)
    code = main(
        [
            "train",
            "--images",
            str(root / "images"),
            "--masks",
            str(root / "masks"),
            "--classes",
            *SUPER_CLASSES,
            "--val-fraction",
            "0.25",
            "--repeats",
            "2",
            *QUICK,
            "--out",
            str(root / "run"),
        ]
    )
    assert code == 0
    return root


def test_one_shot_run_records_its_data_and_class_map(one_shot_run: Path) -> None:
    from micronet_tf import load_model
    from micronet_tf.models import training_labels

    record = json.loads((one_shot_run / "run" / "run.json").read_text())
    (pair,) = record["data"]["train"]
    image = one_shot_run / "images" / pair["image"]
    assert pair["image_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    mask = one_shot_run / "masks" / pair["mask"]
    assert pair["mask_sha256"] == hashlib.sha256(mask.read_bytes()).hexdigest()
    held_out = record["data"]["validation"]
    assert held_out["val_fraction"] == 0.25
    assert held_out["columns"] == {f"{pair['image']} [held out]": [192, 256]}
    assert record["class_names"] == ["matrix", "secondary", "tertiary"]
    model = load_model(one_shot_run / "run" / "best.keras", compile=False)
    labels = training_labels(model)
    assert labels["class_map"]["colours"] == [None, [0, 0, 255], [255, 0, 0]]
    assert labels["channels"] == [0, 1, 2]


def test_held_out_strip_never_reaches_a_training_crop(tmp_path: Path) -> None:
    """The held-out columns carry a class of their own; no augmented training crop may show
    it, while the validation images hold nothing else."""
    from micronet_tf.training.runs import folder_training_data, training_pipelines

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for index, width in enumerate((160, 200)):
        image = rng.integers(0, 255, (96, width, 3), dtype=np.uint8)
        mask = (rng.random((96, width)) > 0.5).astype(np.uint8)
        mask[:, width - int(round(0.25 * width)) :] = 2  # exactly the strip held out
        tifffile.imwrite(tmp_path / "images" / f"m{index}.tif", image)
        tifffile.imwrite(tmp_path / "masks" / f"m{index}_mask.tif", mask)
    data = folder_training_data(
        tmp_path / "images", tmp_path / "masks", ["rest", "phase", "held_out"], val_fraction=0.25
    )
    train_ds, val_ds, count, _ = training_pipelines(
        data, crop=64, batch_size=None, repeats=8, seed=1
    )
    assert count == 16
    seen = 0.0
    for _ in range(25):  # epochs: flips, rotations, shifts, scales, crops anywhere
        for _, target in train_ds:
            assert float(np.asarray(target)[..., 2].max()) == 0.0
            seen += float(np.asarray(target)[..., 1].sum())
    assert seen > 0  # the training parts did reach the crops
    strips = [e["segmentation_mask"] for e in data.validation.as_numpy_iterator()]
    assert [s.shape[1] for s in strips] == [40, 50]
    assert all((s == 2).all() for s in strips)  # validation: the strip alone
    # ... and it is what the validation pipeline feeds (zero-padded to multiples of 32).
    # Both are padded to 96x64, so they share one batch.
    held_out = [float(np.asarray(t)[i, ..., 2].sum()) for _, t in val_ds for i in range(len(t))]
    assert sorted(held_out) == [96 * 40, 96 * 50]


def test_fine_tune_with_a_new_class_map_keeps_all_but_the_head(one_shot_run: Path, capsys) -> None:
    from micronet_tf import load_model
    from micronet_tf.data.class_map import parse_class_map
    from micronet_tf.training.benchmark_data import SegmentationTask
    from micronet_tf.training.runs import _fine_tune_builder

    init = one_shot_run / "run" / "best.keras"
    task = SegmentationTask("x", parse_class_map(["matrix", "precipitate:0,0,255"]))
    build, architecture, encoder, _ = _fine_tune_builder(init, task, None, None)
    assert "new head for precipitate" in capsys.readouterr().out
    assert (architecture, encoder) == ("Unet", "resnet18")
    old, new = load_model(init, compile=False), build()
    assert new.output_shape[-1] == 1 and old.output_shape[-1] == 3
    compared = 0
    for layer in new.layers:
        if layer.weights and not layer.name.startswith("segmentation_head"):
            for a, b in zip(layer.get_weights(), old.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)
                compared += 1
    assert compared > 100

    out = one_shot_run / "fine_tuned"
    code = main(
        [
            "train",
            "--images",
            str(one_shot_run / "images"),
            "--masks",
            str(one_shot_run / "masks"),
            "--classes",
            "matrix",
            "precipitate:0,0,255",
            "--init",
            str(init),
            "--crop",
            "64",
            "--epochs",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "new head for precipitate (the model had matrix, secondary, tertiary)" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["init"]["sha256"] == hashlib.sha256(init.read_bytes()).hexdigest()
    assert load_model(out / "best.keras", compile=False).output_shape[-1] == 1


def test_index_masks_with_validation_folders_then_evaluate(
    tmp_path: Path, benchmark_data: Path, capsys
) -> None:
    """EBC index masks (background / oxide / crack, down-scaled), validation folders given;
    evaluate reads the class map from the run's model."""
    copy_pairs(benchmark_data, "EBC1", "train", tmp_path / "i", tmp_path / "m", 2, None, 4)
    copy_pairs(benchmark_data, "EBC1", "val", tmp_path / "vi", tmp_path / "vm", 1, None, 4)
    code = main(
        [
            "train",
            "--images",
            str(tmp_path / "i"),
            "--masks",
            str(tmp_path / "m"),
            "--mask-format",
            "index",
            "--classes",
            "background",
            "oxide",
            "crack",
            "--keep-orientation",
            "--val-images",
            str(tmp_path / "vi"),
            "--val-masks",
            str(tmp_path / "vm"),
            *QUICK,
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["labels"]["keep_orientation"] is True
    assert [p["image"] for p in record["data"]["validation"]] == sorted(
        p.name for p in (tmp_path / "vi").iterdir()
    )
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            str(tmp_path / "run"),
            "--images",
            str(tmp_path / "vi"),
            "--masks",
            str(tmp_path / "vm"),
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean IoU (oxide, crack)" in printed
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["per_class_iou"]) == {"background", "oxide", "crack"}
    (row,) = metrics["images"]
    truth = tifffile.imread(next((tmp_path / "vm").iterdir()))
    assert row["area_oxide_true"] == pytest.approx(float(np.mean(truth == 1)))
    assert metrics["area_fraction_mean_abs_error"]["oxide"] == pytest.approx(
        abs(row["area_oxide"] - row["area_oxide_true"])
    )
    assert (tmp_path / "eval" / "training_curves.png").is_file()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--images", "IMAGES"], "--images needs --masks"),
        (["--dataset", "super3", "--images", "IMAGES", "--masks", "MASKS"], "one of the two"),
        (["--images", "IMAGES", "--masks", "MASKS"], "--classes: name the classes"),
        (
            [
                "--images",
                "IMAGES",
                "--masks",
                "MASKS",
                "--classes",
                "a",
                "b:0,0,255",
                "--val-fraction",
                "0.7",
            ],
            "--val-fraction 0.7: expected a fraction",
        ),
        (
            ["--images", "IMAGES", "--masks", "MASKS", "--classes", "a", "b:0,0,9999"],
            "--classes 'b:0,0,9999': expected NAME:R,G,B",
        ),
        (
            ["--images", "IMAGES", "--masks", "nowhere", "--classes", "a", "b"],
            "--masks 'nowhere' is not a folder",
        ),
        (
            ["--images", "IMAGES", "--masks", "MASKS", "--classes", "a", "b", "--init", "x.keras"],
            "--init 'x.keras': expected a trained .keras model",
        ),
        (["--dataset", "super3", "--classes", "a", "b"], "--classes: for --images folders"),
    ],
)
def test_bad_folder_arguments_are_named(tmp_path: Path, capsys, flags, expected) -> None:
    for folder in ("IMAGES", "MASKS"):
        (tmp_path / folder).mkdir()
    tifffile.imwrite(tmp_path / "IMAGES" / "a.tif", np.zeros((64, 64, 3), np.uint8))
    tifffile.imwrite(tmp_path / "MASKS" / "a.tif", np.zeros((64, 64), np.uint8))
    flags = [str(tmp_path / f) if f in ("IMAGES", "MASKS") else f for f in flags]
    code = main(["train", *flags, "--out", str(tmp_path / "run")])
    assert code == 2
    assert expected in capsys.readouterr().err.replace(str(tmp_path) + "/", "")
    assert not (tmp_path / "run").exists()


def test_folders_to_tfds_then_train_and_evaluate(
    tmp_path: Path, benchmark_data: Path, capsys
) -> None:
    """``micronet-tf dataset`` writes the folders as TFDS; ``train --dataset`` and
    ``evaluate --dataset`` read it, class map and all."""
    copy_pairs(benchmark_data, "Super1", "train", tmp_path / "i", tmp_path / "m", 2, 128)
    copy_pairs(benchmark_data, "Super1", "val", tmp_path / "vi", tmp_path / "vm", 1, 128)
    assert (
        main(
            [
                "dataset",
                "--images",
                str(tmp_path / "i"),
                "--masks",
                str(tmp_path / "m"),
                "--val-images",
                str(tmp_path / "vi"),
                "--val-masks",
                str(tmp_path / "vm"),
                "--classes",
                *SUPER_CLASSES,
                "--name",
                "alloy",
                "--out",
                str(tmp_path / "tfds"),
            ]
        )
        == 0
    )
    dataset = tmp_path / "tfds" / "alloy"
    assert main(["train", "--dataset", str(dataset), *QUICK, "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["dataset"] == str(dataset)
    assert record["class_names"] == ["matrix", "secondary", "tertiary"]
    assert [r["image"] for r in record["data"]["train"]] != []
    assert len(record["data"]["train"]) == 2 and len(record["data"]["validation"]) == 1
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "run"),
                "--dataset",
                str(dataset),
                "--split",
                "validation",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    assert "mean IoU (secondary, tertiary)" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [row["image"] for row in metrics["images"]] == [
        Path(p.name).stem for p in sorted((tmp_path / "vi").iterdir())
    ]
