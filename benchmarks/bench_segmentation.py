"""Segmentation models: micronet-tf (Keras on TensorFlow) against smp (PyTorch), in one run.

    python benchmarks/bench_segmentation.py [--architectures Unet UnetPlusPlus] [--encoder resnet50]

Per architecture: 1x512x512 inference, and one Adam training step (BCE-with-logits loss) at
batch 2x512x512. Same weights (converted), same inputs, same thread count; median of --repeats
after --warmup. ratio = Keras / PyTorch time (below 1: Keras is faster).
"""

from __future__ import annotations

import argparse
import os

# PyTorch (torchvision) must be imported before TensorFlow.
import segmentation_models_pytorch  # noqa: F401, I001
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import micronet_tf  # noqa: E402, F401  (before TensorFlow: turns its oneDNN CPU kernels on)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _timing import median_seconds, same_threads  # noqa: E402

from micronet_tf import torch_reference  # noqa: E402
from micronet_tf.models import create_segmentation_model, load_torch_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", nargs="+", default=["Unet", "UnetPlusPlus"])
    parser.add_argument("--encoder", default="resnet50")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    same_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for architecture in args.architectures:
        reference = torch_reference.build_segmentation_model(architecture, args.encoder)
        model = create_segmentation_model(architecture, args.encoder)
        load_torch_weights(model, reference.state_dict())

        image = rng.standard_normal((1, args.size, args.size, 3), np.float32)
        image_torch = torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))
        forward = tf.function(lambda x, m=model: m(x, training=False))
        image_tf = tf.constant(image)

        def infer_torch(reference=reference, x=image_torch):
            with torch.inference_mode():
                reference(x)

        def infer_keras(forward=forward, x=image_tf):
            forward(x).numpy()

        rows.append(
            (
                architecture,
                "inference 1x",
                median_seconds(infer_torch, args.warmup, args.repeats),
                median_seconds(infer_keras, args.warmup, args.repeats),
            )
        )

        batch = rng.standard_normal((args.train_batch, args.size, args.size, 3), np.float32)
        masks = (rng.random((args.train_batch, args.size, args.size, 1)) > 0.5).astype("f4")
        batch_torch = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        masks_torch = torch.from_numpy(np.ascontiguousarray(masks.transpose(0, 3, 1, 2)))
        reference.train()
        optimizer = torch.optim.Adam(reference.parameters(), lr=2e-4)
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def train_torch(
            reference=reference, optimizer=optimizer, loss_fn=loss_fn, x=batch_torch, y=masks_torch
        ):
            optimizer.zero_grad()
            loss_fn(reference(x), y).backward()
            optimizer.step()

        model.compile(
            optimizer=keras.optimizers.Adam(2e-4),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
        )

        def train_keras(model=model, x=batch, y=masks):
            model.train_on_batch(x, y)

        rows.append(
            (
                architecture,
                f"Adam step {args.train_batch}x",
                median_seconds(train_torch, args.warmup, args.repeats),
                median_seconds(train_keras, args.warmup, args.repeats),
            )
        )
        print(f"  measured {architecture}", flush=True)

    print(
        f"\n{args.encoder} models at {args.size}x{args.size}, {args.threads} threads, median of "
        f"{args.repeats} (torch {torch.__version__}, tensorflow {tf.__version__})"
    )
    print("| architecture | task | PyTorch s | Keras s | ratio Keras/PyTorch |")
    print("|---|---|---|---|---|")
    for architecture, task, t_torch, t_keras in rows:
        print(
            f"| {architecture} | {task} | {t_torch:.3f} | {t_keras:.3f} | {t_keras / t_torch:.2f} |"
        )


if __name__ == "__main__":
    main()
