"""Super-1 training, set up identically for NASA's PyTorch path and micronet-tf's (shared by
``bench_fidelity.py`` and ``bench_training_loop.py``): the same files, augmentation, crops,
batches, initial weights and scoring. Import after torch, before TensorFlow."""

from __future__ import annotations

import argparse
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from _original import OriginalStyleDataset
from torch.utils.data import DataLoader

from micronet_tf.data import paper_augmentation
from micronet_tf.data.benchmark import resolve_pointer

CLASSES = ("matrix", "secondary", "tertiary")


def add_arguments(parser: argparse.ArgumentParser, epochs: int) -> None:
    """The training budget both paths share."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--repeats", type=int, default=4, help="augmented crops of each training image per epoch"
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="PyTorch DataLoader workers")


def pairs(root: Path, split: str) -> tuple[list[Path], list[Path]]:
    """Super-1's images and masks of ``split``, pointers resolved."""
    folder = root / "Super1" / split
    images = sorted(folder.glob("*.tif"))
    masks = [root / "Super1" / f"{split}_annot" / f"{p.stem}_mask.tif" for p in images]
    missing = [str(m) for m in masks if not m.exists()]
    if not images or missing:
        raise SystemExit(f"Super1/{split}: {len(images)} images, masks missing: {missing}")
    return [resolve_pointer(p) for p in images], [resolve_pointer(p) for p in masks]


def initial_unet(seed: int) -> torch.nn.Module:
    """smp's U-Net resnet18 with ``seed``'s random initialisation (both paths start here)."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    return smp.Unet("resnet18", encoder_weights=None, classes=len(CLASSES))


def original_loaders(args, root: Path, seed: int) -> tuple[DataLoader, DataLoader]:
    """NASA's Dataset style (OpenCV decoding) in a DataLoader with ``args.workers`` processes,
    each augmenting with its own seed derived from ``seed``."""
    augmentation = paper_augmentation(args.crop, seed=seed)
    train = OriginalStyleDataset(*pairs(root, "train"), augmentation, repeats=args.repeats)
    val = OriginalStyleDataset(*pairs(root, "val"), A.Compose([]))

    def reseed(worker: int) -> None:  # distinct, reproducible augmentation per worker
        torch.utils.data.get_worker_info().dataset.augmentation.set_random_seed(seed + 1 + worker)

    loader = DataLoader(
        train,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        worker_init_fn=reseed,
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, DataLoader(val, batch_size=1)


def tfds_builder(root: Path, work: Path):
    """TFDS ``micronet_segmentation/super1`` built (once) under ``work`` from the local copy."""
    import tensorflow_datasets as tfds

    import micronet_tf  # noqa: F401  (registers the dataset)

    builder = tfds.builder("micronet_segmentation/super1", data_dir=str(work / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
    return builder


def our_pipelines(args, builder, seed: int, deterministic: bool = False):
    """micronet-tf's training and validation pipelines over the TFDS build."""
    from micronet_tf.data import make_segmentation_pipeline
    from micronet_tf.training.runs import validation_pipeline

    train_ds = make_segmentation_pipeline(
        builder.as_dataset(split="train").repeat(args.repeats),
        training=True,
        crop=args.crop,
        batch_size=args.batch,
        classes=len(CLASSES),
        seed=seed,
        deterministic=deterministic,
    )
    validation = builder.as_dataset(split="validation")
    val_ds = validation_pipeline(  # as the CLI's runs make it
        validation, batch=args.batch, crop=args.crop, classes=len(CLASSES)
    )
    return train_ds, val_ds


def keras_unet(init_state: dict):
    """The Keras U-Net resnet18 holding ``init_state`` (smp's state dict, converted)."""
    import micronet_tf
    from micronet_tf.convert import load_torch_weights

    model = micronet_tf.create_segmentation_model(
        "Unet", "resnet18", classes=len(CLASSES), class_names=list(CLASSES)
    )
    load_torch_weights(model, init_state)
    return model


def test_set(builder) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Super-1's test images (normalised, 1xHxWx3) and class-index masks."""
    import tensorflow_datasets as tfds

    from micronet_tf.preprocessing import normalize

    elements = list(tfds.as_numpy(builder.as_dataset(split="test")))
    images = [normalize(e["image"])[None] for e in elements]
    return images, [e["segmentation_mask"][..., 0] for e in elements]


def score(logits: list[np.ndarray], masks: list[np.ndarray]) -> dict:
    """Per-class IoU (sums over the images), their mean, and the original pooled IoU."""
    intersection = np.zeros(len(CLASSES))
    union = np.zeros(len(CLASSES))
    for out, mask in zip(logits, masks):
        predicted = out > 0  # sigmoid(x) > 0.5
        truth = np.eye(len(CLASSES), dtype=bool)[mask]
        intersection += (predicted & truth).sum(axis=(0, 1))
        union += (predicted | truth).sum(axis=(0, 1))
    per_class = intersection / np.maximum(union, 1)
    return {
        "per_class": dict(zip(CLASSES, per_class.tolist())),
        "mean": float(per_class.mean()),
        "pooled": float(intersection.sum() / max(union.sum(), 1)),
    }
