"""Runs killed with SIGKILL at every kind of moment resume to a clean log and a loadable best
model; damaged checkpoints are detected; finished and foreign runs are not silently restarted."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from micronet_tf.training.checkpoints import (
    CHECKPOINT_DIR,
    STATE_WEIGHTS,
    RunFinishedError,
    latest_checkpoint,
    parse_interval,
)
from tests.training._killable_run import EPOCHS

ROOT = Path(__file__).resolve().parents[2]


def run(out: Path, kill: str = "none", every: str = "1") -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "tests.training._killable_run", str(out), kill, every],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def logged_epochs(out: Path) -> list[int]:
    with open(out / "log.csv") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_sigkill_at_every_kind_of_moment_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Each kill, then the next process resumes from what the last one left.
    for kill, every in (
        ("batch:1", "1"),
        ("logged:2", "2"),
        ("checkpoint:3", "1"),
        ("best:4", "1"),
    ):
        killed = run(out, kill, every)
        assert killed.returncode == -9, (kill, killed.stdout, killed.stderr[-3000:])
        epochs = logged_epochs(out)
        assert epochs == list(range(len(epochs))), (kill, epochs)  # one row per epoch
        found = latest_checkpoint(out)
        assert found is not None and not found[1]["finished"]
        assert found[1]["epochs_done"] <= len(epochs)
    assert list(out.glob(".partial-*")) or list((out / CHECKPOINT_DIR).glob(".partial-*")), (
        "the kills during writes should have left partial files for the resume to clean"
    )
    finished = run(out)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "resumed_from=" in finished.stdout and "resumed_from=None" not in finished.stdout
    assert logged_epochs(out) == list(range(EPOCHS))
    assert not list(out.glob(".partial-*")) and not list((out / CHECKPOINT_DIR).glob(".partial-*"))
    with open(out / "log.csv") as handle:
        values = [float(row["val_iou"]) for row in csv.DictReader(handle)]
    record = json.loads((out / "best.json").read_text())
    assert record["value"] == pytest.approx(max(values))
    model = keras.saving.load_model(out / "best.keras", compile=False)
    assert model.output_shape == (None, None, None, 1)
    keras.saving.load_model(out / "last.keras", compile=False)
    assert len(list((out / CHECKPOINT_DIR).glob("epoch-*"))) == 2  # the newest two kept
    _, state = latest_checkpoint(out)
    assert state["finished"] and state["epochs_done"] == EPOCHS


def test_damaged_checkpoint_is_reported_and_the_previous_used(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run(out, "logged:3", "1").returncode == -9
    newest, older = sorted((out / CHECKPOINT_DIR).glob("epoch-*"), reverse=True)[:2]
    weights = newest / STATE_WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated write
    with pytest.warns(UserWarning, match="damaged"):
        path, _ = latest_checkpoint(out)
    assert path == older
    finished = run(out)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert f"resumed_from={int(older.name.split('-')[1])}" in finished.stdout
    assert logged_epochs(out) == list(range(EPOCHS))


def _optimizer_arrays(path: Path) -> list[str]:
    import h5py

    names: list[str] = []
    with h5py.File(path, "r") as handle:
        handle.visit(lambda name: names.append(name) if "optimizer" in name else None)
    return names


def test_finished_run_is_not_restarted_but_can_be_extended(tmp_path: Path) -> None:
    from micronet_tf.training import train_segmentation
    from tests.training._synthetic import blobs, dataset, small_conv_model

    images, masks = blobs(4, size=32, seed=0)
    data = dataset(images, masks, 4)
    options = dict(out_dir=tmp_path, patience=5, seed=0, tensorboard=False, verbose=0)
    first = train_segmentation(small_conv_model(), data, data, max_epochs=2, **options)
    assert first.resumed_from is None and first.epochs_run == 2
    # The best weights are light (no Adam moments); the resumable state holds them.
    assert not _optimizer_arrays(tmp_path / "best.weights.h5")
    assert _optimizer_arrays(tmp_path / CHECKPOINT_DIR / "epoch-000002" / STATE_WEIGHTS)
    with pytest.raises(RunFinishedError, match="budget of epochs.*larger than 2"):
        train_segmentation(small_conv_model(), data, data, max_epochs=2, **options)
    extended = train_segmentation(small_conv_model(), data, data, max_epochs=4, **options)
    assert (extended.resumed_from, extended.epochs_run) == (2, 2)
    assert logged_epochs(tmp_path) == [0, 1, 2, 3]
    fresh = train_segmentation(
        small_conv_model(), data, data, max_epochs=1, resume=False, **options
    )
    assert fresh.resumed_from is None and logged_epochs(tmp_path) == [0]
    with pytest.raises(ValueError, match="max_epochs=0"):
        train_segmentation(small_conv_model(), data, data, max_epochs=0, **options)


def test_checkpoint_interval_parsing() -> None:
    assert parse_interval(5) == (5, None) and parse_interval("10min") == (None, 600.0)
    assert parse_interval("90s") == (None, 90.0)
    for bad in ("0", "-1", "2.5", "soon"):
        with pytest.raises(ValueError, match="checkpoint_every"):
            parse_interval(bad)
