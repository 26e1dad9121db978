"""ONNX and bioimage.io exports: onnxruntime gives the Keras numbers, raw-image ONNX folds the
normalisation in, packages validate with bioimageio.spec offline."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import yaml

from micronet_tf.bioimageio import _preprocessing, context_halo, validate
from micronet_tf.encoders import get_encoder
from micronet_tf.export import export_onnx
from micronet_tf.intensity import Normalization
from micronet_tf.models import create_segmentation_model, set_input_normalization
from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD, normalize
from tests.onnx_parity import run_onnx

ROOT = Path(__file__).resolve().parents[2]


def test_onnx_with_and_without_preprocessing(tmp_path: Path) -> None:
    model = create_segmentation_model("FPN", "resnet18", classes=3)
    raw = np.random.default_rng(0).integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)
    normalised = np.stack([normalize(image) for image in raw])
    expected = np.asarray(model(normalised, training=False))
    plain = export_onnx(model, tmp_path / "plain.onnx")
    assert np.abs(run_onnx(plain, normalised)[0] - expected).max() <= 1e-4
    folded = export_onnx(model, tmp_path / "raw.onnx", preprocessing=True, opset=17)
    assert onnxruntime.InferenceSession(str(folded)).get_inputs()[0].type == "tensor(uint8)"
    assert np.abs(run_onnx(folded, raw)[0] - expected).max() <= 1e-4
    with pytest.raises(ValueError, match=".onnx"):
        export_onnx(model, tmp_path / "model.bin")


def test_encoder_exports_every_feature_map(tmp_path: Path) -> None:
    encoder = get_encoder("resnet18")
    path = export_onnx(encoder, tmp_path / "encoder.onnx")
    images = np.random.default_rng(1).normal(size=(1, 64, 96, 3)).astype("float32")
    outputs = run_onnx(path, images)
    expected = [np.asarray(o) for o in encoder(images, training=False)]
    assert sorted(o.shape for o in outputs) == sorted(e.shape for e in expected)


def test_bioimageio_preprocessing_of_a_dtype_model() -> None:
    """The default (dtype-range) model's package normalises 0-255 input by ImageNet x 255
    (the percentile case is validated whole below)."""
    steps = _preprocessing(Normalization())
    assert [step["id"] for step in steps] == ["fixed_zero_mean_unit_variance"]
    np.testing.assert_allclose(steps[0]["kwargs"]["mean"], np.array(IMAGENET_MEAN) * 255)
    np.testing.assert_allclose(steps[0]["kwargs"]["std"], np.array(IMAGENET_STD) * 255)


def _apply_bioimageio_steps(steps: list[dict], raw: np.ndarray) -> np.ndarray:
    """The package's preprocessing, done as bioimage.io describes it (per image)."""
    x = raw.astype(np.float64)
    for step in steps:
        kwargs = step["kwargs"]
        if step["id"] == "scale_range":
            low = np.percentile(x, kwargs["min_percentile"], axis=(1, 2, 3), keepdims=True)
            high = np.percentile(x, kwargs["max_percentile"], axis=(1, 2, 3), keepdims=True)
            x = (x - low) / (high - low + 1e-6)
        elif step["id"] == "clip":
            x = np.clip(x, kwargs["min"], kwargs["max"])
        else:
            assert step["id"] == "fixed_zero_mean_unit_variance", step
            x = (x - np.array(kwargs["mean"])) / np.array(kwargs["std"])
    return x.astype(np.float32)


