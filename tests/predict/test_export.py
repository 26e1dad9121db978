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

from micronet_tf.bioimageio import validate
from micronet_tf.encoders import get_encoder
from micronet_tf.export import export_onnx
from micronet_tf.models import create_segmentation_model
from micronet_tf.preprocessing import normalize

ROOT = Path(__file__).resolve().parents[2]


def _run(path: Path, array: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path))
    return session.run(None, {session.get_inputs()[0].name: array})


def test_onnx_with_and_without_preprocessing(tmp_path: Path) -> None:
    model = create_segmentation_model("FPN", "resnet18", classes=3)
    raw = np.random.default_rng(0).integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)
    normalised = np.stack([normalize(image) for image in raw])
    expected = np.asarray(model(normalised, training=False))
    plain = export_onnx(model, tmp_path / "plain.onnx")
    assert np.abs(_run(plain, normalised)[0] - expected).max() <= 1e-4
    folded = export_onnx(model, tmp_path / "raw.onnx", preprocessing=True, opset=17)
    assert onnxruntime.InferenceSession(str(folded)).get_inputs()[0].type == "tensor(uint8)"
    assert np.abs(_run(folded, raw)[0] - expected).max() <= 1e-4
    with pytest.raises(ValueError, match=".onnx"):
        export_onnx(model, tmp_path / "model.bin")


def test_encoder_exports_every_feature_map(tmp_path: Path) -> None:
    encoder = get_encoder("resnet18")
    path = export_onnx(encoder, tmp_path / "encoder.onnx")
    images = np.random.default_rng(1).normal(size=(1, 64, 96, 3)).astype("float32")
    outputs = _run(path, images)
    expected = [np.asarray(o) for o in encoder(images, training=False)]
    assert sorted(o.shape for o in outputs) == sorted(e.shape for e in expected)


def test_bioimageio_package_validates(tmp_path: Path) -> None:
    model = create_segmentation_model("Unet", "resnet18", classes=3, activation="softmax",
                                      class_names=["matrix", "secondary", "tertiary"])
    model_path = tmp_path / "unet.keras"
    model.save(model_path)
    out = tmp_path / "unet.zip"
    result = subprocess.run([sys.executable, "-m", "micronet_tf.cli", "export", str(model_path),
                             "--format", "bioimageio", "--out", str(out), "--name",
                             "MicroNet U-Net test"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "unpacked")
    assert {"rdf.yaml", "weights.onnx", "weights.keras", "test_input.npy", "test_output.npy",
            "cover.png", "README.md"} <= names
    summary = validate(tmp_path / "unpacked").validation_summary
    assert summary.status in ("passed", "valid-format"), summary.format()
    # The package's own test tensors reproduce through its ONNX weights + preprocessing.
    raw = np.load(tmp_path / "unpacked" / "test_input.npy")
    expected = np.load(tmp_path / "unpacked" / "test_output.npy")
    normalised = (raw / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    produced = _run(tmp_path / "unpacked" / "weights.onnx", normalised.astype("float32"))[0]
    assert np.abs(produced - expected).max() <= 1e-4
