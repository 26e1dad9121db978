"""``micronet-tf train --seed N --deterministic`` twice on the same machine: the same log.csv
and the same weights, bit for bit (each run in its own process: deterministic ops are a
process-wide TensorFlow setting)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.labelled_folders import copy_pairs

ARGS = [
    "--classes",
    "matrix",
    "secondary:0,0,255",
    "tertiary:255,0,0",
    "--encoder",
    "resnet18",
    "--crop",
    "64",
    "--epochs",
    "3",
    "--repeats",
    "4",
    "--batch-size",
    "4",
    "--val-fraction",
    "0.25",
    "--checkpoint-every",
    "2",
    "--seed",
    "7",
    "--deterministic",
]


def _train(folder: Path, out: Path) -> str:
    command = [sys.executable, "-m", "micronet_tf.cli", "train"]
    command += ["--images", str(folder / "images"), "--masks", str(folder / "masks"), *ARGS]
    done = subprocess.run(
        [*command, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return (out / "log.csv").read_text()


def test_deterministic_runs_repeat_exactly(tmp_path: Path, benchmark_data: Path) -> None:
    # Four images: without --deterministic, parallel augmentation reorders the crops and the
    # two logs differ (checked when this test was written).
    copy_pairs(benchmark_data, "Super1", "train", tmp_path / "images", tmp_path / "masks", 4, 128)
    first = _train(tmp_path, tmp_path / "run1")
    second = _train(tmp_path, tmp_path / "run2")
    assert len(first.splitlines()) == 4  # header and three epochs
    assert first == second

    import micronet_tf

    weights = [
        micronet_tf.load_model(tmp_path / run / "last.keras", compile=False).get_weights()
        for run in ("run1", "run2")
    ]
    assert len(weights[0]) > 100
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