def test_bioimageio_package_validates(tmp_path: Path) -> None:
    """A model trained with per-image percentile normalisation: the package validates, and its
    preprocessing steps (scale_range, clip, ImageNet) give the model's own test output."""
    model = create_segmentation_model(
        "Unet",
        "resnet18",
        classes=3,
        activation="softmax",
        class_names=["matrix", "secondary", "tertiary"],
    )
    set_input_normalization(model, "percentile:0.5,99.5")
    model_path = tmp_path / "unet.keras"
    model.save(model_path)
    out = tmp_path / "unet.zip"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "micronet_tf.cli",
            "export",
            str(model_path),
            "--format",
            "bioimageio",
            "--out",
            str(out),
            "--name",
            "MicroNet U-Net test",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "unpacked")
    assert {
        "rdf.yaml",
        "weights.onnx",
        "weights.keras",
        "weights_savedmodel.zip",
        "test_input.npy",
        "test_output.npy",
        "cover.png",
        "README.md",
    } <= names
    summary = validate(tmp_path / "unpacked").validation_summary
    assert summary.status in ("passed", "valid-format"), summary.format()
    # The package's own test tensors reproduce through its ONNX weights + preprocessing.
    raw = np.load(tmp_path / "unpacked" / "test_input.npy")
    expected = np.load(tmp_path / "unpacked" / "test_output.npy")
    rdf = yaml.safe_load((tmp_path / "unpacked" / "rdf.yaml").read_text())
    steps = rdf["inputs"][0]["preprocessing"]
    assert [step["id"] for step in steps] == [
        "scale_range",
        "clip",
        "fixed_zero_mean_unit_variance",
    ]
    assert (steps[0]["kwargs"]["min_percentile"], steps[0]["kwargs"]["max_percentile"]) == (
        0.5,
        99.5,
    )
    normalised = _apply_bioimageio_steps(steps, raw)
    produced = run_onnx(tmp_path / "unpacked" / "weights.onnx", normalised.astype("float32"))[0]
    assert np.abs(produced - expected).max() <= 1e-4
    # ... and through its SavedModel bundle, loaded by plain TensorFlow in a fresh process.
    with zipfile.ZipFile(tmp_path / "unpacked" / "weights_savedmodel.zip") as bundle:
        bundle.extractall(tmp_path / "bundle")
    np.save(tmp_path / "normalised.npy", normalised.astype("float32"))
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "served = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "out = served(tf.constant(np.load(sys.argv[2])))\n"
        "np.save(sys.argv[3], list(out.values())[0].numpy())\n"
        "assert 'micronet_tf' not in sys.modules\n"
    )
    served = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "bundle"),
            str(tmp_path / "normalised.npy"),
            str(tmp_path / "served.npy"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    assert np.abs(np.load(tmp_path / "served.npy") - expected).max() <= 1e-4
    # The halo tools crop from tiles is the measured one, and the input's minimum allows it.
    halos = {axis["id"]: axis["halo"] for axis in rdf["outputs"][0]["axes"] if "halo" in axis}
    assert halos == {"y": context_halo(model)[0], "x": context_halo(model)[0]}
    assert rdf["inputs"][0]["axes"][1]["size"]["min"] >= 2 * halos["y"] + 32
    assert raw.shape[1] >= rdf["inputs"][0]["axes"][1]["size"]["min"]


def test_context_halo_is_the_smallest_that_makes_tiles_agree() -> None:
    """At the chosen halo a tile's centre matches the whole-image prediction; at the next
    smaller candidate it does not (so the measurement can fail)."""
    import keras

    from micronet_tf.bioimageio import HALO_CANDIDATES, HALO_TOLERANCE, context_halo

    keras.utils.set_random_seed(0)
    model = create_segmentation_model("Unet", "resnet18", classes=2 + 1)
    halo, difference = context_halo(model)
    assert difference <= HALO_TOLERANCE
    smaller = [h for h in HALO_CANDIDATES if h < halo]
    assert smaller, "a random U-Net should need more than the smallest halo"
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 512, 512, 3)).astype(np.float32)
    whole = np.asarray(model(image, training=False))
    scale = whole.max() - whole.min()
    for h, should_agree in ((smaller[-1], False), (halo, True)):
        tile = -(-(2 * h + 32) // 32) * 32
        piece = np.asarray(model(image[:, 64 : 64 + tile, 64 : 64 + tile], training=False))
        centre = piece[:, h : tile - h, h : tile - h]
        gap = (
            np.abs(centre - whole[:, 64 + h : 64 + tile - h, 64 + h : 64 + tile - h]).max() / scale
        )
        assert (gap <= HALO_TOLERANCE) == should_agree, (h, gap)
