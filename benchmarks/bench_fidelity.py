"""Training fidelity: the same U-Net resnet18 trained on Super-1 in micronet-tf and in the
original PyTorch path, with the same data, augmentation, budget, initial weights and seeds; test
IoU (mean ± standard deviation over the seeds) and wall-clock time side by side, in one run.

    python benchmarks/bench_fidelity.py [--seeds 0 1 2] [--epochs 30] [--crop 256] [--batch 8]

For every seed both paths start from the same random initialisation (smp's
``Unet("resnet18")`` seeded, its state dict converted into the Keras model), see ``--repeats``
augmented ``--crop`` crops of each of Super-1's 10 training micrographs per epoch
(``micronet_tf.data.paper_augmentation``, the same albumentations transforms), in batches of
``--batch``, with Adam at ``--lr`` for ``--epochs`` epochs, and keep the weights of the best
validation IoU (4 validation micrographs, whole). Loss: 0.7 x BCE + 0.3 x Dice with a sigmoid
on every channel (matrix / secondary / tertiary one-hot targets), on logits in both.

- micronet-tf: TFDS ``micronet_segmentation/super1`` (built here from the local copy),
  ``make_segmentation_pipeline``, ``train_segmentation`` (``DiceBCELoss``, ``SegmentationIoU``;
  the two-stage schedule's patience exceeds the budget, so the learning rate stays fixed), with
  ``deterministic=True`` (``--no-deterministic`` to switch it off): each seed's run repeats
  exactly.
- original: NASA's ``pmm.io.Dataset`` style (OpenCV decoding) in a DataLoader with
  ``--workers`` processes, the original ``DiceBCELoss`` and smp 0.2's pooled IoU metric
  (``benchmarks/_original.py``), best model by mean validation IoU per image, as NASA's
  training loop keeps it.

Test IoU: both best models segment the 4 Super-1 test micrographs (the same decoded, normalised
arrays) and one function scores them: sigmoid > 0.5 per channel, intersection and union summed
over the images, per class and their mean; "pooled" is the original metric over all channels.
Times are the training loops with their per-epoch validation (the TFDS build is listed apart);
the two paths alternate seed by seed, so that a change in the machine's load hits both.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

# PyTorch (torchvision, through smp) must be imported before TensorFlow.
import segmentation_models_pytorch as smp  # noqa: I001
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
    score,
    test_set,
    tfds_builder,
)
from _timing import benchmark_root, same_threads  # noqa: E402


def train_original(args, root: Path, seed: int) -> tuple[torch.nn.Module, float]:
    """NASA's loop: Adam, one pass over the loader per epoch, validation IoU, keep the best."""
    model = initial_unet(seed)
    loader, val_loader = original_loaders(args, root, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    best, best_state = -1.0, None
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        losses = []
        for x, y in loader:
            optimizer.zero_grad()
            loss = dice_bce_loss(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            iou = float(np.mean([iou_score(torch.sigmoid(model(x)), y) for x, y in val_loader]))
        if iou > best:
            best, best_state = iou, copy.deepcopy(model.state_dict())
        print(
            f"  original, seed {seed}, epoch {epoch + 1}/{args.epochs}: loss "
            f"{np.mean(losses):.4f} val IoU {iou:.4f}",
            flush=True,
        )
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    return model.eval(), seconds


def train_ours(args, builder, seed: int, work: Path):
    """micronet-tf's path: tf.data pipeline, train_segmentation."""
    import micronet_tf
    from micronet_tf.training import train_segmentation

    init_state = {k: v.clone() for k, v in initial_unet(seed).state_dict().items()}
    train_ds, val_ds = our_pipelines(args, builder, seed, deterministic=args.deterministic)
    start = time.perf_counter()
    result = train_segmentation(
        lambda: keras_unet(init_state),  # called in the strategy's scope (auto: the default)
        train_ds,
        val_ds,
        out_dir=work / f"run-{seed}",
        patience=args.epochs + 1,
        initial_lr=args.lr,
        max_epochs=args.epochs,
        strategy="auto",
        seed=seed,
        resume=False,
        tensorboard=False,
        verbose=2,
        deterministic=args.deterministic,
    )
    seconds = time.perf_counter() - start
    print(
        f"  checkpointing (best weights, resumable state, final models): "
        f"{result.checkpoint_seconds:.1f} s = {100 * result.checkpoint_seconds / seconds:.1f}% "
        "of micronet-tf's training time",
        flush=True,
    )
    return micronet_tf.load_model(result.best_model, compile=False), seconds


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, epochs=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--no-deterministic",
        dest="deterministic",
        action="store_false",
        help="micronet-tf without deterministic ops and ordered augmentation",
    )
    args = parser.parse_args()
    same_threads(args.threads)
    root = benchmark_root()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        start = time.perf_counter()
        builder = tfds_builder(root, work)
        build_seconds = time.perf_counter() - start
        images, masks = test_set(builder)
        for seed in args.seeds:
            print(f"seed {seed}: original PyTorch path", flush=True)
            reference, torch_seconds = train_original(args, root, seed)
            with torch.no_grad():
                torch_logits = [
                    reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()[0] for x in images
                ]
            torch_logits = [out.transpose(1, 2, 0) for out in torch_logits]
            print(f"seed {seed}: micronet-tf", flush=True)
            ours, tf_seconds = train_ours(args, builder, seed, work)
            ours_logits = [np.asarray(ours(x, training=False))[0] for x in images]
            runs.append(
                {
                    "seed": seed,
                    "micronet-tf": (score(ours_logits, masks), tf_seconds),
                    "original": (score(torch_logits, masks), torch_seconds),
                }
            )

    steps = -(-10 * args.repeats // args.batch) * args.epochs
    print(
        f"\nSuper-1, Unet resnet18 (same random init per seed), {args.epochs} epochs x "
        f"{10 * args.repeats} augmented {args.crop}x{args.crop} crops, batch {args.batch} "
        f"({steps} steps), Adam lr {args.lr}, seeds {args.seeds}, {args.threads} threads, "
        f"micronet-tf deterministic={args.deterministic} (torch {torch.__version__}, smp "
        f"{smp.__version__}, tensorflow {tf.__version__}, {os.cpu_count()} cores)"
    )
    print("| seed | path | test IoU mean | matrix | secondary | tertiary | pooled | training s |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        for path in ("micronet-tf", "original"):
            result, seconds = run[path]
            per = result["per_class"]
            print(
                f"| {run['seed']} | {path} | {result['mean']:.4f} | {per['matrix']:.4f} | "
                f"{per['secondary']:.4f} | {per['tertiary']:.4f} | {result['pooled']:.4f} | "
                f"{seconds:.0f} |"
            )
    print(f"\nmean ± standard deviation over {len(runs)} seeds")
    print("| path | test IoU mean | matrix | secondary | tertiary | pooled | training s |")
    print("|---|---|---|---|---|---|---|")
    means = {}
    for path in ("micronet-tf", "original"):
        results = [run[path][0] for run in runs]
        means[path] = statistics.mean(r["mean"] for r in results)
        cells = [_mean_std([r["mean"] for r in results])]
        cells += [_mean_std([r["per_class"][c] for r in results]) for c in CLASSES]
        cells += [_mean_std([r["pooled"] for r in results])]
        cells += [f"{statistics.mean(run[path][1] for run in runs):.0f}"]
        print(f"| {path} | " + " | ".join(cells) + " |")
    ratios = [run["micronet-tf"][1] / run["original"][1] for run in runs]
    print(
        f"\nmicronet-tf / original: mean test IoU {means['micronet-tf'] / means['original']:.3f}; "
        f"training time per seed {', '.join(f'{r:.2f}' for r in ratios)} (max {max(ratios):.2f}); "
        f"TFDS build, once: {build_seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
