"""How a model computes: mixed precision (float16 / bfloat16 compute, float32 weights), XLA
compilation, and deterministic ops; shared by training and prediction."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import keras
import numpy as np

# What ``mixed_precision=`` accepts, and the Keras dtype policy each one means.
PRECISIONS = {
    "float32": "float32",
    "float16": "mixed_float16",
    "mixed_float16": "mixed_float16",
    "bfloat16": "mixed_bfloat16",
    "mixed_bfloat16": "mixed_bfloat16",
}
# Layers that stay in float32 under mixed precision: the output (probabilities and the loss
# are computed in float32, as Keras' mixed-precision guide recommends) and the inputs.
_FLOAT32_LAYERS = ("SegmentationOutput",)


def dtype_policy(mixed_precision: str | None) -> str | None:
    """The Keras dtype policy for ``mixed_precision`` (None: leave the model as it is)."""
    if mixed_precision is None:
        return None
    try:
        return PRECISIONS[str(mixed_precision).lower()]
    except KeyError:
        raise ValueError(
            f"mixed_precision={mixed_precision!r}: expected one of {sorted(set(PRECISIONS))} "
            "or None"
        ) from None


def model_policy(model: keras.Model) -> str:
    """The compute policy of ``model``'s layers (``"float32"``, ``"mixed_float16"``, ...)."""
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            return layer.dtype_policy.name
    return model.dtype_policy.name


def _leaf_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def with_precision(model: keras.Model, mixed_precision: str | None) -> keras.Model:
    """``model`` rebuilt to compute in ``mixed_precision`` (weights copied, kept in float32;
    the output layer stays float32), or ``model`` itself when it already does (or None)."""
    policy = dtype_policy(mixed_precision)
    if policy is None or model_policy(model) == policy:
        return model

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        keep = type(layer).__name__ in _FLOAT32_LAYERS
        config = {**layer.get_config(), "dtype": "float32" if keep else policy}
        return type(layer).from_config(config)

    rebuilt = keras.models.clone_model(model, clone_function=clone, recursive=True)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def loss_scaled(optimizer: keras.optimizers.Optimizer, model: keras.Model):
    """``optimizer`` behind dynamic loss scaling when ``model`` computes in float16 (bfloat16
    has float32's range and needs none)."""
    if model_policy(model) == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def enable_determinism(seed: int | None) -> None:
    """Seed Python, NumPy and the backend and make TensorFlow's ops deterministic (for the
    rest of the process: TensorFlow cannot switch it off again)."""
    if seed is None:
        raise ValueError("deterministic=True needs a seed (seed=0, or --seed N)")
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


# Per model, its compiled inference functions by ``jit_compile``. The functions reach the model
# through a weak reference, so that the cache never keeps a model alive.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inference_function(model: keras.Model, jit_compile: bool = False) -> Callable:
    """``batch -> outputs`` (NumPy) for inference. On TensorFlow the model runs as one graph
    (``tf.function``: about twice as fast as eager calls for one 512x512 image on a CPU; a
    dimension that varies is relaxed, so images of many sizes trace only a few times);
    ``jit_compile=True`` compiles it with XLA (once per batch shape). Both are kept with the
    model. Other backends, and callables that are not Keras models (unless ``jit_compile``),
    run eagerly."""
    if jit_compile and keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"jit_compile=True is implemented for TensorFlow, not {keras.backend.backend()}"
        )
    if not jit_compile and (
        keras.backend.backend() != "tensorflow" or not isinstance(model, keras.Model)
    ):
        return lambda batch: np.asarray(model(batch, training=False))
    compiled = _COMPILED.setdefault(model, {})
    function = compiled.get(bool(jit_compile))
    if function is None:
        import tensorflow as tf

        model_ref = weakref.ref(model)

        def forward(batch):
            return model_ref()(batch, training=False)

        if jit_compile:
            function = tf.function(forward, jit_compile=True)
        else:
            function = tf.function(forward, reduce_retracing=True)
        compiled[bool(jit_compile)] = function
    # The returned function holds the model (which may exist nowhere else, e.g. a mixed
    # precision copy); the cache does not.
    return lambda batch, model=model: np.asarray(function(batch))
