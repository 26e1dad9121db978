"""Where a training epoch's time goes, micronet-tf against NASA's PyTorch path, in one run.

    python benchmarks/bench_training_loop.py [--epochs 6] [--crop 256] [--batch 8] [--repeats 4]

The set-up of ``bench_fidelity.py`` (U-Net resnet18 on Super-1, same initial weights, 40
augmented 256x256 crops per epoch in batches of 8, 4 whole 512x512 validation images), taken
apart: producing one epoch of augmented batches alone (tf.data / DataLoader), one Adam step on a
fixed batch with the loss alone and with the IoU metric (median of ``--step-repeats``), one
validation pass (micronet-tf: batched by image size as ``train_segmentation`` does, and one
image per batch as before; the original: one image per batch), and whole epochs of the real
loops (``train_segmentation`` with its callbacks: schedule, checkpoints, log; NASA's loop), the
first epoch (graph tracing) apart from the median of the others, and the whole run (NASA's
loop; for micronet-tf the ``train_segmentation`` call: building the model, the final checkpoint
and models, tf.data's teardown). "overhead" is an epoch's time beyond its steps and
validation. Two more fresh processes time micronet-tf's epochs with and without
``deterministic=True`` (TensorFlow cannot switch deterministic ops off again within a process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# PyTorch (torchvision, through smp) must be imported before TensorFlow.
import segmentation_models_pytorch  # noqa: F401, I001
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import micronet_tf  # noqa: E402, F401  (before TensorFlow: turns its oneDNN CPU kernels on)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _original import dice_bce_loss, iou_score  # noqa: E402
from _super1 import (  # noqa: E402
    CLASSES,
    add_arguments,
    initial_unet,
    keras_unet,
    original_loaders,
    our_pipelines,
    tfds_builder,
)
from _timing import benchmark_root, median_seconds, same_threads  # noqa: E402
from keras import ops  # noqa: E402

from micronet_tf.training.metrics import SegmentationIoU  # noqa: E402


class EpochClock(keras.callbacks.Callback):
    """Wall time of every epoch (training, validation and the callbacks before this one)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


class IoUBeforeIssue16(SegmentationIoU):
    """The IoU metric as it was before issue 16, for the before/after row: a sigmoid per pixel,
    three separate reductions, and one instance per reported value (mean and each class)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        predicted = ops.cast(ops.sigmoid(y_pred) > self.threshold, "float32")
        truth = ops.cast(y_true, "float32")
        axes = tuple(range(len(y_pred.shape) - 1))
        intersection = ops.sum(predicted * truth, axis=axes)
        self.intersection.assign_add(intersection)
        self.union.assign_add(
            ops.sum(predicted, axis=axes) + ops.sum(truth, axis=axes) - intersection
        )


def iou_metrics_before_issue16(class_names) -> list[SegmentationIoU]:
    count = len(class_names)
    return [IoUBeforeIssue16(count, name="iou")] + [
        IoUBeforeIssue16(count, i, name=f"iou_{name}") for i, name in enumerate(class_names)
    ]


def our_epochs(args, builder, work: Path, deterministic: bool) -> tuple[list[float], float]:
    """Epoch times of ``train_segmentation`` as ``bench_fidelity.py`` runs it, and the whole
    call's (model building, the final checkpoint and models, tf.data's teardown included)."""
    from micronet_tf.training import train_segmentation

    init_state = initial_unet(0).state_dict()
    train_ds, val_ds = our_pipelines(args, builder, 0, deterministic=deterministic)
    clock = EpochClock()
    start = time.perf_counter()
    train_segmentation(
        lambda: keras_unet(init_state),
        train_ds,
        val_ds,
        out_dir=work / f"run-{deterministic}",
        patience=args.epochs + 1,
        initial_lr=args.lr,
        max_epochs=args.epochs,
        seed=0,
        resume=False,
        tensorboard=False,
        verbose=0,
        callbacks=[clock],
        deterministic=deterministic,
    )
    return clock.seconds, time.perf_counter() - start


def original_epochs(args, root: Path, model: torch.nn.Module) -> tuple[list[float], float]:
    """Epoch times of NASA's loop (train, validate, keep the best state), and the loop's."""
    import copy

    loader, val_loader = original_loaders(args, root, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    best, seconds = -1.0, []
    loop_start = time.perf_counter()
    for _ in range(args.epochs):
        start = time.perf_counter()
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            dice_bce_loss(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            iou = float(np.mean([iou_score(torch.sigmoid(model(x)), y) for x, y in val_loader]))
        if iou > best:
            best, _ = iou, copy.deepcopy(model.state_dict())
        seconds.append(time.perf_counter() - start)
    return seconds, time.perf_counter() - loop_start


def _child(args, deterministic: bool) -> list[float]:
    """Epoch times of micronet-tf's loop in a fresh process."""
    command = [sys.executable, __file__, "--child-epochs"]
    command += ["--deterministic"] if deterministic else []
    for name in ("epochs", "crop", "batch", "repeats", "lr", "threads", "workers"):
        command += [f"--{name}", str(getattr(args, name))]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])[0]


