"""TorchAdam against ``torch.optim.Adam``, step for step."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

from micronet_tf.training.optimizers import TorchAdam

# Gradients from 1e-9 to 1e-1 (a U-Net's span), 40 steps, the learning rate lowered halfway as
# the two-stage schedule does. Weights are O(1) and move by up to ~4e-2.
STEPS, BOUND = 40, 1e-6


def _gradients(shape: tuple[int, ...], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-9, -1, size=shape)
    return [(rng.normal(size=shape) * scale).astype("float32") for _ in range(STEPS)]


def _torch_run(initial: list[np.ndarray], gradients: list[list[np.ndarray]]) -> list[np.ndarray]:
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in initial]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    for step in range(STEPS):
        if step == STEPS // 2:
            optimizer.param_groups[0]["lr"] = 2e-4
        for param, grads in zip(params, gradients):
            param.grad = torch.from_numpy(grads[step])
        optimizer.step()
    return [p.detach().numpy() for p in params]


def _keras_run(optimizer, initial, gradients) -> list[np.ndarray]:
    variables = [keras.Variable(w.copy()) for w in initial]
    for step in range(STEPS):
        if step == STEPS // 2:
            optimizer.learning_rate.assign(2e-4)
        optimizer.apply_gradients([(g[step], v) for g, v in zip(gradients, variables)])
    return [np.asarray(v) for v in variables]


def test_torch_adam_matches_torch_optim_adam_and_keras_adam_does_not() -> None:
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(7,)).astype("float32")]
    gradients = [_gradients((6, 5), 1), _gradients((7,), 2)]
    expected = _torch_run(initial, gradients)
    ours = _keras_run(TorchAdam(learning_rate=1e-3), initial, gradients)
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=BOUND)
    # The reason TorchAdam exists: Keras' Adam puts epsilon elsewhere and misses by far more.
    keras_adam = _keras_run(keras.optimizers.Adam(learning_rate=1e-3), initial, gradients)
    assert max(np.abs(k - e).max() for k, e in zip(keras_adam, expected)) > 100 * BOUND


def test_torch_adam_saves_and_reloads_with_a_model(tmp_path) -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=TorchAdam(learning_rate=5e-4), loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.optimizer, TorchAdam)
    assert float(reloaded.optimizer.learning_rate) == pytest.approx(5e-4)
    assert reloaded.optimizer.epsilon == pytest.approx(1e-8)
    for a, b in zip(model.optimizer.variables, reloaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_torch_adam_refuses_amsgrad() -> None:
    with pytest.raises(ValueError, match="amsgrad"):
        TorchAdam(amsgrad=True)
