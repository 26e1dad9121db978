"""Distribution: MirroredStrategy over 2 logical CPUs, and 2 MultiWorkerMirroredStrategy workers
on 127.0.0.1. Each run is a fresh process (logical devices must be set before TensorFlow starts).

The model has no BatchNorm and the loss is pure BCE (a mean over pixels), so splitting the
global batch across replicas changes nothing mathematically; only float round-off differs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
# Loss trajectories agree to float32 round-off of an all-reduced gradient.
TRAJECTORY_TOLERANCE = 1e-5


def run(strategy: str, tmp: Path, name: str, cpus: int = 1, env=None):
    result = tmp / f"{name}.npz"
    command = [
        sys.executable,
        "-m",
        "tests.training._distributed_run",
        strategy,
        str(tmp / name),
        str(result),
        str(cpus),
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, result


def finish(process: subprocess.Popen, result: Path) -> dict:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    with np.load(result) as data:
        return {k: data[k] for k in data.files}


def test_mirrored_matches_one_device(tmp_path: Path) -> None:
    single = finish(*run("auto", tmp_path, "single"))
    mirrored = finish(*run("mirrored", tmp_path, "mirrored", cpus=2))
    assert single["loss"].shape == (4,)
    np.testing.assert_allclose(mirrored["loss"], single["loss"], atol=TRAJECTORY_TOLERANCE)
    assert single["loss"][-1] < single["loss"][0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_multiworker_workers_end_identical(tmp_path: Path) -> None:
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    runs = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        runs.append(
            run("multiworker", tmp_path, f"worker{index}", env={"TF_CONFIG": json.dumps(config)})
        )
    first, second = (finish(*r) for r in runs)
    weights = sorted(k for k in first if k.startswith("w"))
    assert weights
    for key in weights:
        np.testing.assert_array_equal(first[key], second[key])
    assert np.isfinite(first["loss"]).all()
