"""``micronet-tf predict`` and ``micronet-tf measure`` on real micrographs, as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from micronet_tf.models import create_segmentation_model

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "micronet_tf.cli", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_predict_then_measure(tmp_path: Path, benchmark_data: Path) -> None:
    model = create_segmentation_model("Unet", "resnet18", classes=3, activation="softmax",
                                      class_names=["matrix", "secondary", "tertiary"])
    model_path = tmp_path / "unet.keras"
    model.save(model_path)
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(benchmark_data / "Super1" / "test" / "spot2_0d_0.tif", inputs / "a b#1.tif")
    Image.fromarray(np.full((70, 90), 128, np.uint8)).save(inputs / "small.png")
    (inputs / "broken.tif").write_bytes(b"not a tiff")
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}

    out = tmp_path / "out"
    result = run_cli("predict", str(model_path), str(inputs), "--out", str(out), "--tile", "256",
                     "--overlap", "32")
    assert result.returncode == 2, result.stderr[-3000:]  # one file failed ...
    assert "broken.tif" in result.stderr and "1 file(s) failed" in result.stderr
    mask = np.asarray(Image.open(out / "a b#1_mask.png"))  # ... the others went on
    assert mask.shape == (512, 512) and mask.max() <= 2
    assert np.asarray(Image.open(out / "small_overlay.png")).shape == (70, 90, 3)
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before

    report = tmp_path / "measured"
    truth = tmp_path / "truth"
    truth.mkdir()
    shutil.copy(out / "a b#1_mask.png", truth / "a b#1_mask.png")  # a perfect "truth"
    measured = run_cli("measure", str(out / "a b#1_mask.png"), "--out", str(report), "--truth",
                       str(truth), "--classes", "matrix", "secondary", "tertiary",
                       "--pixel-size", "0.01")
    assert measured.returncode == 0, measured.stderr[-3000:]
    summary = json.loads((report / "summary.json").read_text())
    image = summary["images"]["a b#1_mask.png"]
    assert abs(sum(image["area_fractions"].values()) - 1) < 1e-9
    for name in ("secondary", "tertiary"):
        info = image["classes"][name]
        if info["objects"]:
            assert info["size_error"]["mean_percent_error"] == 0.0
            assert (report / f"a b#1_mask_{name}_objects.csv").is_file()
