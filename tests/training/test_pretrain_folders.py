"""``micronet-tf pretrain`` / ``pretrain_on_folders``: MicroNet-style pre-training on class
folders made of real benchmark micrographs (Super-1 and EBC-1 images as two classes, shrunk)."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from micronet_tf import cli
from micronet_tf.data.decode import read_rgb

SIDE = 48  # the micrographs are shrunk to SIDE x SIDE to keep training fast


def _shrunk(path: Path) -> np.ndarray:
    return np.asarray(Image.fromarray(read_rgb(path)).resize((SIDE, SIDE), Image.BILINEAR))


@pytest.fixture(scope="module")
def class_tree(benchmark_data: Path, tmp_path_factory) -> Path:
    """``superalloy/`` (RGB TIFF, grey 8-bit PNG in a sub-folder, JPEG) and ``ebc/`` (RGB TIFF,
    grey 16-bit TIFF), 4 images each, plus a non-image file that must be ignored."""
    root = tmp_path_factory.mktemp("classes")
    superalloy, ebc = root / "superalloy", root / "ebc"
    (superalloy / "batch2").mkdir(parents=True)
    ebc.mkdir()
    super_images = sorted((benchmark_data / "Super1" / "train").glob("*.tif"))[:4]
    ebc_images = sorted((benchmark_data / "EBC1" / "train").glob("*.tif"))[:4]
    assert len(super_images) == len(ebc_images) == 4
    pixels = [_shrunk(p) for p in super_images]
    tifffile.imwrite(superalloy / "a.tif", pixels[0])
    tifffile.imwrite(superalloy / "b.tif", pixels[1])
    Image.fromarray(pixels[2].mean(-1).astype(np.uint8)).save(superalloy / "batch2" / "c.png")
    Image.fromarray(pixels[3]).save(superalloy / "d.jpg", quality=95)
    (superalloy / "notes.txt").write_text("not an image")
    for k, path in enumerate(ebc_images[:3]):
        tifffile.imwrite(ebc / f"{k}.tif", _shrunk(path))
    grey16 = _shrunk(ebc_images[3]).mean(-1).astype(np.uint16) * 257
    tifffile.imwrite(ebc / "3_16bit.tif", grey16)
    return root


def _log_rows(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_cli_pretrains_records_its_data_resumes_and_hands_the_encoder_over(
    class_tree: Path, tmp_path: Path, capsys, caplog
) -> None:
    import keras

    from micronet_tf import load_model
    from micronet_tf.encoders import get_encoder

    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(class_tree, data)  # changed at the end
    common = [
        "pretrain",
        "--data",
        str(data),
        "--encoder",
        "resnet18",
        "--out",
        str(run),
        "--size",
        "32",
        "--batch-size",
        "4",
        "--lr",
        "0.01",
        "--checkpoint-every",
        "1",
    ]
    with caplog.at_level(logging.WARNING):
        assert cli.main([*common, "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    # 4 images a class: the default 50 validation images become 2 (half), with a warning.
    assert "go to validation instead of 50" in caplog.text
    assert "2 classes (ebc, superalloy), 4 training and 4 validation images" in out
    weights = run / "encoder.weights.h5"
    assert f"--encoder resnet18 --encoder-weights {weights}" in out
    assert "best validation top-1" in out and "top-5" in out
    rows = _log_rows(run)
    assert [int(r["epoch"]) for r in rows] == [0]
    assert {"val_top1", "val_top5"} <= set(rows[0])

    # run.json: the label order and every file with its class, split and sha256.
    record = json.loads((run / "run.json").read_text())
    assert record["class_names"] == ["ebc", "superalloy"]
    assert json.loads((run / "classes.json").read_text()) == ["ebc", "superalloy"]
    assert (record["val_per_class"], record["samples_per_epoch"], record["encoder"]) == (
        50,
        4,
        "resnet18",
    )
    images = sorted(
        p.relative_to(data).as_posix()
        for p in data.rglob("*")
        if p.suffix in (".tif", ".png", ".jpg")
    )
    assert sorted(f["path"] for f in record["files"]) == images  # notes.txt left out
    for entry in record["files"]:
        file = data / entry["path"]
        assert entry["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest(), entry
        assert entry["class"] == entry["path"].split("/")[0]
    for name in ("ebc", "superalloy"):
        splits = sorted(f["split"] for f in record["files"] if f["class"] == name)
        assert splits == ["train", "train", "validation", "validation"], name

    # The same command with a larger budget resumes after epoch 1.
    assert cli.main([*common, "--epochs", "2"]) == 0
    assert "resuming" in capsys.readouterr().out
    rows = _log_rows(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]

    # encoder.weights.h5 is the trunk of best.keras, layer for layer.
    best = load_model(run / "best.keras", compile=False)
    encoder = get_encoder("resnet18", weights=weights)
    fresh = get_encoder("resnet18")
    compared = 0
    for layer in (layer for layer in encoder.layers if layer.weights):
        for ours, theirs in zip(layer.get_weights(), best.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(ours, theirs, err_msg=layer.name)
            compared += 1
    assert compared == len(encoder.weights) == 100  # resnet18's
    assert not np.array_equal(
        encoder.get_layer("conv1").get_weights()[0], fresh.get_layer("conv1").get_weights()[0]
    )
    logits = np.asarray(best(np.zeros((1, 32, 32, 3), "float32"), training=False))
    assert logits.shape == (1, 2)
    keras.utils.clear_session(free_memory=True)

    # Finished at its budget: the same command refuses; other data or another draw too.
    assert cli.main([*common, "--epochs", "2"]) == 2
    assert "finished run" in capsys.readouterr().err
    assert cli.main([*common, "--epochs", "3", "--val-per-class", "1"]) == 2
    err = capsys.readouterr().err
    assert "val_per_class: 50 there, 1 now" in err and "samples_per_epoch: 4 there, 6 now" in err
    shutil.copy(data / "ebc" / "1.tif", data / "ebc" / "0.tif")
    assert cli.main([*common, "--epochs", "3"]) == 2
    assert "holds a different run (1 file(s) changed (ebc/0.tif))" in capsys.readouterr().err
    assert [int(r["epoch"]) for r in _log_rows(run)] == [0, 1]  # nothing trained meanwhile

    # --force replaces the run: a fresh one on the files as they are now.
    assert cli.main([*common, "--epochs", "1", "--force"]) == 0
    assert "resuming" not in capsys.readouterr().out
    assert [int(r["epoch"]) for r in _log_rows(run)] == [0]
    digest = hashlib.sha256((data / "ebc" / "0.tif").read_bytes()).hexdigest()
    record = json.loads((run / "run.json").read_text())
    assert [f["sha256"] for f in record["files"] if f["path"] == "ebc/0.tif"] == [digest]


def _make(root: Path, layout: dict[str, int], source: Path) -> Path:
    for name, count in layout.items():
        (root / name).mkdir(parents=True)
        for k in range(count):
            shutil.copy(source, root / name / f"{k}.tif")
    return root


BAD = {
    # id: (extra flags, or a data layout to build; the text the message must hold)
    "missing-data": (["--data", "{tmp}/nowhere"], "--data '"),
    "one-class": ({"only": 3}, "one class folder with images (only)"),
    "tiny-class": ({"a": 3, "tiny": 1}, "'tiny' (1 image)"),
    "unreadable": ({"a": 2, "b": 2, "broken": None}, "broken/x.tif"),
    "val-per-class": (["--val-per-class", "0"], "--val-per-class 0"),
    "size": (["--size", "16"], "--size 16"),
    "batch-size": (["--batch-size", "0"], "--batch-size 0"),
    "epochs": (["--epochs", "-1"], "--epochs -1"),
    "patience": (["--patience", "0"], "--patience 0"),
    "lr": (["--lr", "0"], "--lr 0"),
    "checkpoint-every": (["--checkpoint-every", "soon"], "--checkpoint-every 'soon'"),
    "encoder": (["--encoder", "resnet19"], "--encoder 'resnet19'"),
    "encoder-weights": (["--encoder-weights", "{tmp}/none.weights.h5"], "--encoder-weights"),
    "out-inside-data": (["--out", "{data}/run"], "--out '"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_naming_the_flag_before_any_work(
    case: str, class_tree: Path, tmp_path: Path, capsys
) -> None:
    setting, expected = BAD[case]
    data, run = class_tree, tmp_path / "run"
    flags = []
    if isinstance(setting, dict):
        data = _make(
            tmp_path / "data", {k: v or 0 for k, v in setting.items()}, class_tree / "ebc" / "0.tif"
        )
        if "broken" in setting:
            (data / "broken" / "x.tif").write_bytes(b"II*\x00 not a TIFF")
            (data / "broken" / "y.tif").write_bytes((class_tree / "ebc" / "0.tif").read_bytes())
    else:
        flags = [f.format(tmp=tmp_path, data=class_tree) for f in setting]
    # Small settings first, so that a check that let a case through trains for seconds only.
    argv = [
        "pretrain",
        "--data",
        str(data),
        "--encoder",
        "resnet18",
        "--out",
        str(run),
        "--size",
        "32",
        "--epochs",
        "1",
        *flags,
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
    assert not run.exists() and not (class_tree / "run").exists()


def test_python_api_names_its_arguments(class_tree: Path, tmp_path: Path) -> None:
    from micronet_tf.training.pretraining import pretrain_on_folders

    with pytest.raises(FileNotFoundError, match="data_dir='.*nowhere': not a folder"):
        pretrain_on_folders(tmp_path / "nowhere", "resnet18", out_dir=tmp_path / "run")
    with pytest.raises(ValueError, match="val_per_class=0: expected a positive"):
        pretrain_on_folders(class_tree, "resnet18", out_dir=tmp_path / "run", val_per_class=0)
    with pytest.raises(ValueError, match="size=31: expected a whole number of pixels"):
        pretrain_on_folders(class_tree, "resnet18", out_dir=tmp_path / "run", size=31)
    assert not (tmp_path / "run").exists()
