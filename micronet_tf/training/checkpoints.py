"""Run folders that survive any kill: light best weights at every improvement, the whole
resumable state (model, optimizer, callbacks' state, RNG, epoch, log rows) at intervals.

Layout of a run folder written by :class:`RunCheckpoint`::

    best.weights.h5   the best epoch's model weights (no optimizer state), at every improvement
    best.json         which epoch that was and its monitored value
    log.csv           one row per epoch, rewritten from the checkpoint's rows on resume
    checkpoint/epoch-000012/   the state after 12 epochs: state.weights.h5 (model and
                      optimizer), best.weights.h5 (a hard link), state.json (the rest, with
                      the files' sha256); the newest two are kept
    best.keras, last.keras     written when training ends

Every file appears through a temporary name and a rename, a checkpoint folder through a
rename of a complete folder, so a kill leaves the previous state intact; on resume a
checkpoint whose files do not match their recorded sha256 is reported and the previous one
used.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from micronet_tf.files import atomic_output_path, sha256_of

BEST_WEIGHTS = "best.weights.h5"
BEST_RECORD = "best.json"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
LOG_FILE = "log.csv"
CHECKPOINT_DIR = "checkpoint"
STATE_WEIGHTS = "state.weights.h5"
STATE_RECORD = "state.json"
_CHECKPOINT_NAME = re.compile(r"^epoch-(\d{6})$")
_PARTIAL = ".partial-"


class RunFinishedError(RuntimeError):
    """Training into a run folder whose run has ended."""


def parse_interval(every: int | str) -> tuple[int | None, float | None]:
    """``5`` (epochs), ``"5"``, ``"10min"`` or ``"90s"`` -> (epochs, seconds); one is None."""
    text = str(every).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(min|m|s|sec)?", text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(
            f"checkpoint_every={every!r}: expected a positive number of epochs "
            "(5) or of minutes / seconds ('10min', '90s')"
        )
    value, unit = float(match.group(1)), match.group(2)
    if unit is None:
        if not value.is_integer():
            raise ValueError(f"checkpoint_every={every!r}: a number of epochs must be whole")
        return int(value), None
    return None, value * 60 if unit in ("min", "m") else value


def save_model_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """``model.save_weights`` without the optimizer's state (a third of Adam's size)."""
    from keras.src.saving import saving_lib

    skip = [model.optimizer] if getattr(model, "optimizer", None) is not None else None
    saving_lib.save_weights_only(model, path, objects_to_skip=skip)


def load_model_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Load a file of :func:`save_model_weights` (leaves the optimizer's state alone)."""
    from keras.src.saving import saving_lib

    skip = [model.optimizer] if getattr(model, "optimizer", None) is not None else None
    saving_lib.load_weights_only(model, path, objects_to_skip=skip)


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete checkpoint folders, newest first."""
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if p.is_dir() and (m := _CHECKPOINT_NAME.match(p.name))
    ]
    return sorted(found, reverse=True)


def _read_checkpoint(path: Path) -> dict:
    """The checkpoint's record, after checking its files against their sha256 (ValueError)."""
    try:
        record = json.loads((path / STATE_RECORD).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path / STATE_RECORD}: unreadable ({error})") from None
    for name, digest in record.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise ValueError(f"{file}: missing")
        if sha256_of(file) != digest:
            raise ValueError(f"{file}: damaged (sha256 differs from the one recorded)")
    return record


def latest_checkpoint(out_dir: str | os.PathLike) -> tuple[Path, dict] | None:
    """The newest intact checkpoint of a run folder and its record, warning about damaged ones."""
    for _, path in _checkpoints(Path(out_dir) / CHECKPOINT_DIR):
        try:
            return path, _read_checkpoint(path)
        except ValueError as error:
            warnings.warn(
                f"ignoring a damaged checkpoint: {error}; using the one before it", stacklevel=2
            )
    return None


