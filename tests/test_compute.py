"""Mixed precision and XLA, checked for correctness on a CPU (never needed by other tests):
float16 / bfloat16 models predict close to float32 and train (the loss falls), graph and XLA
inference give the eager numbers, and prediction takes both switches."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import micronet_tf
from micronet_tf.compute import dtype_policy, inference_function, model_policy, with_precision
from micronet_tf.prediction import predict
from micronet_tf.training import train_segmentation

# Largest output difference from float32, relative to the largest float32 output: float16
# keeps 11 significant bits, bfloat16 8 (measured on this U-Net: 1.3e-3 and 8.5e-3).
BOUNDS = {"float16": 1e-2, "bfloat16": 5e-2}


@pytest.fixture(scope="module")
def unet() -> keras.Model:
    keras.utils.set_random_seed(0)
    return micronet_tf.create_segmentation_model("Unet", "resnet18", classes=3)


def _images(count: int = 2, size: int = 64) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((count, size, size, 3)).astype("float32")


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_predicts_close_to_float32(unet: keras.Model, precision: str) -> None:
    mixed = with_precision(unet, precision)
    assert model_policy(mixed) == f"mixed_{precision}" and model_policy(unet) == "float32"
    assert {w.dtype for w in mixed.weights} == {"float32"}  # master weights stay float32
    images = _images()
    expected = np.asarray(unet(images))
    produced = mixed(images)
    assert produced.dtype == "float32"  # the output layer stays float32
    error = float(np.abs(np.asarray(produced) - expected).max())
    assert 0 < error <= BOUNDS[precision] * max(1.0, float(np.abs(expected).max()))
    assert with_precision(mixed, precision) is mixed  # nothing to rebuild
    with pytest.raises(ValueError, match="mixed_precision='float8'"):
        dtype_policy("float8")


def _tiny_data() -> tuple[tf.data.Dataset, tf.data.Dataset]:
    rng = np.random.default_rng(1)
    images = rng.standard_normal((4, 64, 64, 3)).astype("float32")
    targets = np.zeros((4, 64, 64, 3), "float32")
    targets[..., 0] = images[..., 0] > 0  # learnable from the pixels
    targets[..., 1] = 1 - targets[..., 0]
    train = tf.data.Dataset.from_tensor_slices((images, targets)).batch(4)
    return train, train.unbatch().batch(1)


@pytest.mark.parametrize(
    ("options", "optimizer"),
    [
        ({"mixed_precision": "float16"}, "LossScaleOptimizer"),
        ({"mixed_precision": "bfloat16"}, "TorchAdam"),
        ({"jit_compile": True}, "TorchAdam"),
    ],
    ids=["float16", "bfloat16", "xla"],
)
def test_training_switches_still_learn(tmp_path: Path, options: dict, optimizer: str) -> None:
    train, val = _tiny_data()
    seen = {}

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["optimizer"] = type(self.model.optimizer).__name__
            seen["policy"] = model_policy(self.model)
            seen["jit"] = self.model.jit_compile

    result = train_segmentation(
        lambda: micronet_tf.create_segmentation_model("Unet", "resnet18", classes=3),
        train,
        val,
        out_dir=tmp_path / "run",
        initial_lr=1e-3,
        max_epochs=8,
        seed=0,
        tensorboard=False,
        checkpoint_every=100,
        callbacks=[Record()],
        verbose=0,
        **options,
    )
    assert seen["optimizer"] == optimizer
    assert seen["policy"] == dtype_policy(options.get("mixed_precision", "float32"))
    assert seen["jit"] is bool(options.get("jit_compile", False))
    losses = result.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0], losses
    best = micronet_tf.load_model(result.best_model, compile=False)
    assert best(_images(1)).shape == (1, 64, 64, 3)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_compiled_inference_matches_eager(unet: keras.Model, jit_compile: bool) -> None:
    images = _images()
    compiled = inference_function(unet, jit_compile=jit_compile)
    np.testing.assert_allclose(compiled(images), np.asarray(unet(images)), atol=1e-5)
    assert inference_function(unet, jit_compile=jit_compile) is not compiled  # a new wrapper ...
    # ... around the one compiled function kept with the model (no recompilation per call)
    from micronet_tf.compute import _COMPILED

    assert set(_COMPILED[unet]) >= {jit_compile}


def test_graph_inference_stops_tracing_once_image_sizes_vary(unet: keras.Model) -> None:
    from micronet_tf.compute import _COMPILED

    run = inference_function(unet)
    for size in (64, 96):
        assert run(_images(1, size)).shape == (1, size, size, 3)
    traced = _COMPILED[unet][False].experimental_get_tracing_count()
    for size in (128, 160, 192):  # height and width are relaxed by now: no more traces
        assert run(_images(1, size)).shape == (1, size, size, 3)
    assert _COMPILED[unet][False].experimental_get_tracing_count() == traced


def test_compiled_inference_holds_its_model_and_the_cache_does_not(unet: keras.Model) -> None:
    images = _images(1)
    run = inference_function(with_precision(unet, "bfloat16"))  # a copy held by nothing else
    gc.collect()
    expected = np.asarray(unet(images))
    bound = BOUNDS["bfloat16"] * float(np.abs(expected).max())
    np.testing.assert_allclose(run(images), expected, atol=bound)
    model = with_precision(unet, "float16")
    inference_function(model)(images)
    collected = weakref.ref(model)
    del model
    gc.collect()
    assert collected() is None


def test_predict_takes_both_switches(unet: keras.Model) -> None:
    image = (np.random.default_rng(2).random((150, 170, 3)) * 255).astype(np.uint8)
    reference = predict(unet, image, tile=128, overlap=16)
    fast = predict(unet, image, tile=128, overlap=16, mixed_precision="bfloat16", jit_compile=True)
    assert fast.shape == reference.shape
    assert float(np.abs(fast - reference).max()) <= 5e-2  # probabilities
    with pytest.raises(ValueError, match="apply to engine='keras'"):
        predict("model.onnx", image, engine="onnx", mixed_precision="float16")


def _onednn_enabled_after_importing_micronet_tf(env_value: str | None) -> str:
    """In a fresh process: import micronet_tf, then ask TensorFlow whether oneDNN is on."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    code = (
        "import micronet_tf, micronet_tf.models\n"
        "from tensorflow.python.util import _pywrap_util_port as port\n"
        "print('onednn', port.IsMklEnabled())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.split()[-1]


def test_importing_micronet_tf_turns_onednn_kernels_on_unless_the_user_chose():
    # TensorFlow's default leaves them off on CPUs without AVX-512 VNNI/BF16 or AMX (1.3x slower
    # training steps on an AVX2-only CPU); the user's own setting wins.
    assert _onednn_enabled_after_importing_micronet_tf(None) == "True"
    assert _onednn_enabled_after_importing_micronet_tf("0") == "False"
    assert _onednn_enabled_after_importing_micronet_tf("1") == "True"
