"""Test folders of labelled micrographs made from the benchmark files (cropped, for speed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from micronet_tf.data.benchmark import resolve_pointer
from micronet_tf.preprocessing import read_image


def copy_pairs(
    benchmark_data: Path,
    set_folder: str,
    split: str,
    images: Path,
    masks: Path,
    count: int,
    size: int | None = 256,
    step: int = 1,
) -> list[str]:
    """``count`` image / mask pairs of ``<set_folder>/<split>`` into ``images`` / ``masks``,
    every ``step``-th pixel (nearest-neighbour down-scaling), top-left ``size`` crops, as
    TIFF (``None``: whole). Returns the image names."""
    source = benchmark_data / set_folder
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (source / split).iterdir())[:count]
    for name in names:
        stem = Path(name).stem
        mask_name = next(
            p.name
            for p in (source / f"{split}_annot").iterdir()
            if Path(p.name).stem in (stem, f"{stem}_mask")
        )
        for src, dst in (
            (source / split / name, images / f"{stem}.tif"),
            (source / f"{split}_annot" / mask_name, masks / f"{stem}_mask.tif"),
        ):
            array = np.asarray(read_image(resolve_pointer(src)))[::step, ::step]
            if size is not None:
                array = np.ascontiguousarray(array[:size, :size])
            tifffile.imwrite(dst, array)
    return [f"{Path(n).stem}.tif" for n in names]
