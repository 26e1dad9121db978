"""The ``micronet-tf`` command line, run as a user would (a subprocess per command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from micronet_tf import torch_reference


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "micronet_tf.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_list_names_every_encoder() -> None:
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    for name in ("resnet18", "resnet152", "resnext101_32x8d"):
        assert name in result.stdout


def test_convert_then_refuse_overwrite(tmp_path: Path) -> None:
    checkpoint = torch_reference.save_nasa_checkpoint(
        torch_reference.build_encoder("resnet18"), tmp_path / "r18 #1.pth.tar"
    )
    out = tmp_path / "r18.weights.h5"
    result = run_cli("convert", str(checkpoint), "--encoder", "resnet18", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.is_file() and "tensors assigned" in result.stdout
    again = run_cli("convert", str(checkpoint), "--encoder", "resnet18", "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr


def test_convert_reports_a_wrong_encoder(tmp_path: Path) -> None:
    checkpoint = tmp_path / "r18.pth"
    torch.save(torch_reference.build_encoder("resnet18").state_dict(), checkpoint)
    result = run_cli(
        "convert", str(checkpoint), "--encoder", "resnet34", "--out", str(tmp_path / "x.weights.h5")
    )
    assert result.returncode == 2
    assert "r18.pth" in result.stderr and "missing from the checkpoint" in result.stderr
    assert not (tmp_path / "x.weights.h5").exists()


def test_encoder_options_on_the_command_line(tmp_path: Path) -> None:
    """``--encoder-option KEY=VALUE`` reaches the encoder; ``list`` shows the options; a bad
    value or a malformed pair is a one-line error."""
    listing = run_cli("list")
    assert "efficientnet-b2" in listing.stdout and "padding=micronet|smp" in listing.stdout
    checkpoint = tmp_path / "b0.pth"
    torch.save(
        torch_reference.build_encoder("efficientnet-b0", padding="smp").state_dict(), checkpoint
    )
    out = tmp_path / "b0.weights.h5"
    ok = run_cli(
        "convert",
        str(checkpoint),
        "--encoder",
        "efficientnet-b0",
        "--out",
        str(out),
        "--encoder-option",
        "padding=smp",
    )
    assert ok.returncode == 0, ok.stderr
    bad = run_cli(
        "convert",
        str(checkpoint),
        "--encoder",
        "efficientnet-b0",
        "--out",
        str(tmp_path / "c.weights.h5"),
        "--encoder-option",
        "padding=tf",
    )
    assert bad.returncode == 2 and "padding='tf'; expected one of" in bad.stderr
    malformed = run_cli(
        "convert",
        str(checkpoint),
        "--encoder",
        "efficientnet-b0",
        "--out",
        str(tmp_path / "d.weights.h5"),
        "--encoder-option",
        "padding",
    )
    assert malformed.returncode == 2 and "expected KEY=VALUE" in malformed.stderr


def test_encoder_demo(tmp_path: Path, benchmark_data: Path) -> None:
    """Convert, run on a micrograph, compare with PyTorch: on the smallest encoder."""
    result = run_cli("encoder-demo", "--encoder", "resnet18", "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [f["stride"] for f in report["features"]] == [1, 2, 4, 8, 16, 32]
    assert all(f["max_abs_diff"] <= 2e-5 * max(1.0, f["max_abs_torch"]) for f in report["features"])
    png = (tmp_path / "report" / "features.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_bad_training_numbers_fail_before_any_data_or_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ("train", "--dataset", "micronet_segmentation/super3", "--out", str(out))
    for flags, expected in (
        (("--crop", "100"), "--crop 100: expected a multiple of 32"),
        (("--crop", "0"), "--crop 0: expected a positive number"),
        (("--epochs", "0"), "--epochs 0: expected a positive number"),
        (("--epochs", "-1"), "--epochs -1: expected a positive number"),
        (("--lr", "0"), "--lr 0.0: expected a positive number"),
        (("--batch-size", "0"), "--batch-size 0: expected a positive"),
        (("--checkpoint-every", "soon"), "--checkpoint-every 'soon'"),
        (("--encoder-weights", "nowhere.pth"), "--encoder-weights 'nowhere.pth': no such file"),
    ):
        result = run_cli(*base, *flags)
        assert result.returncode == 2 and expected in result.stderr, (flags, result.stderr)
        assert "Traceback" not in result.stderr
        assert not out.exists()
    demo = run_cli("demo", "--epochs", "0", "--out", str(out))
    assert demo.returncode == 2 and "--epochs 0" in demo.stderr and not out.exists()


def test_library_errors_are_shown_with_the_commands_flags() -> None:
    from micronet_tf.cli import _in_flags, build_parser

    parser = build_parser()
    assert (
        _in_flags("tile=100: this model needs a positive multiple of 32", parser, "predict")
        == "--tile 100: this model needs a positive multiple of 32"
    )
    assert _in_flags("batch_size=0: expected >= 1", parser, "predict") == (
        "--batch-size 0: expected >= 1"
    )
    assert _in_flags("pass architecture= and encoder=", parser, "convert-model") == (
        "pass --architecture and --encoder"
    )
    assert _in_flags("repeats=0", parser, "train") == "--repeats 0"
    assert _in_flags("the_tile=3", parser, "predict") == "the_tile=3"  # only whole names


def test_debug_shows_the_traceback_and_export_keeps_an_existing_file(tmp_path: Path) -> None:
    bad = (
        "train",
        "--dataset",
        "micronet_segmentation/super3",
        "--crop",
        "100",
        "--out",
        str(tmp_path / "run"),
        "--debug",
    )
    result = run_cli(*bad)
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert "--crop 100" in result.stderr or "crop" in result.stderr
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"mine")
    export = run_cli("export", "resnet18", "--format", "onnx", "--out", str(existing))
    assert export.returncode == 2 and "exists: pass --force" in export.stderr
    assert existing.read_bytes() == b"mine"


def test_tensorflow_start_up_lines_are_hidden_unless_verbose() -> None:
    """A new user's first screen is ours: TensorFlow's C++ start-up lines (oneDNN notice, CUDA
    probing without a GPU) only with --verbose or a TF_CPP_MIN_LOG_LEVEL of the user's own."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    noise = ("oneDNN", "cuda", "cuInit", "absl::InitializeLog", "cpu_feature_guard")
    quiet = subprocess.run(
        [sys.executable, "-m", "micronet_tf.cli", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stdout.splitlines()[0].startswith("encoder")
    assert not [n for n in noise if n in quiet.stderr], quiet.stderr[-2000:]
    verbose = subprocess.run(
        [sys.executable, "-m", "micronet_tf.cli", "list", "--verbose"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verbose.returncode == 0
    assert [n for n in noise if n in verbose.stderr], verbose.stderr[-2000:]
