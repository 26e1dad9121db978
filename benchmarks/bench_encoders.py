"""Encoder forward throughput: micronet-tf (Keras on TensorFlow) against smp (PyTorch), one run.

    python benchmarks/bench_encoders.py [--encoders resnet50 densenet121 ...] [--threads 2]
    python benchmarks/bench_encoders.py --all --batches 1   # every registered encoder

Both frameworks get the same thread count, the same weights (converted) and the same inputs.
Each timing is the median of --repeats calls after --warmup calls. ratio = Keras / PyTorch
time (below 1: Keras is faster).
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
from micronet_tf.convert import load_torch_weights  # noqa: E402
from micronet_tf.encoders import encoder_spec, get_encoder, list_encoders  # noqa: E402

# One or two per family: the README's table.
DEFAULT_ENCODERS = [
    "resnet50",
    "resnext50_32x4d",
    "se_resnext50_32x4d",
    "densenet121",
    "dpn92",
    "efficientnet-b0",
    "efficientnet-b4",
    "inceptionv4",
    "xception",
    "mobilenet_v2",
    "vgg16_bn",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=DEFAULT_ENCODERS)
    parser.add_argument("--all", action="store_true", help="every registered encoder")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    same_threads(args.threads)

    rows = []
    for name in list_encoders() if args.all else args.encoders:
        reference = torch_reference.build_encoder(name)
        model = get_encoder(name)
        load_torch_weights(
            model,
            reference.state_dict(),
            ignore_prefixes=encoder_spec(name).encoder_ignored_prefixes,
        )
        forward = tf.function(lambda x, m=model: m(x, training=False))
        for batch in args.batches:
            images = np.random.default_rng(0).standard_normal(
                (batch, args.size, args.size, 3), np.float32
            )
            nchw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
            tensor = tf.constant(images)

            def run_torch(reference=reference, nchw=nchw):
                with torch.inference_mode():
                    reference(nchw)

            def run_keras(forward=forward, tensor=tensor):
                [o.numpy() for o in forward(tensor)]

            t_torch = median_seconds(run_torch, args.warmup, args.repeats)
            t_keras = median_seconds(run_keras, args.warmup, args.repeats)
            rows.append((name, f"{batch}x{args.size}x{args.size}", t_torch, t_keras))
            print(
                f"  measured {name} batch {batch}: PyTorch {t_torch:.3f} s, Keras "
                f"{t_keras:.3f} s, ratio {t_keras / t_torch:.2f}",
                flush=True,
            )
        del reference, model, forward
        keras.utils.clear_session(free_memory=True)  # --all: one encoder in memory at a time

    print(
        f"\nEncoder forward, {args.threads} threads, median of {args.repeats} "
        f"(torch {torch.__version__}, tensorflow {tf.__version__})"
    )
    print("| encoder | input | PyTorch s | Keras s | ratio Keras/PyTorch |")
    print("|---|---|---|---|---|")
    for name, shape, t_torch, t_keras in rows:
        print(f"| {name} | {shape} | {t_torch:.3f} | {t_keras:.3f} | {t_keras / t_torch:.2f} |")


if __name__ == "__main__":
    main()
