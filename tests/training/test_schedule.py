"""The two-stage schedule: learning rates, restoring the best weights, stopping, resuming."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from micronet_tf.training import TwoStageSchedule


def tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1.0), loss="mse")
    return model


def drive(schedule: TwoStageSchedule, model: keras.Model, values, start: int = 0) -> list[float]:
    """Feed validation values epoch by epoch; set the weights to the epoch number first, so the
    restored weights tell which epoch they came from. Returns the learning rate per epoch."""
    schedule.set_model(model)
    schedule.on_train_begin()
    rates = []
    for epoch, value in enumerate(values, start):
        if model.stop_training:
            break
        model.set_weights([np.full(w.shape, epoch, "float32") for w in model.get_weights()])
        rates.append(float(model.optimizer.learning_rate.numpy()))
        schedule.on_epoch_end(epoch, {"val_iou": value})
    schedule.on_train_end()
    return rates


def test_two_stages_then_stop_with_best_weights() -> None:
    model = tiny_model()
    schedule = TwoStageSchedule(patience=2, initial_lr=2e-4, final_lr=1e-5)
    #          epoch: 0    1    2    3    4    5    6    7    8    9
    values = [0.1, 0.5, 0.4, 0.4, 0.6, 0.7, 0.2, 0.3, 0.1, 0.9]
    rates = drive(schedule, model, values)
    # Stage 1 improves until epoch 1, waits 2 -> stage 2 from epoch 4; improves at 4 and 5,
    # waits at 6 and 7 -> stop after epoch 7 (epochs 8, 9 never run).
    assert rates == pytest.approx([2e-4] * 4 + [1e-5] * 4)
    assert model.stop_training and (schedule.best, schedule.best_epoch) == (0.7, 5)
    assert all(np.all(w == 5) for w in model.get_weights())


def test_state_survives_a_restart(tmp_path: Path) -> None:
    """What RunCheckpoint does on resume: the state back, the best weights from the run folder."""
    from micronet_tf.training.checkpoints import save_model_weights

    first = TwoStageSchedule(patience=2, out_dir=tmp_path)
    model = tiny_model()
    drive(first, model, [0.1, 0.5, 0.4, 0.4])  # ends having switched to stage 2
    assert first.get_state() == {"stage": 2, "wait": 0, "best": 0.5, "best_epoch": 1}
    model.set_weights([np.full(w.shape, 1, "float32") for w in model.get_weights()])
    save_model_weights(model, tmp_path / "best.weights.h5")  # epoch 1's, as RunCheckpoint keeps
    model = tiny_model()
    second = TwoStageSchedule(patience=2, out_dir=tmp_path)
    second.set_model(model)
    second.set_state(first.get_state())
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-5)
    rates = []
    for epoch, value in enumerate([0.3, 0.2], 4):
        model.set_weights([np.full(w.shape, epoch, "float32") for w in model.get_weights()])
        rates.append(float(model.optimizer.learning_rate.numpy()))
        second.on_epoch_end(epoch, {"val_iou": value})
    second.on_train_end()
    assert rates == pytest.approx([1e-5, 1e-5])
    assert model.stop_training and second.best == 0.5
    assert all(np.all(w == 1) for w in model.get_weights())  # epoch 1's weights, from disk


def test_missing_monitor_is_explained() -> None:
    schedule = TwoStageSchedule()
    schedule.set_model(tiny_model())
    schedule.on_train_begin()
    with pytest.raises(ValueError, match="logs lack or is NaN"):
        schedule.on_epoch_end(0, {"loss": 1.0})
