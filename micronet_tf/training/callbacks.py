"""Callbacks of the paper's recipe: the two-stage learning-rate schedule, crash-safe checkpoints."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import keras

from micronet_tf._files import atomic_output_path

STATE_FILE = "schedule_state.json"
BEST_WEIGHTS = "best.weights.h5"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"


class TwoStageSchedule(keras.callbacks.Callback):
    """Train at ``initial_lr`` until ``monitor`` has not improved for ``patience`` epochs, then
    restore the best weights and go on at ``final_lr`` until another ``patience`` epochs pass
    without improvement; then stop, with the best weights restored (the paper: Adam 2e-4, then
    1e-5, patience 30, on validation IoU).

    With ``out_dir`` its state (stage, best value, epochs waited) and the best weights are kept
    on disk, so a run resumed after a crash continues the same schedule.
    """

    def __init__(self, patience: int = 30, initial_lr: float = 2e-4, final_lr: float = 1e-5,
                 monitor: str = "val_iou", mode: str = "max",
                 out_dir: str | os.PathLike | None = None) -> None:
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

    # -- state ----------------------------------------------------------------------------
    def _state_path(self) -> Path | None:
        return self.out_dir / STATE_FILE if self.out_dir is not None else None

    def _save_state(self) -> None:
        path = self._state_path()
        if path is None:
            return
        state = {"stage": self.stage, "wait": self.wait, "best": self.best,
                 "best_epoch": self.best_epoch}
        with atomic_output_path(path) as temporary:
            temporary.write_text(json.dumps(state))

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
            self.model.load_weights(self.out_dir / BEST_WEIGHTS)

    # -- Keras hooks ----------------------------------------------------------------------
    def on_train_begin(self, logs=None) -> None:
        path = self._state_path()
        if path is not None and path.is_file():
            state = json.loads(path.read_text())
            self.stage, self.wait = state["stage"], state["wait"]
            self.best, self.best_epoch = state["best"], state["best_epoch"]
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
            if self.out_dir is not None:
                with atomic_output_path(self.out_dir / BEST_WEIGHTS) as temporary:
                    self.model.save_weights(temporary)
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self._restore_best()
                if self.stage == 1:
                    self.stage, self.wait = 2, 0
                    self._set_lr()
                else:
                    self.model.stop_training = True
        self._save_state()

    def on_train_end(self, logs=None) -> None:
        self._restore_best()


class AtomicCheckpoints(keras.callbacks.Callback):
    """After every epoch write ``last.keras``, and ``best.keras`` when ``monitor`` improved;
    each through a temporary file, so a kill never leaves a broken or half-written model."""

    def __init__(self, out_dir: str | os.PathLike, monitor: str = "val_iou",
                 mode: str = "max") -> None:
        super().__init__()
        self.out_dir, self.monitor, self.mode = Path(out_dir), monitor, mode
        self.best = None

    def on_train_begin(self, logs=None) -> None:
        state = self.out_dir / STATE_FILE
        if self.best is None and state.is_file():
            self.best = json.loads(state.read_text()).get("best")

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        value = (logs or {}).get(self.monitor)
        with atomic_output_path(self.out_dir / LAST_MODEL) as temporary:
            self.model.save(temporary)
        better = value is not None and (
            self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        )
        if better:
            self.best = float(value)
            with atomic_output_path(self.out_dir / BEST_MODEL) as temporary:
                self.model.save(temporary)
