"""ONNX export cost: micronet-tf's direct converter and its tf2onnx path against PyTorch's
``torch.onnx.export`` of the same smp model, in one run.

    python benchmarks/bench_export.py [--models Unet:resnet18 UnetPlusPlus:resnet50 ...]
                                      [--tf2onnx-largest]

Per model: smp's network with seeded random weights (random BatchNorm statistics), converted
into Keras with ``load_torch_weights``. Each export runs in its own fresh process: export
seconds, peak memory growth during the export (the peak is reset before the call through
``/proc/self/clear_refs``, then VmHWM after minus VmRSS just before), the file size, and the
largest onnxruntime difference from the framework's own output (relative to max(1, |output|))
on a 1x256x256 input. PyTorch exports with the legacy TorchScript exporter
(``dynamo=False``) unless onnxscript is installed (the dynamo exporter needs it).
The default models are U-Net resnet18, UNet++ resnet50 and UNet++ on the project's largest
encoder by parameter count; the tf2onnx export of that one is skipped unless
``--tf2onnx-largest`` is given (it needs far more memory than this machine may have free).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPORTERS = ("torch", "direct", "tf2onnx")
OPSET = 17
SIZE = 256


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measured(export) -> tuple[float, float]:
    """(seconds, peak memory growth in MiB) of ``export()``."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    export()
    seconds = time.perf_counter() - start
    return seconds, (_status_kib("VmHWM") - before) / 1024


def _relative_difference(produced, expected) -> float:
    import numpy as np

    scale = max(1.0, float(np.abs(expected).max()))
    return float(np.abs(produced - expected).max()) / scale


def _torch_exporter() -> str:
    return "dynamo" if importlib.util.find_spec("onnxscript") else "legacy TorchScript"


def worker(exporter: str, architecture: str, encoder: str, out: Path) -> dict:
    """One export in this (fresh) process; returns its measurements."""
    import gc

    import numpy as np
    import segmentation_models_pytorch  # noqa: F401  (before TensorFlow)
    import torch

    from micronet_tf import torch_reference

    torch.set_num_threads(2)
    reference = torch_reference.build_segmentation_model(architecture, encoder, seed=0)
    images = np.random.default_rng(0).standard_normal((1, SIZE, SIZE, 3)).astype("float32")
    if exporter == "torch":
        sample = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        dims = {0: "batch", 2: "height", 3: "width"}

        def export():
            torch.onnx.export(
                reference,
                (sample,),
                str(out),
                input_names=["image"],
                output_names=["mask"],
                dynamic_axes={"image": dims, "mask": dims},
                opset_version=OPSET,
                dynamo=_torch_exporter() == "dynamo",
            )

        seconds, growth = _measured(export)
        expected = torch_reference.run_nhwc(reference, images)[0].transpose(0, 3, 1, 2)
        feed = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from micronet_tf.export import export_onnx
        from micronet_tf.models import create_segmentation_model, load_torch_weights

        model = create_segmentation_model(architecture, encoder)
        load_torch_weights(model, reference.state_dict())
        del reference
        gc.collect()
        seconds, growth = _measured(lambda: export_onnx(model, out, converter=exporter))
        expected = np.asarray(model(images, training=False))
        feed = images
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out))
    produced = session.run(None, {session.get_inputs()[0].name: feed})[0]
    size = sum(p.stat().st_size for p in out.parent.glob(f"{out.name}*"))
    return {
        "seconds": seconds,
        "growth_mib": growth,
        "file_mb": size / 1e6,
        "parity": _relative_difference(produced, expected),
    }


def largest_encoder() -> tuple[str, int]:
    """The registered encoder with the most parameters (built once each, in a subprocess)."""
    code = (
        "import keras\n"
        "from micronet_tf.encoders import get_encoder, list_encoders\n"
        "counts = {}\n"
        "for name in list_encoders():\n"
        "    counts[name] = get_encoder(name).count_params()\n"
        "    keras.utils.clear_session(free_memory=True)\n"
        "name = max(counts, key=counts.get)\n"
        "print(name, counts[name])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()
    )
    name, count = result.stdout.split()[-2:]
    return name, int(count)


def _env() -> dict:
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_worker(exporter: str, architecture: str, encoder: str, folder: Path) -> dict:
    out = folder / f"{architecture}-{encoder}-{exporter}.onnx"
    report = folder / f"{out.stem}.json"
    command = [
        sys.executable,
        __file__,
        "--worker",
        exporter,
        "--models",
        f"{architecture}:{encoder}",
        "--report",
        str(report),
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=_env())
    for path in folder.glob(f"{out.name}*"):
        path.unlink()
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1][:120]}
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        help="ARCHITECTURE:ENCODER pairs (default: Unet:resnet18, UnetPlusPlus:resnet50 and "
        "UnetPlusPlus on the largest encoder)",
    )
    parser.add_argument(
        "--tf2onnx-largest",
        action="store_true",
        help="also run the tf2onnx export of the largest encoder's model (skipped by default)",
    )
    parser.add_argument("--worker", choices=EXPORTERS, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        architecture, encoder = args.models[0].split(":")
        result = worker(args.worker, architecture, encoder, args.out)
        args.report.write_text(json.dumps(result))
        return

    largest = None
    if args.models:
        models = [tuple(m.split(":")) for m in args.models]
    else:
        largest, count = largest_encoder()
        print(f"largest encoder: {largest} ({count / 1e6:.1f} M parameters)", flush=True)
        models = [("Unet", "resnet18"), ("UnetPlusPlus", "resnet50"), ("UnetPlusPlus", largest)]
    print(f"torch.onnx.export: {_torch_exporter()} exporter, opset {OPSET}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for architecture, encoder in models:
            results = {}
            for exporter in EXPORTERS:
                if exporter == "tf2onnx" and encoder == largest and not args.tf2onnx_largest:
                    results[exporter] = {"error": "skipped (--tf2onnx-largest)"}
                    continue
                results[exporter] = run_worker(exporter, architecture, encoder, Path(folder))
                print(architecture, encoder, exporter, results[exporter], flush=True)
            rows.append((f"{architecture} {encoder}", results))
    print()
    print(_table(rows))


def _table(rows) -> str:
    lines = [
        "| model | exporter | seconds | peak growth MiB | file MB | max rel. diff | "
        "time / torch | memory / torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "torch": "`torch.onnx.export`",
        "direct": "micronet-tf direct",
        "tf2onnx": "micronet-tf tf2onnx",
    }
    for model, results in rows:
        torch_result = results.get("torch", {})
        for exporter in EXPORTERS:
            result = results[exporter]
            if "error" in result:
                lines.append(f"| {model} | {names[exporter]} | {result['error']} | | | | | |")
                continue
            ratios = ["", ""]
            if "seconds" in torch_result:
                ratios = [
                    f"{result['seconds'] / torch_result['seconds']:.2f}x",
                    f"{result['growth_mib'] / torch_result['growth_mib']:.2f}x",
                ]
            lines.append(
                f"| {model} | {names[exporter]} | {result['seconds']:.1f} | "
                f"{result['growth_mib']:.0f} | {result['file_mb']:.0f} | "
                f"{result['parity']:.1e} | {ratios[0]} | {ratios[1]} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
