"""``micronet-tf predict`` and ``micronet-tf measure`` on real micrographs, as a user runs them."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from micronet_tf.data.benchmark import resolve_pointer
from micronet_tf.models import create_segmentation_model

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "micronet_tf.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_predict_then_measure(tmp_path: Path, benchmark_data: Path) -> None:
    model = create_segmentation_model(
        "Unet",
        "resnet18",
        classes=3,
        activation="softmax",
        class_names=["matrix", "secondary", "tertiary"],
    )
    model_path = tmp_path / "unet.keras"
    model.save(model_path)
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(
        resolve_pointer(benchmark_data / "Super1" / "test" / "spot2_0d_0.tif"),
        inputs / "spot2_0d_0.tif",
    )
    Image.fromarray(np.full((70, 90), 128, np.uint8)).save(inputs / "small.png")
    Image.fromarray(np.full((70, 90), 128, np.uint8)).save(inputs / "small.jpg")  # same stem
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(inputs / "odd #1_mask.png")  # an input...
    Image.fromarray(np.full((33, 47), 9, np.uint16)).save(inputs / "odd #1.png")  # ...its target
    (inputs / "broken.tif").write_bytes(b"not a tiff")
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}

    # --out is the input folder itself: results go beside the inputs, no input is replaced.
    result = run_cli(
        "predict",
        str(model_path),
        str(inputs),
        "--out",
        str(inputs),
        "--tile",
        "256",
        "--overlap",
        "32",
    )
    assert result.returncode == 2, result.stderr[-3000:]  # files failed ...
    assert "3 file(s) failed" in result.stderr, result.stderr[-3000:]
    assert "broken.tif" in result.stderr and "already written for" in result.stderr
    assert "refusing to overwrite the input file" in result.stderr
    mask = np.asarray(Image.open(inputs / "spot2_0d_0_mask.png"))  # ... the others went on
    assert mask.shape == (512, 512) and mask.dtype == np.uint8 and mask.max() <= 2
    assert np.asarray(Image.open(inputs / "small_overlay.png")).shape == (70, 90, 3)
    assert np.asarray(Image.open(inputs / "odd #1_mask_mask.png")).shape == (8, 8)
    assert {name: (inputs / name).read_bytes() for name in before} == before

    # The true Super mask (colour) as --truth; our prediction measured against it.
    report = tmp_path / "measured"
    truth = benchmark_data / "Super1" / "test_annot"
    segmented = tmp_path / "segmented"  # a folder of predict's outputs: overlays are skipped
    segmented.mkdir()
    for name in ("spot2_0d_0_mask.png", "spot2_0d_0_overlay.png"):
        shutil.copy(inputs / name, segmented / name)
    measured = run_cli(
        "measure",
        str(segmented),
        "--out",
        str(report),
        "--truth",
        str(truth),
        "--classes",
        "matrix",
        "secondary",
        "tertiary",
        "--pixel-size",
        "0.01",
    )
    assert measured.returncode == 0, measured.stderr[-3000:]
    summary = json.loads((report / "summary.json").read_text())
    assert list(summary["images"]) == ["spot2_0d_0_mask.png"]
    image = summary["images"]["spot2_0d_0_mask.png"]
    assert abs(sum(c["area_fraction"] for c in image.values()) - 1) < 1e-9
    assert "size_error" in image["secondary"] and summary["unit"] == "um"
    with open(report / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["image"] for r in rows] == ["spot2_0d_0_mask.png"] * 3 + ["ALL"] * 3
    assert (report / "report.html").is_file() and (report / "spot2_0d_0_mask_report.png").is_file()


def test_measure_truth_against_itself(tmp_path: Path, benchmark_data: Path) -> None:
    """The Super colour masks and an EBC oxide mask measured against themselves: zero errors."""
    masks = tmp_path / "masks"
    masks.mkdir()
    for path in sorted((benchmark_data / "Super1" / "test_annot").glob("*_mask.tif"))[:2]:
        shutil.copy(resolve_pointer(path), masks / path.name)
    ebc = sorted((benchmark_data / "EBC1" / "test_annot").glob("*.tif"))[0]
    ebc_folder = tmp_path / "ebc"
    ebc_folder.mkdir()
    shutil.copy(resolve_pointer(ebc), ebc_folder / ebc.name)
    report = tmp_path / "report"
    result = run_cli(
        "measure",
        str(masks),
        "--truth",
        str(masks),
        "--classes",
        "matrix",
        "secondary",
        "tertiary",
        "--out",
        str(report),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((report / "summary.json").read_text())
    assert len(summary["images"]) == 2 and summary["unit"] == "px"
    for classes in summary["images"].values():
        for name in ("secondary", "tertiary"):
            error = classes[name]["size_error"]
            assert error["missed"] == 0 and error["matched"] == classes[name]["objects"] > 0
            assert error["mean_percent_error"] == 0.0 and error["std_percent_error"] == 0.0
    assert (report / "sizes_secondary.png").is_file()
    assert (report / "spot2_0d_0_mask_tertiary_sizes.png").is_file()
    with open(report / "spot2_0d_0_mask_objects.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["class"] for r in rows} == {"secondary", "tertiary"} and float(rows[0]["area"]) > 0

    oxide = tmp_path / "oxide"
    result = run_cli(
        "measure",
        str(ebc_folder / ebc.name),
        "--truth",
        str(ebc_folder),
        "--classes",
        "background",
        "oxide",
        "crack",
        "--thickness",
        "oxide",
        "--pixel-size",
        "0.5",
        "--out",
        str(oxide),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((oxide / "summary.json").read_text())["images"][ebc.name]["oxide"]
    assert info["thickness"]["mean"] > 5 and info["thickness_error"]["percent_error"] == 0.0


def test_outputs_never_replace_a_users_file(tmp_path: Path) -> None:
    """predict / measure replace only what they wrote before (the folder's manifest), never
    take their own outputs as inputs, and keep a good summary when every input fails."""
    from micronet_tf.file_commands import MANIFEST, measure_files, predict_files

    model = create_segmentation_model(
        "Unet", "resnet18", classes=1, decoder_channels=(16, 16, 16, 8, 8)
    )
    model_path = tmp_path / "m.keras"
    model.save(model_path)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(images / "a.png")
    users_mask = np.full((64, 64), 1, np.uint8)
    Image.fromarray(users_mask).save(images / "b_mask.png")  # the user's own annotation...
    Image.fromarray(np.full((64, 64), 50, np.uint8)).save(images / "b.png")  # ...of this image
    import pytest

    with pytest.raises(ValueError, match="tile=100: this model needs a positive multiple of 32"):
        predict_files(model_path, [str(images)], images, tile=100)  # once, not once per file
    failures = predict_files(model_path, [str(images)], images, tile=64, overlap=0)
    # b.png's mask would replace the user's b_mask.png (an input too, segmented as an image).
    assert set(failures) == {str(images / "b.png")}, failures
    assert "refusing to overwrite the input file" in failures[str(images / "b.png")]
    assert np.array_equal(np.asarray(Image.open(images / "b_mask.png")), users_mask)
    assert json.loads((images / MANIFEST).read_text())["files"] == {
        "a_mask.png": "predict",
        "a_overlay.png": "predict",
        "b_mask_mask.png": "predict",
        "b_mask_overlay.png": "predict",
    }
    # Again into the same folder: its own outputs are neither inputs nor protected from it.
    again = predict_files(model_path, [str(images)], images, tile=64, overlap=0)
    assert set(again) == {str(images / "b.png")} and not (images / "a_mask_mask.png").exists()
    # Another folder holding the user's file: refused, then replaced with force.
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_mask.png").write_bytes(b"mine")
    refused = predict_files(model_path, [str(images / "a.png")], out, tile=64, overlap=0)
    why = refused[str(images / "a.png")]
    assert "was not written by an earlier `micronet-tf predict`" in why and "--force" in why
    assert (out / "a_mask.png").read_bytes() == b"mine"
    assert (
        predict_files(model_path, [str(images / "a.png")], out, tile=64, overlap=0, force=True)
        == {}
    )
    assert np.asarray(Image.open(out / "a_mask.png")).shape == (64, 64)

    report = tmp_path / "report"
    assert measure_files([str(out / "a_mask.png")], report, class_names=["bg", "fg"]) == {}
    good = (report / "summary.json").read_bytes()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    failed = measure_files([str(broken)], report, class_names=["bg", "fg"])
    assert list(failed) == [str(broken)]
    assert (report / "summary.json").read_bytes() == good  # not replaced by an empty summary


def test_truncated_or_missing_keras_file_is_named(tmp_path: Path) -> None:
    import keras
    import pytest

    import micronet_tf

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path / "model.keras"
    model.save(path)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.keras' is corrupt or truncated"):
        micronet_tf.load_model(truncated)
    with pytest.raises(FileNotFoundError, match="missing.keras': no such file"):
        micronet_tf.load_model(tmp_path / "missing.keras")
    assert micronet_tf.load_model(path).output_shape == (None, 2)


def test_evaluate_style_output_folders_are_owned(tmp_path: Path) -> None:
    """owned_output_folder (evaluate's --out): a folder with the user's files is refused, the
    command's own files from an earlier run are not, and --force writes anyway."""
    import pytest

    from micronet_tf.files import OUTPUT_MANIFEST, owned_output_folder

    out = tmp_path / "eval"
    with owned_output_folder(out, "evaluate") as folder:
        (folder / "metrics.json").parent.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text("{}")
    with owned_output_folder(out, "evaluate") as folder:  # its own file: fine
        (folder / "metrics.json").write_text('{"again": 1}')
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(FileExistsError, match="notes.txt.*--force"):
        with owned_output_folder(out, "evaluate"):
            pass
    with owned_output_folder(out, "evaluate", force=True) as folder:
        (folder / "metrics.csv").write_text("a")
    assert json.loads((out / OUTPUT_MANIFEST).read_text())["files"] == {
        "metrics.csv": "evaluate",
        "metrics.json": "evaluate",
    }
    assert (out / "notes.txt").read_text() == "the user's"


def test_corrupt_onnx_model_is_named(tmp_path: Path) -> None:
    import pytest

    from micronet_tf.file_commands import predict_files

    broken = tmp_path / "m.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    with pytest.raises(ValueError, match="m.onnx' is corrupt or not an ONNX model"):
        predict_files(broken, [str(image)], tmp_path / "out", engine="onnx")
