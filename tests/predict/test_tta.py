"""Test-time augmentation and per-pixel uncertainty: the mean of flipped / rotated views, tiled
as plain prediction is, with the model's or the user's orientation rule, in the CLI and through
ONNX Runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tifffile
from PIL import Image

from micronet_tf import prediction
from micronet_tf.cli import main
from micronet_tf.export import export_onnx
from micronet_tf.file_commands import measure_files, predict_files
from micronet_tf.models import create_segmentation_model, set_training_labels
from micronet_tf.prediction import keeps_orientation, predict, predictive_entropy, tta_views
from micronet_tf.preprocessing import normalize
from micronet_tf.training.benchmark_data import benchmark_task

ROOT = Path(__file__).resolve().parents[2]
# Three 3x3 convolutions: a receptive field of radius 3, inside overlap / 2 = 16 (as in
# test_predict.py): tiles equal the whole image away from its border, up to float32 round-off.
TOLERANCE = 1e-5
INNER = np.s_[3:-3, 3:-3]  # away from the border (zero padding in a whole-image call)
D4 = [(turns, mirror) for turns in range(4) for mirror in (False, True)]


def small_context_model(classes: int = 3, symmetric: bool = False) -> keras.Model:
    """Three 3x3 convolutions; ``symmetric``: each kernel made invariant under flips and
    90-degree rotations, so the model commutes with them (equivariant)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = inputs
    for _ in range(3):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(classes, 1)(x))
    if symmetric:
        for layer in model.layers[1:]:
            kernel, bias = layer.get_weights()
            turned = [np.rot90(kernel, k, axes=(0, 1)) for k in range(4)]
            kernel = sum(turned + [t[:, ::-1] for t in turned]) / 8
            layer.set_weights([kernel, bias])
    return model


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def hand_made_views(model: keras.Model, image: np.ndarray, views) -> np.ndarray:
    """Views x H x W x C: the whole image turned / mirrored, predicted in one call, turned back."""
    x = normalize(image)
    out = []
    for turns, mirror in views:
        view = np.rot90(x, turns)
        view = view[:, ::-1] if mirror else view
        probabilities = softmax(np.asarray(model(np.ascontiguousarray(view)[None]))[0])
        probabilities = probabilities[:, ::-1] if mirror else probabilities
        out.append(np.rot90(probabilities, -turns))
    return np.stack(out)


def test_views() -> None:
    assert tta_views(None) == ((0, False),)
    assert len(tta_views("flips")) == 4 and sorted(tta_views("d4")) == D4
    assert tta_views("d4", keep_orientation=True) == ((0, False), (0, True))
    assert tta_views("flips", keep_orientation=True) == ((0, False), (0, True))
    # "flips": identity, horizontal, vertical, both, as arrays see them.
    x = np.arange(6).reshape(1, 2, 3, 1)
    seen = [prediction._to_view(x, *v)[0, ..., 0].tolist() for v in tta_views("flips")]
    plain = x[0, ..., 0]
    assert seen == [
        plain.tolist(),
        plain[:, ::-1].tolist(),
        plain[::-1].tolist(),
        plain[::-1, ::-1].tolist(),
    ]
    for view in D4:  # each view turned back is the identity
        y = np.arange(16).reshape(1, 4, 4, 1)
        assert np.array_equal(prediction._from_view(prediction._to_view(y, *view), *view), y)
    with pytest.raises(ValueError, match="tta='d8'"):
        tta_views("d8")


