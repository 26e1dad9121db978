"""The end-to-end path on real benchmark data: the README's demo (shortened), and
train / evaluate through the CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "micronet_tf.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )


def _env(tmp_path: Path, benchmark_data: Path) -> dict:
    # TFDS builds into its own folder under tmp; data from the local benchmark copy.
    # The demo's MicroNet weights: an empty cache and offline, so it says so and goes random.
    return {
        **os.environ,
        "MICRONET_TF_DATA": str(benchmark_data),
        "TFDS_DATA_DIR": str(tmp_path / "tfds"),
        "MICRONET_TF_HOME": str(tmp_path / "home"),
        "MICRONET_TF_OFFLINE": "1",
    }


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_writes_a_valid_report(tmp_path: Path, benchmark_data: Path) -> None:
    out = tmp_path / "demo"
    result = run_cli(
        "demo",
        "--epochs",
        "2",
        "--crop",
        "128",
        "--out",
        str(out),
        env=_env(tmp_path, benchmark_data),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "encoder weights: random; no MicroNet weights for resnet18 could be had" in (
        result.stdout
    )
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["encoder_weights"] == "random"
    assert set(summary["test_per_class_iou"]) == {"matrix", "secondary", "tertiary"}
    assert all(0.0 <= v <= 1.0 for v in summary["test_per_class_iou"].values())
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert len(metrics["images"]) == 4  # Super-3's test split
    assert _is_png(out / "report" / "training_curves.png")
    maps = sorted((out / "report" / "accuracy").glob("*.png"))
    assert len(maps) == 8 and all(_is_png(p) for p in maps)  # 4 images x (secondary, tertiary)
    with open(out / "report" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[-1]["image"] == "ALL" and len(rows) == 5


def test_train_then_evaluate_ebc(tmp_path: Path, benchmark_data: Path) -> None:
    env = _env(tmp_path, benchmark_data)
    run_dir = tmp_path / "run"
    train = run_cli(
        "train",
        "--dataset",
        "micronet_segmentation/ebc2",
        "--architecture",
        "FPN",
        "--encoder",
        "resnet18",
        "--encoder-weights",
        "none",
        "--epochs",
        "1",
        "--crop",
        "128",
        "--batch-size",
        "4",
        "--out",
        str(run_dir),
        env=env,
    )
    assert train.returncode == 0, train.stderr[-4000:]
    config = json.loads((run_dir / "run.json").read_text())
    assert config["class_names"] == ["oxide"] and config["architecture"] == "FPN"
    # The same command again: the run is finished and says how to extend it.
    again = run_cli(*train.args[3:], env=env)
    assert again.returncode == 2 and "finished run (1 epochs" in again.stderr
    assert "--epochs" in again.stderr and "Traceback" not in again.stderr
    # Another architecture into the same folder: refused, naming the difference.
    other = run_cli(*[("Unet" if a == "FPN" else a) for a in train.args[3:]], env=env)
    assert (
        other.returncode == 2
        and "holds a different run (architecture: 'FPN'" in (other.stderr)
        and "--force" in other.stderr
    )
    assert json.loads((run_dir / "run.json").read_text())["architecture"] == "FPN"
    evaluate = run_cli(
        "evaluate",
        str(run_dir),
        "--dataset",
        "micronet_segmentation/ebc2",
        "--split",
        "test",
        "--out",
        str(tmp_path / "eval"),
        env=env,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-4000:]
    assert "IoU oxide" in evaluate.stdout
    assert len(list((tmp_path / "eval" / "accuracy").glob("*_oxide.png"))) == 3
    wrong = run_cli(
        "evaluate",
        str(run_dir),
        "--dataset",
        "micronet_segmentation/super1",
        "--out",
        str(tmp_path / "eval2"),
        env=env,
    )
    assert wrong.returncode == 2 and "needs 3" in wrong.stderr
