"""``micronet-tf train --strategy multiworker``: two worker processes on 127.0.0.1 given the
same ``--out`` (as on a shared file system), on a folder and on a benchmark set; a worker
killed mid-run, then both restarted, resume from the same epoch."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from tests.labelled_folders import copy_pairs

ROOT = Path(__file__).resolve().parents[2]
QUICK = [
    "--encoder",
    "resnet18",
    "--crop",
    "64",
    "--checkpoint-every",
    "1",
    "--strategy",
    "multiworker",
]


def _ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(
    args: list[str], logs: Path, tag: str, command: str = "train"
) -> list[subprocess.Popen]:
    cluster = [f"127.0.0.1:{port}" for port in _ports(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
        log = open(logs / f"{tag}-worker{index}.log", "w")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "micronet_tf.cli", command, *args],
                cwd=ROOT,
                env={**os.environ, "TF_CONFIG": json.dumps(config)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return processes


def finish(processes: list[subprocess.Popen], logs: Path, tag: str) -> list[str]:
    outputs = []
    for index, process in enumerate(processes):
        process.wait(timeout=900)
        output = (logs / f"{tag}-worker{index}.log").read_text()
        assert process.returncode == 0, output[-3000:]
        outputs.append(output)
    return outputs


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def _trained_weights(folder: Path) -> list[np.ndarray]:
    """The trainable weights of the run's last model (BatchNorm's moving statistics are each
    worker's own, from its share of the batch, as with PyTorch's DistributedDataParallel)."""
    from micronet_tf import load_model

    model = load_model(folder / "last.keras", compile=False)
    return [np.asarray(w) for w in model.trainable_weights]


def test_two_workers_on_a_folder_survive_a_killed_worker(
    tmp_path: Path, benchmark_data: Path
) -> None:
    copy_pairs(benchmark_data, "Super1", "train", tmp_path / "images", tmp_path / "masks", 2)
    out = tmp_path / "run"
    args = [
        "--images",
        str(tmp_path / "images"),
        "--masks",
        str(tmp_path / "masks"),
        "--classes",
        "matrix",
        "secondary:0,0,255",
        "tertiary:255,0,0",
        "--epochs",
        "6",
        *QUICK,
        "--out",
        str(out),
    ]
    first = start_workers(args, tmp_path, "first")
    deadline = time.monotonic() + 600
    while not (out / "checkpoint" / "epoch-000003").is_dir():
        assert time.monotonic() < deadline and all(p.poll() is None for p in first), (
            tmp_path / "first-worker0.log"
        ).read_text()[-3000:]
        time.sleep(0.2)
    _kill(first[1])  # the second worker dies mid-run ...
    try:
        first[0].wait(timeout=20)  # ... the chief notices (or is stopped too)
    except subprocess.TimeoutExpired:
        pass
    _kill(first[0])
    assert not (out / "last.keras").exists()  # the run did not finish

    chief, worker = finish(start_workers(args, tmp_path, "again"), tmp_path, "again")
    resumed = [re.search(r"resuming .* after epoch (\d+)", text) for text in (chief, worker)]
    assert all(resumed), (chief[-2000:], worker[-2000:])
    assert resumed[0].group(1) == resumed[1].group(1)  # the same epoch on both workers
    assert int(resumed[0].group(1)) >= 2  # the newest checkpoint both workers completed

    # The chief's run folder holds the whole run; the other worker wrote only its own folder.
    rows = (out / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(6))
    assert json.loads((out / "run.json").read_text())["data"]["train"][0]["image_sha256"]
    assert (out / "workertemp_1" / "last.keras").is_file()
    chief_weights, worker_weights = _trained_weights(out), _trained_weights(out / "workertemp_1")
    assert len(chief_weights) > 50
    for a, b in zip(chief_weights, worker_weights):
        np.testing.assert_array_equal(a, b)  # synchronous training: identical replicas


def test_two_workers_on_a_benchmark_set(tmp_path: Path) -> None:
    out = tmp_path / "run"
    processes = start_workers(
        ["--dataset", "micronet_segmentation/super1", "--epochs", "2", *QUICK, "--out", str(out)],
        tmp_path,
        "bench",
    )
    chief, worker = finish(processes, tmp_path, "bench")
    assert "best validation IoU" in chief and "best validation IoU" in worker
    assert len((out / "log.csv").read_text().splitlines()) == 3
    assert json.loads((out / "run.json").read_text())["dataset"] == ("micronet_segmentation/super1")
    assert not (out / "workertemp_1" / "checkpoint").samefile(out / "checkpoint")


def test_two_workers_pretrain_on_class_folders(tmp_path: Path, benchmark_data: Path) -> None:
    from micronet_tf.data.decode import read_rgb

    for name, folder in (("superalloy", "Super1"), ("coating", "EBC1")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for path in sorted((benchmark_data / folder / "train").glob("*.tif"))[:5]:
            tifffile.imwrite(tmp_path / "data" / name / path.name, read_rgb(path)[::8, ::8])
    out = tmp_path / "run"
    args = [
        "--data",
        str(tmp_path / "data"),
        "--encoder",
        "resnet18",
        "--size",
        "32",
        "--batch-size",
        "4",
        "--val-per-class",
        "1",
        "--epochs",
        "2",
        "--strategy",
        "multiworker",
        "--checkpoint-every",
        "1",
        "--out",
        str(out),
    ]
    processes = start_workers(args, tmp_path, "pretrain", command="pretrain")
    chief, worker = finish(processes, tmp_path, "pretrain")
    assert "encoder.weights.h5" in chief
    assert len((out / "log.csv").read_text().splitlines()) == 3
    assert (out / "encoder.weights.h5").is_file()
    assert (out / "workertemp_1" / "encoder.weights.h5").is_file()
    assert json.loads((out / "classes.json").read_text()) == ["coating", "superalloy"]
