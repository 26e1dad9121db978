"""The paper's two-stage learning-rate schedule (checkpoints: :mod:`.checkpoints`)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import keras

from micronet_tf.training.checkpoints import BEST_WEIGHTS, load_model_weights


class TwoStageSchedule(keras.callbacks.Callback):
    """Train at ``initial_lr`` until ``monitor`` has not improved for ``patience`` epochs, then
    restore the best weights and go on at ``final_lr`` until another ``patience`` epochs pass
    without improvement; then stop, with the best weights restored (the paper: Adam 2e-4, then
    1e-5, patience 30, on validation IoU).

    ``get_state`` / ``set_state`` carry its state (stage, best value, epochs waited) through
    :class:`~micronet_tf.training.checkpoints.RunCheckpoint`; after a resume the best weights
    come from ``out_dir/best.weights.h5``. ``restore_on_end=False`` leaves restoring the best
    weights at the end to the caller (``RunCheckpoint`` saves the last model first).
    """

    def __init__(
        self,
        patience: int = 30,
        initial_lr: float = 2e-4,
        final_lr: float = 1e-5,
        monitor: str = "val_iou",
        mode: str = "max",
        out_dir: str | os.PathLike | None = None,
        restore_on_end: bool = True,
    ) -> None:
        super().__init__()
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience!r}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.patience, self.initial_lr, self.final_lr = patience, initial_lr, final_lr
        self.monitor, self.mode = monitor, mode
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.stage, self.wait, self.best, self.best_epoch = 1, 0, None, None
        self._best_weights = None
        self.restore_on_end = restore_on_end

    # -- state ----------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {
            "stage": self.stage,
            "wait": self.wait,
            "best": self.best,
            "best_epoch": self.best_epoch,
        }

    def set_state(self, state: dict) -> None:
        self.stage, self.wait = state["stage"], state["wait"]
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self._best_weights = None  # from best.weights.h5, which the checkpoint restored
        if self.model is not None:
            self._set_lr()

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def _set_lr(self) -> None:
        self.model.optimizer.learning_rate.assign(
            self.initial_lr if self.stage == 1 else self.final_lr
        )

    def _restore_best(self) -> None:
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)
        elif self.out_dir is not None and (self.out_dir / BEST_WEIGHTS).is_file():
            load_model_weights(self.model, self.out_dir / BEST_WEIGHTS)

    # -- Keras hooks ----------------------------------------------------------------------
    def on_train_begin(self, logs=None) -> None:
        self._set_lr()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
        value = logs.get(self.monitor)
        if value is None or math.isnan(float(value)):
            raise ValueError(
                f"TwoStageSchedule monitors {self.monitor!r}, which the epoch logs lack or is NaN "
                f"(logs: {sorted(logs)}); pass validation data and an IoU metric"
            )
        logs["learning_rate"] = self.initial_lr if self.stage == 1 else self.final_lr
        logs["stage"] = self.stage
        if self._improved(float(value)):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            self._best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self._restore_best()
                if self.stage == 1:
                    self.stage, self.wait = 2, 0
                    self._set_lr()
                else:
                    self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self.restore_on_end:
            self._restore_best()
