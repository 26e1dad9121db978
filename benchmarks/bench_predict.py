"""Tiled prediction of a large micrograph: micronet-tf's Keras and ONNX Runtime engines against
the original PyTorch sliding window (NASA's ``segmentation_models_inference``, re-implemented here
from its description: smp's ImageNet preprocessing in float64, reflect padding by a quarter
tile, zero padding to whole tiles, tiles at half-tile stride, outputs gathered in a float64
array, the centre half of each tile kept), same U-Net resnet50 weights, in one run.

    python benchmarks/bench_predict.py [--size 4096] [--tile 512] [--threads 2] [--batch-size 4]

Each engine runs in its own process, so that its peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINES = ("keras", "onnx", "pytorch")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
LABELS = {
    "keras": 'micronet-tf, Keras (`engine="keras"`)',
    "onnx": 'micronet-tf, ONNX Runtime (`engine="onnx"`)',
    "pytorch": "original PyTorch sliding window",
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _image(size: int):
    """A grey micrograph-like test image as 8-bit RGB (what the original reads)."""
    import numpy as np

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (size, size), dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def original_sliding_window(image, model, preprocessing_fn, *, batch_size: int, patch_size: int):
    """NASA's ``segmentation_models_inference`` as described (one class, no thresholds given:
    rounded probabilities), for the timing comparison; not part of the library."""
    import numpy as np
    import torch
    from numpy.lib.stride_tricks import as_strided

    x = preprocessing_fn(image)  # float64, as smp's preprocess_input returns
    height, width = x.shape[:2]
    stride = patch_size // 2
    x = np.pad(x, [(stride // 2, stride // 2), (stride // 2, stride // 2), (0, 0)], mode="reflect")
    x = np.pad(
        x, [(0, -x.shape[0] % patch_size), (0, -x.shape[1] % patch_size), (0, 0)], mode="constant"
    )
    # All tiles at once as a strided view, then copied by the reshape (as the original does).
    grid = ((x.shape[0] - patch_size) // stride + 1, (x.shape[1] - patch_size) // stride + 1)
    view = as_strided(
        x,
        shape=(*grid, patch_size, patch_size, 3),
        strides=(x.strides[0] * stride, x.strides[1] * stride, *x.strides),
    )
    tiles = view.reshape(-1, patch_size, patch_size, 3)
    output = np.zeros((0, 1, patch_size, patch_size))  # float64, grown batch by batch
    for start in range(0, tiles.shape[0], batch_size):
        batch = torch.from_numpy(
            tiles[start : start + batch_size].transpose(0, 3, 1, 2).astype("float32")
        )
        output = np.append(output, model.predict(batch).cpu().numpy().round(), axis=0)
    output = output.transpose(0, 2, 3, 1).reshape(*grid, patch_size, patch_size, 1)
    output = output[:, :, stride // 2 : -stride // 2, stride // 2 : -stride // 2]
    output = np.concatenate(np.concatenate(output, 1), 1)
    return output[:height, :width].astype(bool)


def worker(engine: str, work: Path, size: int, tile: int, threads: int, batch_size: int) -> None:
    import numpy as np

    if engine == "pytorch":
        import torch
        from segmentation_models_pytorch.encoders._preprocessing import preprocess_input

        from micronet_tf import torch_reference

        torch.set_num_threads(threads)
        model = torch_reference.build_segmentation_model(
            "Unet", "resnet50", seed=0, activation="sigmoid"
        )
        # smp's get_preprocessing_fn("resnet50", "imagenet") with its parameters spelled out
        # (smp 0.6.0 looks them up on the Hugging Face Hub; this machine may be offline).
        preprocessing_fn = functools.partial(
            preprocess_input,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            input_space="RGB",
            input_range=[0, 1],
        )
        image = _image(size)
        before = _rss_mib()
        start = time.perf_counter()
        mask = original_sliding_window(
            image, model, preprocessing_fn, batch_size=batch_size, patch_size=tile
        )[..., 0]
    else:
        import onnxruntime as ort
        import tensorflow as tf

        import micronet_tf
        from micronet_tf.prediction import to_index_mask

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        image = _image(size)
        if engine == "onnx":
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            model = ort.InferenceSession(str(work / "unet.onnx"), options)
        else:
            model = micronet_tf.load_model(work / "unet.keras", compile=False)
        before = _rss_mib()
        start = time.perf_counter()
        probabilities = micronet_tf.predict(
            model,
            image,
            tile=tile,
            overlap=64,
            batch_size=batch_size,
            engine=engine,
            progress=False,
        )
        mask = to_index_mask(probabilities).astype(bool)
    seconds = time.perf_counter() - start
    peak = _rss_mib()
    np.save(work / f"mask_{engine}.npy", mask)
    print(
        json.dumps(
            {
                "engine": engine,
                "seconds": seconds,
                "peak_mib": peak,
                "before_mib": before,
                "shape": list(mask.shape),
            }
        )
    )


def prepare(work: Path) -> None:
    """Convert smp's seeded U-Net into .keras and .onnx (one process, PyTorch first)."""
    from micronet_tf import torch_reference  # noqa: I001  (torchvision before TensorFlow)
    import numpy as np

    from micronet_tf.export import export_onnx
    from micronet_tf.models import create_segmentation_model, load_torch_weights

    reference = torch_reference.build_segmentation_model("Unet", "resnet50", seed=0)
    model = create_segmentation_model("Unet", "resnet50", activation="sigmoid")
    load_torch_weights(model, reference.state_dict())
    model(np.zeros((1, 64, 64, 3), np.float32))
    model.save(work / "unet.keras")
    export_onnx(model, work / "unet.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=4,
        help="tiles per batch for every engine (the original's default is 8)",
    )
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--worker", choices=ENGINES)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    settings = [
        "--size",
        str(args.size),
        "--tile",
        str(args.tile),
        "--threads",
        str(args.threads),
        "--batch-size",
        str(args.batch_size),
    ]
    if args.worker:
        worker(args.worker, args.work, args.size, args.tile, args.threads, args.batch_size)
        return
    import numpy as np

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; sys.path.insert(0, sys.argv[1]); "
                "import bench_predict; bench_predict.prepare(__import__('pathlib')."
                "Path(sys.argv[2]))",
                str(Path(__file__).parent),
                str(work),
            ],
            check=True,
            env=env,
        )
        rows = []
        for engine in args.engines:
            result = subprocess.run(
                [sys.executable, __file__, "--worker", engine, "--work", str(work), *settings],
                capture_output=True,
                text=True,
                env=env,
            )
            if result.returncode != 0:
                raise SystemExit(f"{engine} failed:\n{result.stderr[-3000:]}")
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"  measured {engine}: {rows[-1]['seconds']:.1f} s", flush=True)
        masks = {row["engine"]: np.load(work / f"mask_{row['engine']}.npy") for row in rows}
    megapixels = args.size * args.size / 1e6
    reference = next((r for r in rows if r["engine"] == "pytorch"), rows[0])
    print(
        f"\nU-Net resnet50 (smp weights, seed 0), {args.size}x{args.size} 8-bit image, tile "
        f"{args.tile}, batch {args.batch_size}, {args.threads} threads, one run per engine"
    )
    print(
        f"| engine | seconds | megapixels/s | peak memory MiB (before predict) | speed vs "
        f"{reference['engine']} | foreground | mask agreement with {reference['engine']} |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        agreement = (masks[row["engine"]] == masks[reference["engine"]]).mean()
        print(
            f"| {LABELS[row['engine']]} | {row['seconds']:.1f} | "
            f"{megapixels / row['seconds']:.3f} | {row['peak_mib']:.0f} "
            f"({row['before_mib']:.0f}) | {reference['seconds'] / row['seconds']:.2f}x | "
            f"{masks[row['engine']].mean():.2%} | {agreement:.3%} |"
        )


if __name__ == "__main__":
    main()
