"""Tiled prediction: equal to whole-image prediction where the model's context allows, any
size, any dtype, memory bounded by the tile batch, Keras and ONNX engines alike."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from micronet_tf.export import export_onnx
from micronet_tf.models import create_segmentation_model
from micronet_tf.prediction import blend_window, input_rule, predict, to_index_mask
from micronet_tf.preprocessing import normalize
from tests.encoders.parity import first_of_each_family

# Three 3x3 convolutions: a receptive-field radius of 3 pixels, well inside overlap / 2 = 16,
# so tiles see all the context a whole-image call sees: equal up to float32 round-off.
TOLERANCE = 1e-5


def small_context_model(classes: int = 2) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = inputs
    for _ in range(3):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh")(x)
    return keras.Model(inputs, keras.layers.Conv2D(classes, 1)(x))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_tiles_equal_the_whole_image() -> None:
    model = small_context_model()
    image = np.random.default_rng(0).integers(0, 256, (150, 230, 3), dtype=np.uint8)
    # The whole image in one model call (this model takes any size); logits -> softmax.
    whole = softmax(np.asarray(model(normalize(image)[None]))[0])
    tiled = predict(model, image, tile=96, overlap=32, batch_size=3)
    assert tiled.shape == whole.shape == (150, 230, 2) and tiled.dtype == np.float32
    # Away from the image border (zero padding in the whole-image call, reflection in ours).
    inner = np.s_[3:-3, 3:-3]
    assert np.abs(tiled[inner] - whole[inner]).max() <= TOLERANCE
    assert np.abs(tiled - whole).max() > TOLERANCE  # the border does differ: the test can fail
    assert np.allclose(tiled.sum(-1), 1.0, atol=1e-5)


def test_window_shapes_and_dtypes() -> None:
    window = blend_window(96, 32)
    assert window[0, 0, 0] == 0 and window[48, 48, 0] == 1 and window.shape == (96, 96, 1)
    model = small_context_model(classes=3)
    # Smaller than a tile, odd sizes, grey / 1 / RGBA channels, 8- and 16-bit, float.
    for shape, dtype in (
        ((20, 33), np.uint16),
        ((70, 45, 1), np.uint8),
        ((33, 97, 4), np.uint16),
        ((1, 5), np.uint8),
        ((65, 129, 3), np.float32),
    ):
        rng = np.random.default_rng(1)
        image = (
            rng.random(shape).astype(dtype)
            if dtype == np.float32
            else rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
        )
        out = predict(model, image, tile=64, overlap=16)
        assert out.shape == (*shape[:2], 3) and out.dtype == np.float32
        assert np.isfinite(out).all() and np.allclose(out.sum(-1), 1.0, atol=1e-5)
        mask = to_index_mask(out)
        assert mask.shape == shape[:2] and mask.dtype == np.uint8 and mask.max() <= 2
    # 16-bit is scaled by its range: the same picture in 8 and 16 bit gives the same result.
    eight = np.random.default_rng(2).integers(0, 256, (40, 50), dtype=np.uint8)
    sixteen = eight.astype(np.uint16) * 257
    assert (
        np.abs(
            predict(model, eight, tile=64, overlap=8) - predict(model, sixteen, tile=64, overlap=8)
        ).max()
        <= 1e-6
    )
    assert to_index_mask(np.array([[[0.7], [0.2]]])).tolist() == [[1, 0]]
    assert to_index_mask(np.array([[[0.1, 0.6, 0.3]]])).tolist() == [[1]]


def test_memory_is_bounded_by_the_tile_batch() -> None:
    seen = []
    model = small_context_model(classes=1)

    def recording(batch, training=False):
        seen.append(batch.shape)
        return model(batch, training=training)

    image = np.zeros((1000, 700), np.uint8)
    out = predict(recording, image, tile=128, overlap=16, batch_size=5, activation="none")
    assert out.shape == (1000, 700, 1)
    assert len(seen) > 5 and all(s[0] <= 5 and s[1:] == (128, 128, 3) for s in seen)


def test_tile_rule_comes_from_the_model() -> None:
    shallow = create_segmentation_model(
        "Unet", "resnet18", classes=1, encoder_depth=3, decoder_channels=(64, 32, 16)
    )
    assert input_rule(shallow) == (8, 0)
    out = predict(shallow, np.zeros((30, 50), np.uint8), tile=40, overlap=8)
    assert out.shape == (30, 50, 1) and 0 <= out.min() and out.max() <= 1  # logits -> sigmoid
    with pytest.raises(ValueError, match="multiple of 8"):
        predict(shallow, np.zeros((30, 50), np.uint8), tile=36)


def test_bad_arguments() -> None:
    model = small_context_model()
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="multiple of 32"):
        predict(model, image, tile=100)
    with pytest.raises(ValueError, match="overlap"):
        predict(model, image, tile=64, overlap=40)
    with pytest.raises(ValueError, match="engine"):
        predict(model, image, engine="torch")
    with pytest.raises(ValueError, match="expected HxW"):
        predict(model, np.zeros((2, 8, 8, 3), np.uint8), tile=64, overlap=8)
    with pytest.raises(ValueError, match="HxW, HxWx1"):
        predict(model, np.zeros((8, 8, 2), np.uint8), tile=64, overlap=8)


def test_onnx_engine_matches_keras(tmp_path: Path) -> None:
    import onnxruntime

    keras.utils.set_random_seed(3)
    model = create_segmentation_model("Unet", "resnet18", classes=1)  # logits
    path = export_onnx(model, tmp_path / "unet.onnx")
    image = np.random.default_rng(2).integers(0, 256, (100, 140), dtype=np.uint8)
    ours = predict(model, image, tile=64, overlap=16)
    from_path = predict(path, image, tile=64, overlap=16, engine="onnx", activation="sigmoid")
    session = onnxruntime.InferenceSession(str(path))
    from_session = predict(session, image, tile=64, overlap=16, engine="onnx", activation="sigmoid")
    assert from_path.shape == ours.shape == (100, 140, 1)
    assert np.abs(ours - from_path).max() <= 1e-4
    assert np.array_equal(from_path, from_session)
    with pytest.raises(ValueError, match="InferenceSession"):
        predict(model, image, engine="onnx")


@pytest.mark.parametrize("encoder", first_of_each_family(exclude=("resnet",)))
def test_every_encoder_family_predicts_tiled(encoder: str) -> None:
    """A U-Net on the first encoder of every other family segments an odd-sized 16-bit image
    tile by tile: probabilities, and the same result whatever the tile batch (inference-mode
    BatchNorm, no state carried between tiles)."""
    keras.utils.set_random_seed(4)
    model = create_segmentation_model("Unet", encoder, classes=3, activation="softmax")
    image = np.random.default_rng(5).integers(0, 65535, (100, 140), dtype=np.uint16)
    one = predict(model, image, tile=64, overlap=16, batch_size=1)
    several = predict(model, image, tile=64, overlap=16, batch_size=4)
    assert one.shape == (100, 140, 3) and np.isfinite(one).all()
    assert np.allclose(one.sum(-1), 1.0, atol=1e-5)
    assert np.abs(one - several).max() <= 1e-5