def _rng_state() -> dict:
    state = np.random.get_state()
    return {
        "numpy": [state[0], state[1].tolist(), *state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def _set_rng_state(state: dict) -> None:
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _scalar(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def write_log(path: Path, rows: Sequence[dict]) -> None:
    """The whole log, one row per epoch (columns: ``epoch`` then the rest, sorted)."""
    keys = sorted({k for row in rows for k in row} - {"epoch"})
    with atomic_output_path(path) as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["epoch", *keys])
            writer.writeheader()
            writer.writerows(rows)


class RunCheckpoint(keras.callbacks.Callback):
    """Crash-proof checkpoints and log of one run folder (see the module's docstring).

    ``every``: epochs (``5``) or time (``"10min"``) between whole checkpoints; one is also
    written when training ends (marked finished, with why it stopped), so a run can be
    extended. ``stateful``: callbacks with ``get_state() -> dict`` / ``set_state(dict)``
    (the schedule, early stopping), saved in each checkpoint and restored on resume.
    ``restore_best``: load the best weights when training ends (before ``best.keras``).
    Place it after the callbacks that add to the epoch's logs (the schedule's learning rate).
    ``strategy``: under a MultiWorkerMirroredStrategy the workers agree on when to checkpoint
    and, on resume, on the newest epoch every worker holds a checkpoint of (a worker killed
    while writing one resumes with the others from the one before).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        monitor: str,
        mode: str = "max",
        every: int | str = "5min",
        resume: bool = True,
        stateful: Sequence[keras.callbacks.Callback] = (),
        restore_best: bool = True,
        keep: int = 2,
        verbose: bool = True,
        strategy=None,
    ) -> None:
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.out_dir, self.monitor, self.mode = Path(out_dir), monitor, mode
        self.every_epochs, self.every_seconds = parse_interval(every)
        self.resume, self.stateful, self.restore_best = resume, list(stateful), restore_best
        self.keep, self.verbose = max(1, keep), verbose
        from micronet_tf.training.distribute import is_multiworker

        self._strategy = strategy if is_multiworker(strategy) else None
        self.rows: list[dict] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.resumed_from: int | None = None
        self.seconds = 0.0  # time spent writing checkpoints and best weights
        self._last_saved_epoch: int | None = None
        self._last_saved_time = time.monotonic()
        self._epoch = 0

    # -- helpers ---------------------------------------------------------------------------
    @property
    def _folder(self) -> Path:
        return self.out_dir / CHECKPOINT_DIR

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def _clean_partials(self) -> None:
        for folder in (self.out_dir, self._folder):
            if folder.is_dir():
                for leftover in folder.glob(f"{_PARTIAL}*"):
                    if leftover.is_dir():
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        leftover.unlink(missing_ok=True)

    def _write_best_record(self) -> None:
        with atomic_output_path(self.out_dir / BEST_RECORD) as temporary:
            temporary.write_text(
                json.dumps({"epoch": self.best_epoch, "monitor": self.monitor, "value": self.best})
            )

    def save_checkpoint(
        self, epochs_done: int, *, finished: bool = False, stop: str | None = None
    ) -> Path:
        """Write the state after ``epochs_done`` epochs as a complete folder, then prune."""
        started = time.monotonic()
        self._folder.mkdir(parents=True, exist_ok=True)
        target = self._folder / f"epoch-{epochs_done:06d}"
        partial = Path(os.path.realpath(self._folder)) / f"{_PARTIAL}{target.name}-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        self.model.save_weights(partial / STATE_WEIGHTS)
        best = self.out_dir / BEST_WEIGHTS
        if best.is_file():
            try:
                os.link(best, partial / BEST_WEIGHTS)
            except OSError:
                shutil.copy2(best, partial / BEST_WEIGHTS)
        files = {p.name: sha256_of(p) for p in sorted(partial.iterdir())}
        record = {
            "epochs_done": epochs_done,
            "finished": finished,
            "stop": stop,
            "monitor": self.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "rows": self.rows,
            "callbacks": {type(c).__name__: c.get_state() for c in self.stateful},
            "rng": _rng_state(),
            "files": files,
        }
        (partial / STATE_RECORD).write_text(json.dumps(record))
        if target.exists():  # the same epoch again (the end of a run): swap it in
            old = self._folder / f"{_PARTIAL}old-{target.name}"
            os.replace(target, old)
            os.replace(partial, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, target)
        for _, path in _checkpoints(self._folder)[self.keep :]:
            shutil.rmtree(path, ignore_errors=True)
        self._last_saved_epoch, self._last_saved_time = epochs_done, time.monotonic()
        self.seconds += time.monotonic() - started
        return target

    def _restore(self, path: Path, record: dict) -> None:
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(path / STATE_WEIGHTS)
        self.rows = list(record["rows"])
        self.best, self.best_epoch = record["best"], record["best_epoch"]
        states = record.get("callbacks", {})
        for callback in self.stateful:
            if type(callback).__name__ in states:
                callback.set_state(states[type(callback).__name__])
        if (path / BEST_WEIGHTS).is_file():  # the best of this timeline, not of a lost one
            with atomic_output_path(self.out_dir / BEST_WEIGHTS) as temporary:
                shutil.copy2(path / BEST_WEIGHTS, temporary)
            self._write_best_record()
        _set_rng_state(record["rng"])
        model._initial_epoch = record["epochs_done"]
        self.resumed_from = record["epochs_done"]
        self._last_saved_epoch = record["epochs_done"]

    def _all_workers(self, value: float) -> list[float]:
        """``value`` of every worker (just this one's without several workers)."""
        if self._strategy is None:
            return [value]
        from micronet_tf.training.distribute import gather_from_workers

        return gather_from_workers(self._strategy, value)

    def _checkpoint_to_resume(self) -> tuple[Path, dict] | None:
        found = latest_checkpoint(self.out_dir)
        if self._strategy is None:
            return found
        agreed = int(min(self._all_workers(found[1]["epochs_done"] if found else 0)))
        if found is None or agreed == found[1]["epochs_done"]:
            return found if agreed else None
        for epochs, path in _checkpoints(self._folder):
            if epochs > agreed:  # of a timeline the other workers did not reach
                shutil.rmtree(path, ignore_errors=True)
            elif epochs == agreed:
                try:
                    return path, _read_checkpoint(path)
                except ValueError as error:
                    raise ValueError(
                        f"the workers' newest common checkpoint is damaged here: {error}"
                    ) from None
        if agreed == 0:
            return None
        raise ValueError(
            f"{self._folder}: another worker resumes after epoch {agreed}, but "
            "this worker no longer holds that checkpoint; start the run afresh "
            "(--force) on every worker"
        )

    # -- Keras hooks -----------------------------------------------------------------------
    def on_train_begin(self, logs=None) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._clean_partials()
        self.rows, self.best, self.best_epoch, self.resumed_from = [], None, None, None
        self.seconds = 0.0
        found = self._checkpoint_to_resume() if self.resume else None
        if found is not None:
            self._restore(*found)
            if self.verbose:
                print(
                    f"resuming {self.out_dir} after epoch {self.resumed_from} "
                    f"(from {found[0].name})",
                    flush=True,
                )
        else:
            if self.resume and any(self._folder.glob("epoch-*")):
                warnings.warn(
                    f"{self._folder}: no intact checkpoint; training starts afresh", stacklevel=2
                )
            # A fresh start: what an earlier attempt left must not pass for this run's.
            shutil.rmtree(self._folder, ignore_errors=True)
            for name in (BEST_WEIGHTS, BEST_RECORD):
                (self.out_dir / name).unlink(missing_ok=True)
        write_log(self.out_dir / LOG_FILE, self.rows)
        self._last_saved_time = time.monotonic()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        self._epoch = epoch + 1
        self.rows.append({"epoch": epoch, **{k: _scalar(v) for k, v in logs.items()}})
        write_log(self.out_dir / LOG_FILE, self.rows)
        value = logs.get(self.monitor)
        if value is not None and not np.isnan(float(value)) and self._improved(float(value)):
            started = time.monotonic()
            self.best, self.best_epoch = float(value), epoch
            with atomic_output_path(self.out_dir / BEST_WEIGHTS) as temporary:
                save_model_weights(self.model, temporary)
            self._write_best_record()
            self.seconds += time.monotonic() - started
        done = epoch + 1
        due_epochs = self.every_epochs is not None and (
            done - (self._last_saved_epoch or 0) >= self.every_epochs
        )
        due_time = self.every_seconds is not None and (
            time.monotonic() - self._last_saved_time >= self.every_seconds
        )
        if self._strategy is not None and self.every_seconds is not None:
            due_time = max(self._all_workers(float(due_time))) > 0  # one clock for all
        if due_epochs or due_time:
            self.save_checkpoint(done)

    def on_train_end(self, logs=None) -> None:
        done = self._epoch if self._epoch else (self._last_saved_epoch or 0)
        stop = "stopped" if self.model.stop_training else "epoch budget"
        self.save_checkpoint(done, finished=True, stop=stop)
        started = time.monotonic()
        with atomic_output_path(self.out_dir / LAST_MODEL) as temporary:
            self.model.save(temporary)
        if self.restore_best and (self.out_dir / BEST_WEIGHTS).is_file():
            load_model_weights(self.model, self.out_dir / BEST_WEIGHTS)
        if (self.out_dir / BEST_WEIGHTS).is_file():
            with atomic_output_path(self.out_dir / BEST_MODEL) as temporary:
                self.model.save(temporary)
        self.seconds += time.monotonic() - started
        self.model._initial_epoch = None  # a later fit() of this model starts at its own epoch


def check_resumable(out_dir: str | os.PathLike, max_epochs: int) -> dict | None:
    """The record of the run folder's latest checkpoint, or None; raises
    :class:`RunFinishedError` when that run ended and ``max_epochs`` would not extend it."""
    found = latest_checkpoint(out_dir)
    if found is None:
        return None
    path, record = found
    if record.get("finished"):
        done = record["epochs_done"]
        best = record.get("best")
        summary = (
            f"{out_dir} holds a finished run ({done} epochs, best {record['monitor']} "
            f"{best:.4f} at epoch {record['best_epoch'] + 1})"
            if best is not None
            else f"{out_dir} holds a finished run ({done} epochs)"
        )
        if record.get("stop") == "stopped":
            raise RunFinishedError(
                f"{summary}: its schedule stopped it. Evaluate it, or train afresh with a new "
                "--out (or --force / resume=False to replace it)"
            )
        if max_epochs <= done:
            raise RunFinishedError(
                f"{summary}: it used its budget of epochs. Pass --epochs (max_epochs) larger "
                f"than {done} to train it further, or a new --out (or --force / resume=False) "
                "to train afresh"
            )
    return record