def _split(epochs: list[float]) -> tuple[float, float]:
    """(first epoch, median of the others)."""
    return epochs[0], statistics.median(epochs[1:]) if len(epochs) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, epochs=6)
    parser.add_argument("--step-repeats", type=int, default=5)
    parser.add_argument("--child-epochs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--deterministic", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    same_threads(args.threads)
    root = benchmark_root()
    work = Path(tempfile.mkdtemp())
    builder = tfds_builder(root, work)
    if args.child_epochs:
        print(json.dumps(our_epochs(args, builder, work, args.deterministic)))
        return

    from micronet_tf.training import DiceBCELoss, iou_metrics

    steps = -(-10 * args.repeats // args.batch)
    rows: dict[str, tuple[float, float]] = {}

    # Producing one epoch of batches, with no model.
    train_ds, val_ds = our_pipelines(args, builder, 0)
    loader, val_loader = original_loaders(args, root, 0)
    for _ in train_ds:  # fills the decoded-image cache, as epoch 1 of a run does
        pass
    print("timing: data", flush=True)
    rows["data: one epoch of augmented batches"] = (
        median_seconds(lambda: [None for _ in loader], 1, 3),
        median_seconds(lambda: [None for _ in train_ds], 1, 3),
    )

    # One Adam step on a fixed batch.
    reference = initial_unet(0)
    model = keras_unet(reference.state_dict())
    x, y = next(iter(train_ds))
    x_torch = torch.from_numpy(np.ascontiguousarray(x.numpy().transpose(0, 3, 1, 2)))
    y_torch = torch.from_numpy(np.ascontiguousarray(y.numpy().transpose(0, 3, 1, 2)))
    optimizer = torch.optim.Adam(reference.parameters(), lr=args.lr)

    def torch_step(metric: bool) -> None:
        reference.train()
        optimizer.zero_grad()
        logits = reference(x_torch)
        dice_bce_loss(logits, y_torch).backward()
        optimizer.step()
        if metric:
            iou_score(torch.sigmoid(logits.detach()), y_torch)

    print("timing: steps", flush=True)
    variants = {
        "step: loss only": None,
        "step: loss + IoU metrics as before issue 16 (4 metrics)": iou_metrics_before_issue16,
        "step: loss + IoU metric": iou_metrics,
    }
    for label, metrics in variants.items():
        model.compile(
            optimizer=keras.optimizers.Adam(args.lr),
            loss=DiceBCELoss(),
            metrics=metrics(CLASSES) if metrics else None,
        )
        rows[f"{label} ({args.batch}x{args.crop}x{args.crop})"] = (
            median_seconds(lambda m=metrics: torch_step(m is not None), 1, args.step_repeats),
            median_seconds(lambda: model.train_on_batch(x, y), 1, args.step_repeats),
        )

    # One validation pass over the 4 whole validation images.
    def torch_validation() -> None:
        reference.eval()
        with torch.no_grad():
            [iou_score(torch.sigmoid(reference(a)), b) for a, b in val_loader]

    print("timing: validation", flush=True)
    rows["validation: 4 images of 512x512"] = (
        median_seconds(torch_validation, 1, 3),
        median_seconds(lambda: model.evaluate(val_ds, verbose=0), 1, 3),
    )
    # As before batched validation: one whole image per batch, as the original does.
    from micronet_tf.data import make_segmentation_pipeline

    one_by_one = make_segmentation_pipeline(
        builder.as_dataset(split="validation"), training=False, batch_size=1, classes=len(CLASSES)
    ).map(lambda image, target, weight: (image, target))
    rows["validation, one image per batch (as before)"] = (
        median_seconds(torch_validation, 1, 3),
        median_seconds(lambda: model.evaluate(one_by_one, verbose=0), 1, 3),
    )

    # Whole epochs of the real loops.
    print("timing: epochs", flush=True)
    torch_epochs, torch_run = original_epochs(args, root, initial_unet(0))
    keras_epochs, keras_run = our_epochs(args, builder, work, deterministic=False)
    (torch_first, torch_epoch), (keras_first, keras_epoch) = (
        _split(torch_epochs),
        _split(keras_epochs),
    )
    rows["epoch (median after the first)"] = (torch_epoch, keras_epoch)
    rows["first epoch (includes graph tracing)"] = (torch_first, keras_first)
    rows[f"whole run of {args.epochs} epochs (micronet-tf: the call, saving included)"] = (
        torch_run,
        keras_run,
    )
    step_key = next(k for k in rows if k.startswith("step: loss + IoU metric ("))
    validation = rows["validation: 4 images of 512x512"]
    rows["overhead: epoch - steps - validation"] = tuple(
        epoch - steps * step - val
        for epoch, step, val in zip(
            rows["epoch (median after the first)"], rows[step_key], validation
        )
    )

    print("timing: epochs in fresh processes, without and with determinism", flush=True)
    plain = _split(_child(args, deterministic=False))[1]
    exact = _split(_child(args, deterministic=True))[1]

    print(
        f"\nU-Net resnet18, Super-1, {10 * args.repeats} crops of {args.crop} per epoch in "
        f"{steps} steps of {args.batch}, {args.epochs} epochs, {args.threads} threads "
        f"(torch {torch.__version__}, tensorflow {tf.__version__}, {os.cpu_count()} cores)"
    )
    print("| part | PyTorch s | micronet-tf s | ratio micronet-tf/PyTorch |")
    print("|---|---|---|---|")
    for name, (t_torch, t_keras) in rows.items():
        ratio = t_keras / t_torch if t_torch > 0 else float("nan")
        print(f"| {name} | {t_torch:.3f} | {t_keras:.3f} | {ratio:.2f} |")
    print(
        f"\nmicronet-tf epoch (median after the first, fresh processes): {plain:.3f} s, with "
        f"deterministic=True {exact:.3f} s: determinism costs {100 * (exact / plain - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
