"""MicroNet-style classification folders: one sub-folder per class, a fixed validation draw."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from micronet_tf.data.pairing import is_image_name

logger = logging.getLogger(__name__)


def list_class_folders(root: str | os.PathLike) -> dict[str, list[Path]]:
    """``{class name: sorted image paths}`` for each sub-folder of ``root`` (read recursively)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder; expected one sub-folder per class")
    classes = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_name(p.name))
        if files:
            classes[folder.name] = files
        else:
            logger.warning("class folder %s holds no TIFF / PNG / JPEG images; left out", folder)
    if not classes:
        raise FileNotFoundError(
            f"{root}: no class sub-folders with images; expected e.g. {root}/<class>/<image>.tif"
        )
    return classes


def split_validation(
    classes: dict[str, list[Path]], per_class: int, seed: int
) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """``(train, validation)`` lists of ``(path, label)``: ``per_class`` images of each class drawn
    with ``seed`` (at most half of a small class), the same draw on every run and machine."""
    if per_class < 0:
        raise ValueError(f"validation_per_class={per_class}: expected >= 0")
    train, validation = [], []
    for label, (name, files) in enumerate(sorted(classes.items())):
        count = min(per_class, len(files) // 2)
        if count < per_class:
            logger.warning(
                "class %r has %d images: %d go to validation instead of %d",
                name,
                len(files),
                count,
                per_class,
            )
        # One generator per class, keyed by the class name: adding a class changes no other draw.
        rng = np.random.default_rng([seed, *name.encode("utf-8")])
        chosen = set(rng.permutation(len(files))[:count].tolist())
        for i, path in enumerate(files):
            (validation if i in chosen else train).append((path, label))
    return train, validation
