"""Training fidelity: the same U-Net resnet18 trained on Super-1 in micronet-tf and in the
original PyTorch path, with the same data, augmentation, budget, initial weights and seed; test
IoU and wall-clock time side by side, in one run.

    python benchmarks/bench_fidelity.py [--epochs 30] [--crop 256] [--batch 8] [--repeats 4]

Both runs start from the same random initialisation (smp's ``Unet("resnet18")`` seeded, its
state dict converted into the Keras model with ``micronet_tf.convert.load_torch_weights``),
see ``--repeats`` augmented ``--crop`` crops of each of Super-1's 10 training micrographs per
epoch (``micronet_tf.data.paper_augmentation``, the same albumentations transforms), in batches
of ``--batch``, with Adam at ``--lr`` for ``--epochs`` epochs, and keep the weights of the best
validation IoU (4 validation micrographs, whole). Loss: 0.7 x BCE + 0.3 x Dice with a sigmoid
on every channel (matrix / secondary / tertiary one-hot targets), on logits in both.

- micronet-tf: TFDS ``micronet_segmentation/super1`` (built here from the local copy),
  ``make_segmentation_pipeline``, ``train_segmentation`` (``DiceBCELoss``, ``SegmentationIoU``;
  the two-stage schedule's patience exceeds the budget, so the learning rate stays fixed).
- original: NASA's ``pmm.io.Dataset`` style (OpenCV decoding) in a DataLoader with
  ``--workers`` processes, the original ``DiceBCELoss`` and smp 0.2's pooled IoU metric
  (``benchmarks/_original.py``), best model by mean validation IoU per image, as NASA's
  training loop keeps it.

Test IoU: both best models segment the 4 Super-1 test micrographs (the same decoded, normalised
arrays) and one function scores them: sigmoid > 0.5 per channel, intersection and union summed
over the images, per class and their mean; "pooled" is the original metric over all channels.
Times are the training loops with their per-epoch validation (the TFDS build is listed apart).
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

# PyTorch (torchvision, through smp) must be imported before TensorFlow.
import segmentation_models_pytorch as smp  # noqa: I001
import torch
from torch.utils.data import DataLoader

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _original import OriginalStyleDataset, dice_bce_loss, iou_score  # noqa: E402
from _timing import benchmark_root, same_threads  # noqa: E402

from micronet_tf.data import paper_augmentation  # noqa: E402
from micronet_tf.data._benchmark import resolve_pointer  # noqa: E402

CLASSES = ("matrix", "secondary", "tertiary")


def _pairs(root: Path, split: str) -> tuple[list[Path], list[Path]]:
    folder = root / "Super1" / split
    images = sorted(folder.glob("*.tif"))
    masks = [root / "Super1" / f"{split}_annot" / f"{p.stem}_mask.tif" for p in images]
    missing = [str(m) for m in masks if not m.exists()]
    if not images or missing:
        raise SystemExit(f"Super1/{split}: {len(images)} images, masks missing: {missing}")
    return [resolve_pointer(p) for p in images], [resolve_pointer(p) for p in masks]


def train_original(
    args, root: Path, model: torch.nn.Module
) -> tuple[torch.nn.Module, float, list[float]]:
    """NASA's loop: Adam, one pass over the loader per epoch, validation IoU, keep the best."""
    augmentation = paper_augmentation(args.crop, seed=args.seed)
    train = OriginalStyleDataset(*_pairs(root, "train"), augmentation, repeats=args.repeats)
    val = OriginalStyleDataset(*_pairs(root, "val"), A.Compose([]))

    def reseed(worker: int) -> None:  # distinct, reproducible augmentation per worker
        torch.utils.data.get_worker_info().dataset.augmentation.set_random_seed(
            args.seed + 1 + worker
        )

    loader = DataLoader(
        train,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        worker_init_fn=reseed,
        generator=torch.Generator().manual_seed(args.seed),
    )
    val_loader = DataLoader(val, batch_size=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    best, best_state, curve = -1.0, None, []
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
        curve.append(iou)
        if iou > best:
            best, best_state = iou, copy.deepcopy(model.state_dict())
        print(
            f"  original epoch {epoch + 1}/{args.epochs}: loss {np.mean(losses):.4f} "
            f"val IoU {iou:.4f}",
            flush=True,
        )
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    return model.eval(), seconds, curve


def train_ours(args, root: Path, init_state: dict, work: Path):
    """micronet-tf's path: TFDS build, tf.data pipeline, train_segmentation."""
    import tensorflow_datasets as tfds

    import micronet_tf
    from micronet_tf.convert import load_torch_weights
    from micronet_tf.data import make_segmentation_pipeline
    from micronet_tf.training import train_segmentation

    start = time.perf_counter()
    builder = tfds.builder("micronet_segmentation/super1", data_dir=str(work / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
    build_seconds = time.perf_counter() - start
    train_ds = make_segmentation_pipeline(
        builder.as_dataset(split="train").repeat(args.repeats),
        training=True,
        crop=args.crop,
        batch_size=args.batch,
        classes=len(CLASSES),
        seed=args.seed,
    )
    val_ds = make_segmentation_pipeline(
        builder.as_dataset(split="validation"), training=False, batch_size=1, classes=len(CLASSES)
    )
    val_ds = val_ds.map(lambda x, y, w: (x, y))

    def build():  # called in the strategy's scope (auto: the default one on a CPU)
        model = micronet_tf.create_segmentation_model(
            "Unet", "resnet18", classes=len(CLASSES), class_names=list(CLASSES)
        )
        load_torch_weights(model, init_state)
        return model

    start = time.perf_counter()
    result = train_segmentation(
        build,
        train_ds,
        val_ds,
        out_dir=work / "run",
        patience=args.epochs + 1,
        initial_lr=args.lr,
        max_epochs=args.epochs,
        strategy="auto",
        seed=args.seed,
        resume=False,
        tensorboard=False,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    best = micronet_tf.load_model(result.best_model, compile=False)
    test = [
        (element["image"], element["segmentation_mask"][..., 0])
        for element in tfds.as_numpy(builder.as_dataset(split="test"))
    ]
    print(
        f"  checkpointing (best weights, resumable state, final models): "
        f"{result.checkpoint_seconds:.1f} s = {100 * result.checkpoint_seconds / seconds:.1f}% "
        "of micronet-tf's training time",
        flush=True,
    )
    return best, seconds, build_seconds, list(result.history["val_iou"]), test


def score(logits: list[np.ndarray], masks: list[np.ndarray]) -> dict:
    """Per-class IoU (sums over the images), their mean, and the original pooled IoU."""
    intersection = np.zeros(len(CLASSES))
    union = np.zeros(len(CLASSES))
    for out, mask in zip(logits, masks):
        predicted = 1.0 / (1.0 + np.exp(-out)) > 0.5
        truth = np.eye(len(CLASSES), dtype=bool)[mask]
        intersection += (predicted & truth).sum(axis=(0, 1))
        union += (predicted | truth).sum(axis=(0, 1))
    per_class = intersection / np.maximum(union, 1)
    return {
        "per_class": dict(zip(CLASSES, per_class.round(4).tolist())),
        "mean": float(per_class.mean()),
        "pooled": float(intersection.sum() / max(union.sum(), 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--repeats", type=int, default=4, help="augmented crops of each training image per epoch"
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="PyTorch DataLoader workers")
    args = parser.parse_args()
    same_threads(args.threads)
    root = benchmark_root()

    torch.manual_seed(args.seed)
    reference = smp.Unet("resnet18", encoder_weights=None, classes=len(CLASSES))
    init_state = {k: v.clone() for k, v in reference.state_dict().items()}

    print("original PyTorch path", flush=True)
    reference, torch_seconds, torch_curve = train_original(args, root, reference)
    print("micronet-tf", flush=True)
    with tempfile.TemporaryDirectory() as work:
        ours, tf_seconds, build_seconds, tf_curve, test = train_ours(
            args, root, init_state, Path(work)
        )
        from micronet_tf.preprocessing import normalize

        images = [normalize(image)[None] for image, _ in test]
        masks = [mask for _, mask in test]
        ours_logits = [np.asarray(ours(x, training=False))[0] for x in images]
        with torch.no_grad():
            torch_logits = [
                reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()[0].transpose(1, 2, 0)
                for x in images
            ]
    ours_score, torch_score = score(ours_logits, masks), score(torch_logits, masks)

    steps = -(-10 * args.repeats // args.batch) * args.epochs
    print(
        f"\nSuper-1, Unet resnet18 (same random init), {args.epochs} epochs x "
        f"{10 * args.repeats} augmented {args.crop}x{args.crop} crops, batch {args.batch} "
        f"({steps} steps), Adam lr {args.lr}, seed {args.seed}, {args.threads} threads "
        f"(torch {torch.__version__}, smp {smp.__version__}, tensorflow {tf.__version__}, "
        f"{os.cpu_count()} cores)"
    )
    print(
        "| path | test IoU mean | matrix | secondary | tertiary | pooled (original metric) "
        "| best val IoU | training s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, result, curve, seconds in (
        ("micronet-tf (Keras, tf.data)", ours_score, tf_curve, tf_seconds),
        ("original (PyTorch, smp)", torch_score, torch_curve, torch_seconds),
    ):
        per = result["per_class"]
        print(
            f"| {label} | {result['mean']:.4f} | {per['matrix']:.4f} | "
            f"{per['secondary']:.4f} | {per['tertiary']:.4f} | {result['pooled']:.4f} | "
            f"{max(curve):.4f} | {seconds:.0f} |"
        )
    print(
        f"\nmicronet-tf / original: test IoU mean {ours_score['mean'] / torch_score['mean']:.3f}"
        f", pooled {ours_score['pooled'] / torch_score['pooled']:.3f}; time "
        f"{tf_seconds / torch_seconds:.2f} (TFDS build, once: {build_seconds:.0f} s)"
    )


if __name__ == "__main__":
    main()
