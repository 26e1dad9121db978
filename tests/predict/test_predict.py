"""Tiled prediction: equal to whole-image prediction where the model's context allows, any
size, any dtype, Keras and ONNX engines alike."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from micronet_tf.models import create_segmentation_model
from micronet_tf.tiling import blend_window, predict, to_index_mask

# Three 3x3 convolutions: a receptive-field radius of 3 pixels, well inside overlap / 2 = 16.
TOLERANCE = 1e-5


def small_context_model(classes: int = 2) -> keras.Model:
    inputs = keras.Input((None, None, 3))
    x = inputs
    for _ in range(3):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh")(x)
    keras.utils.set_random_seed(0)
    return keras.Model(inputs, keras.layers.Conv2D(classes, 1)(x))


def test_tiles_equal_the_whole_image() -> None:
    keras.utils.set_random_seed(1)
    model = small_context_model()
    image = np.random.default_rng(0).integers(0, 256, (150, 230, 3), dtype=np.uint8)
    whole = predict(model, image, tile=256, overlap=0)  # one tile holds it all
    tiled = predict(model, image, tile=96, overlap=32, batch_size=3)
    assert tiled.shape == whole.shape == (150, 230, 2) and tiled.dtype == np.float32
    # Away from the image border (where padding differs): identical up to round-off.
    inner = np.s_[8:-8, 8:-8]
    assert np.abs(tiled[inner] - whole[inner]).max() <= TOLERANCE
    assert 0.0 <= tiled.min() and tiled.max() <= 1.0  # logits -> sigmoid ("auto")


def test_window_and_shapes() -> None:
    window = blend_window(96, 32)
    assert window[0, 0, 0] == 0 and window[48, 48, 0] == 1 and window.shape == (96, 96, 1)
    model = small_context_model(classes=3)
    for shape in ((20, 33), (70, 45, 1), (33, 97, 4)):
        image = np.random.default_rng(1).integers(0, 65535, shape, dtype=np.uint16)
        out = predict(model, image, tile=64, overlap=16)
        assert out.shape == (*shape[:2], 3)
        assert to_index_mask(out).shape == shape[:2]
    assert to_index_mask(np.array([[[0.7], [0.2]]])).tolist() == [[1, 0]]


def test_bad_arguments() -> None:
    model = small_context_model()
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="multiple of 32"):
        predict(model, image, tile=100)
    with pytest.raises(ValueError, match="overlap"):
        predict(model, image, tile=64, overlap=40)
    with pytest.raises(ValueError, match="engine"):
        predict(model, image, engine="torch")


def test_onnx_engine_matches_keras(tmp_path: Path) -> None:
    model = create_segmentation_model("Unet", "resnet18", classes=1, activation="sigmoid")
    model(np.zeros((1, 64, 64, 3), np.float32))
    path = tmp_path / "unet.onnx"
    model.export(path, format="onnx", verbose=False)
    image = np.random.default_rng(2).integers(0, 256, (100, 140), dtype=np.uint8)
    ours = predict(model, image, tile=64, overlap=16)
    onnx = predict(path, image, tile=64, overlap=16, engine="onnx")
    assert np.abs(ours - onnx).max() <= 1e-4