def test_equivariant_model_gains_nothing_and_is_certain() -> None:
    model = small_context_model(symmetric=True)
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    plain = predict(model, image, tile=64, overlap=16)
    for tta in ("flips", "d4"):
        mean, variance = predict(model, image, tile=64, overlap=16, tta=tta, uncertainty="variance")
        assert mean.shape == plain.shape and variance.shape == (90, 120)
        assert variance.dtype == np.float32
        assert np.abs(mean - plain).max() <= TOLERANCE
        assert variance.max() <= 1e-10  # all views agree: no uncertainty
    # The same image through the non-symmetric model: the views disagree.
    _, variance = predict(
        small_context_model(), image, tile=64, overlap=16, tta="d4", uncertainty="variance"
    )
    assert variance.max() > 1e-5


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_tta_is_the_mean_of_hand_made_views_tiled_or_not(tta: str) -> None:
    """Tiled TTA (20 tiles, batches of 3) equals the average of whole-image predictions
    of each view, turned back, away from the border; the variance map likewise."""
    model = small_context_model()
    image = np.random.default_rng(1).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    views = hand_made_views(model, image, tta_views(tta))
    mean, variance = predict(
        model, image, tile=64, overlap=16, batch_size=3, tta=tta, uncertainty="variance"
    )
    assert mean.shape == (100, 150, 3) and variance.shape == (100, 150)
    assert np.abs(mean[INNER] - views.mean(0)[INNER]).max() <= TOLERANCE
    assert np.abs(variance[INNER] - views.var(0).mean(-1)[INNER]).max() <= TOLERANCE
    plain = predict(model, image, tile=64, overlap=16, batch_size=3)
    assert np.abs(mean - plain).max() > 1e-3  # this model is not invariant: TTA changes it
    assert np.allclose(mean.sum(-1), 1.0, atol=1e-5)
    # Uncertainty 0 where every view agrees: a flat region, far (> 3 px) from its edges.
    flat = image.copy()
    flat[10:60, 20:90] = 90
    _, variance = predict(model, flat, tile=64, overlap=16, tta=tta, uncertainty="variance")
    assert variance[14:56, 24:86].max() <= 1e-10
    assert variance[70:95, 100:145].min() > 0  # textured: the views differ everywhere


def test_entropy_with_and_without_tta() -> None:
    model = small_context_model()
    image = np.random.default_rng(2).integers(0, 65535, (70, 100), dtype=np.uint16)
    averaged = {}
    for tta in (None, "flips"):
        probabilities, entropy = predict(
            model, image, tile=64, overlap=16, tta=tta, uncertainty="entropy"
        )
        assert entropy.shape == (70, 100) and entropy.dtype == np.float32
        assert np.array_equal(entropy, predictive_entropy(probabilities))
        assert 0 <= entropy.min() and entropy.max() <= 1 and entropy.std() > 0
        averaged[tta] = probabilities
    # Without uncertainty= the return type is today's: the probabilities alone.
    assert np.array_equal(predict(model, image, tile=64, overlap=16), averaged[None])
    assert np.abs(averaged["flips"] - averaged[None]).max() > 1e-3
    # Normalised: a uniform guess is 1, a sure one 0; one channel is the binary entropy.
    sure_and_unsure = np.array([[[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]], np.float32)
    assert np.allclose(predictive_entropy(sure_and_unsure), [[0.0, 1.0]], atol=1e-6)
    # Per-channel sigmoids (not summing to 1) are scaled to sum to 1; all zero is uniform.
    sigmoids = np.array([[[0.9, 0.0, 0.0], [0.8, 0.8, 0.8], [0.0, 0.0, 0.0]]], np.float32)
    assert np.allclose(predictive_entropy(sigmoids), [[0.0, 1.0, 1.0]], atol=1e-6)
    scaled = predictive_entropy(np.array([[[0.3, 0.1, 0.1]]], np.float32))  # as 0.6, 0.2, 0.2
    expected = -(0.6 * np.log(0.6) + 2 * 0.2 * np.log(0.2)) / np.log(3)
    assert np.allclose(scaled, [[expected]], atol=1e-6)
    binary = predictive_entropy(np.array([[[0.0], [0.5], [0.9]]], np.float32))
    expected = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)) / np.log(2)
    assert np.allclose(binary, [[0.0, 1.0, expected]], atol=1e-6)
    with pytest.raises(ValueError, match="needs tta="):
        predict(model, image, tile=64, overlap=16, uncertainty="variance")
    with pytest.raises(ValueError, match="uncertainty='std'"):
        predict(model, image, tile=64, overlap=16, tta="d4", uncertainty="std")


