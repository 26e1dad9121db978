"""Augmented 512x512 training samples per second from Super1: micronet-tf's tf.data pipeline
against NASA's original PyTorch Dataset + DataLoader with the same albumentations transforms,
in one run, and how far both outrun a U-Net resnet50 training step (Keras, same machine).

    python benchmarks/bench_data_pipeline.py [--threads 2] [--workers 2] [--samples 200]

Both pipelines read Super1's 10 training micrographs, apply
``micronet_tf.data.paper_augmentation(512)`` and ImageNet normalisation and deliver one-hot
3-class targets in batches of --batch. The tf.data pipeline reads the TFDS
``micronet_segmentation/super1`` build (made here from the local copy); the PyTorch one decodes
the TIFFs with OpenCV per sample, as NASA's ``pmm.io.Dataset`` does, in --workers processes.
Training consumption = --batch / (median time of ``model.train_on_batch`` at --batch x 512 x
512 x 3 with --threads threads), measured in this script with
``create_segmentation_model("Unet", "resnet50")``. Each pipeline is timed alone (not while
the model trains), after --warmup batches.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# PyTorch must be imported before TensorFlow.
import torch  # noqa: I001
from torch.utils.data import DataLoader

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import micronet_tf  # noqa: E402, F401  (before TensorFlow: turns its oneDNN CPU kernels on)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _original import OriginalStyleDataset  # noqa: E402
from _timing import benchmark_root, median_seconds, same_threads  # noqa: E402

from micronet_tf.data import make_segmentation_pipeline, paper_augmentation  # noqa: E402
from micronet_tf.data.benchmark import resolve_pointer  # noqa: E402


def samples_per_second(batches, count: int, warmup: int, batch: int) -> float:
    iterator = iter(batches)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(count // batch):
        next(iterator)
    return (count // batch) * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    same_threads(args.threads)
    root = benchmark_root()
    train = root / "Super1" / "train"
    images = sorted(train.glob("*.tif"))
    masks = [root / "Super1" / "train_annot" / f"{p.stem}_mask.tif" for p in images]

    # 1. The original: PyTorch Dataset + DataLoader (worker processes), before TensorFlow runs.
    dataset = OriginalStyleDataset(
        [resolve_pointer(p) for p in images],
        [resolve_pointer(p) for p in masks],
        paper_augmentation(512),
    )
    loader = DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )

    def forever(loader=loader):
        while True:
            yield from loader

    torch_rate = samples_per_second(forever(), args.samples, args.warmup, args.batch)
    print(f"  measured PyTorch DataLoader: {torch_rate:.1f} samples/s", flush=True)

    # 2. Ours: TFDS build of Super1 + make_segmentation_pipeline.
    import tensorflow_datasets as tfds

    with tempfile.TemporaryDirectory() as data_dir:
        builder = tfds.builder("micronet_segmentation/super1", data_dir=data_dir)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(Path(root)))
        )
        ours = make_segmentation_pipeline(
            builder.as_dataset(split="train"),
            training=True,
            crop=512,
            batch_size=args.batch,
            classes=3,
            seed=0,
        )
        tf_rate = samples_per_second(ours.repeat(), args.samples, args.warmup, args.batch)
    print(f"  measured tf.data pipeline: {tf_rate:.1f} samples/s", flush=True)

    # 3. What training consumes: one Keras U-Net resnet50 step at batch x 512 x 512.
    from micronet_tf.models import create_segmentation_model

    model = create_segmentation_model("Unet", "resnet50", classes=3)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 512, 512, 3), np.float32)
    y = (rng.random((args.batch, 512, 512, 3)) > 0.5).astype(np.float32)
    step = median_seconds(lambda: model.train_on_batch(x, y), 1, args.repeats)
    consumed = args.batch / step

    print(
        f"\nSuper1 train, augmented 512x512 samples, batch {args.batch}, {args.threads} threads, "
        f"{args.workers} DataLoader workers (torch {torch.__version__}, tensorflow "
        f"{tf.__version__}, {os.cpu_count()} cores)"
    )
    print("| producer / consumer | samples/s | x training consumption |")
    print("|---|---|---|")
    print(f"| micronet-tf tf.data pipeline | {tf_rate:.1f} | {tf_rate / consumed:.0f}x |")
    print(f"| PyTorch Dataset + DataLoader | {torch_rate:.1f} | {torch_rate / consumed:.0f}x |")
    print(f"| Keras Unet-resnet50 train_on_batch ({step:.2f} s/step) | {consumed:.2f} | 1x |")
    print(f"\ntf.data / DataLoader: {tf_rate / torch_rate:.2f}x")


if __name__ == "__main__":
    main()
