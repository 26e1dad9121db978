"""Tiled prediction of a large micrograph: micronet-tf's Keras and ONNX Runtime engines against
the original PyTorch sliding window (NASA's ``segmentation_models_inference``: half-tile stride,
reflect padding, centre of each tile kept), same U-Net resnet50 weights, in one run.

    python benchmarks/bench_predict.py [--size 4096] [--tile 512] [--threads 2]

Each engine runs in its own process so that peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINES = ("keras", "onnx", "pytorch")


def _image(size: int):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


def _pytorch_sliding_window(model, image, tile: int, batch_size: int):
    """The original approach, re-implemented from its description (not NASA's code)."""
    import numpy as np
    import torch

    from micronet_tf.preprocessing import normalize

    x = normalize(image)
    height, width = x.shape[:2]
    stride = tile // 2
    x = np.pad(x, [(stride // 2, stride // 2), (stride // 2, stride // 2), (0, 0)], "reflect")
    pad_h = -x.shape[0] % tile
    pad_w = -x.shape[1] % tile
    x = np.pad(x, [(0, pad_h), (0, pad_w), (0, 0)])
    rows = range(0, x.shape[0] - tile + 1, stride)
    cols = range(0, x.shape[1] - tile + 1, stride)
    tiles = [x[r:r + tile, c:c + tile] for r in rows for c in cols]
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(tiles), batch_size):
            batch = np.stack(tiles[start:start + batch_size]).transpose(0, 3, 1, 2)
            outputs.append(torch.sigmoid(model(torch.from_numpy(batch))).numpy())
    out = np.concatenate(outputs).transpose(0, 2, 3, 1)
    out = out.reshape(len(rows), len(cols), tile, tile, -1)
    out = out[:, :, stride // 2:-stride // 2, stride // 2:-stride // 2]
    out = np.concatenate(np.concatenate(out, 1), 1)
    return out[:height, :width]


def worker(engine: str, work: Path, size: int, tile: int, threads: int) -> None:
    if engine == "pytorch":
        import torch

        from micronet_tf import torch_reference

        torch.set_num_threads(threads)
        model = torch_reference.build_segmentation_model("Unet", "resnet50", seed=0)
        image = _image(size)
        start = time.perf_counter()
        out = _pytorch_sliding_window(model, image, tile, batch_size=4)
    else:
        import tensorflow as tf

        import micronet_tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import onnxruntime  # noqa: F401

        image = _image(size)
        source = work / ("unet.onnx" if engine == "onnx" else "unet.keras")
        if engine == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            source = ort.InferenceSession(str(source), options)
        else:
            source = micronet_tf.load_model(source, compile=False)
        start = time.perf_counter()
        out = micronet_tf.predict(source, image, tile=tile, overlap=64, batch_size=4,
                                  engine=engine, activation="sigmoid" if engine == "onnx"
                                  else "auto")
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": engine, "seconds": seconds, "peak_mib": peak_mib,
                      "shape": list(out.shape)}))


def prepare(work: Path) -> None:
    """Convert smp's seeded U-Net into .keras and .onnx (one process, PyTorch first)."""
    from micronet_tf import torch_reference  # noqa: I001  (torchvision before TensorFlow)
    import numpy as np

    from micronet_tf.models import create_segmentation_model, load_torch_weights

    reference = torch_reference.build_segmentation_model("Unet", "resnet50", seed=0)
    model = create_segmentation_model("Unet", "resnet50")
    load_torch_weights(model, reference.state_dict())
    model(np.zeros((1, 64, 64, 3), np.float32))
    model.save(work / "unet.keras")
    model.export(work / "unet.onnx", format="onnx", verbose=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=ENGINES)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.work, args.size, args.tile, args.threads)
        return
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                        "import bench_predict; bench_predict.prepare(__import__('pathlib')."
                        "Path(sys.argv[2]))", str(Path(__file__).parent), str(work)],
                       check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        rows = []
        for engine in ENGINES:
            result = subprocess.run(
                [sys.executable, __file__, "--worker", engine, "--work", str(work), "--size",
                 str(args.size), "--tile", str(args.tile), "--threads", str(args.threads)],
                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            if result.returncode != 0:
                raise SystemExit(f"{engine} failed:\n{result.stderr[-3000:]}")
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"  measured {engine}", flush=True)
    megapixels = args.size * args.size / 1e6
    reference = next(r for r in rows if r["engine"] == "pytorch")["seconds"]
    print(f"\nU-Net resnet50, {args.size}x{args.size} grey image, tile {args.tile}, "
          f"{args.threads} threads")
    print("| engine | seconds | megapixels/s | peak memory MiB | speed vs PyTorch original |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['engine']} | {row['seconds']:.1f} | {megapixels / row['seconds']:.3f} | "
              f"{row['peak_mib']:.0f} | {reference / row['seconds']:.2f}x |")


if __name__ == "__main__":
    main()