def test_keep_orientation_restricts_the_views(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, bool]] = []
    to_view = prediction._to_view

    def recording(batch, turns, mirror):
        seen.append((turns, mirror))
        return to_view(batch, turns, mirror)

    monkeypatch.setattr(prediction, "_to_view", recording)
    image = np.random.default_rng(3).integers(0, 256, (60, 80), dtype=np.uint8)
    # From the model's stored training labels (EBC is trained with left-right mirrors only).
    ebc = create_segmentation_model(
        "Unet", "resnet18", classes=1, encoder_depth=3, decoder_channels=(16, 8, 4)
    )
    set_training_labels(ebc, benchmark_task("micronet_segmentation/ebc1").labels_record())
    assert keeps_orientation(ebc) and not keeps_orientation(small_context_model())
    with pytest.warns(UserWarning, match="trained keeping orientation"):
        predict(ebc, image, tile=64, overlap=8, tta="d4")
    assert sorted(set(seen)) == [(0, False), (0, True)]
    seen.clear()
    predict(ebc, image, tile=64, overlap=8, tta="d4", keep_orientation=False)  # the user's say
    assert sorted(set(seen)) == D4
    # From the argument, for any model: the exact mean of the identity and the mirror.
    model = small_context_model()
    seen.clear()
    with pytest.warns(UserWarning, match="keep_orientation=True"):
        mean = predict(model, image, tile=64, overlap=8, tta="flips", keep_orientation=True)
    assert sorted(set(seen)) == [(0, False), (0, True)]
    views = hand_made_views(model, image, [(0, False), (0, True)])
    assert np.abs(mean[INNER] - views.mean(0)[INNER]).max() <= TOLERANCE


def test_onnx_engine_with_tta(tmp_path: Path) -> None:
    model = small_context_model()
    path = export_onnx(model, tmp_path / "small.onnx")
    image = np.random.default_rng(4).integers(0, 256, (100, 140), dtype=np.uint8)
    ours = predict(model, image, tile=64, overlap=16, tta="d4", uncertainty="variance")
    onnx = predict(
        path,
        image,
        tile=64,
        overlap=16,
        engine="onnx",
        activation="softmax",
        tta="d4",
        uncertainty="variance",
    )
    assert np.abs(ours[0] - onnx[0]).max() <= 1e-4
    assert np.abs(ours[1] - onnx[1]).max() <= 1e-5 and onnx[1].max() > 1e-5


def test_cli_writes_the_uncertainty_map(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = create_segmentation_model(
        "Unet", "resnet18", classes=3, encoder_depth=3, decoder_channels=(16, 8, 4)
    )
    set_training_labels(model, benchmark_task("micronet_segmentation/super3").labels_record())
    model_path = tmp_path / "unet.keras"
    model.save(model_path)
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (70, 90), dtype=np.uint8)).save(inputs / "a.png")
    tifffile.imwrite(inputs / "b.tif", rng.integers(0, 65535, (50, 130), dtype=np.uint16))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "micronet_tf.cli", "predict", str(model_path), str(inputs)]
    command += ["--out", str(out), "--tile", "64", "--overlap", "16"]
    result = subprocess.run(
        [*command, "--tta", "flips", "--uncertainty", "variance"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "a_uncertainty.tif" in result.stdout
    for name, shape in (("a", (70, 90)), ("b", (50, 130))):
        uncertainty = tifffile.imread(out / f"{name}_uncertainty.tif")
        assert uncertainty.shape == shape and uncertainty.dtype == np.float32
        assert 0 <= uncertainty.min() and 0 < uncertainty.max() <= 0.25
        assert np.asarray(Image.open(out / f"{name}_mask.png")).shape == shape
    files = json.loads((out / "micronet-tf-outputs.json").read_text())["files"]
    assert files["a_uncertainty.tif"] == files["b_uncertainty.tif"] == "predict"
    assert not list(out.glob(".partial-*"))
    # `measure` on the folder takes the masks, not the float maps.
    assert measure_files([str(out)], tmp_path / "measured") == {}
    measured = json.loads((tmp_path / "measured" / "summary.json").read_text())["images"]
    assert sorted(measured) == ["a_mask.png", "b_mask.png"]

    # In Python, entropy without TTA; a second run replaces its own outputs; bad flags fail
    # before any file is read.
    failures = predict_files(
        model_path, [str(inputs / "a.png")], out, tile=64, overlap=16, uncertainty="entropy"
    )
    assert failures == {}
    entropy = tifffile.imread(out / "a_uncertainty.tif")
    assert entropy.shape == (70, 90) and entropy.dtype == np.float32 and entropy.max() <= 1
    with pytest.raises(ValueError, match="needs tta="):
        predict_files(model_path, [str(inputs)], out, uncertainty="variance")
    assert main([*command[3:], "--uncertainty", "variance"]) == 2  # in this process
    assert "--uncertainty 'variance' needs --tta" in capsys.readouterr().err
