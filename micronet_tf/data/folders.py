"""Users' own labelled micrographs as a tf.data dataset shaped like the TFDS ones."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from micronet_tf.data import decode
from micronet_tf.data.pairing import pair_names
from micronet_tf.preprocessing import read_image

MASK_FORMATS = ("rgb", "index")


def load_folder_pairs(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    classes: Mapping[str, decode.Colour | None] | Sequence[str],
    mask_format: str = "rgb",
    *,
    on_unpaired: str = "error",
) -> list[dict[str, np.ndarray | str]]:
    """Read and check every image / mask pair; see :func:`segmentation_dataset_from_folders`."""
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format={mask_format!r}: expected one of {MASK_FORMATS}")
    if mask_format == "rgb" and not isinstance(classes, Mapping):
        raise TypeError(
            "mask_format='rgb' needs classes as {name: (r, g, b) or None}, "
            f"got {type(classes).__name__}"
        )
    if not classes:
        raise ValueError("classes is empty; name at least one class")
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for argument, folder in (("images_dir", images_dir), ("masks_dir", masks_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{argument}={str(folder)!r} is not a folder")
    pairing = pair_names(os.listdir(images_dir), os.listdir(masks_dir))
    pairing.check(f"{images_dir} / {masks_dir}", on_unpaired)
    if not pairing.pairs:
        raise ValueError(
            f"no image / mask pairs in {images_dir} and {masks_dir}; masks are "
            "named like their image, or <image name>_mask.<ext>"
        )
    examples = []
    for image_name, mask_name in pairing.pairs:
        image = decode.read_rgb(images_dir / image_name, keep_16bit=True)
        raw = read_image(masks_dir / mask_name)
        if mask_format == "rgb":
            mask = decode.colour_mask_to_index(raw, list(classes.values()), mask_name)
        else:
            mask = decode.index_mask(raw, len(classes), mask_name)
        decode.check_same_size(image, mask, image_name, mask_name)
        examples.append(
            {
                "image": image,
                "segmentation_mask": mask[..., None],
                "image/filename": image_name,
                "mask/filename": mask_name,
            }
        )
    return examples


def describe_pairs(
    images_dir: str | os.PathLike, masks_dir: str | os.PathLike, examples: Sequence[dict]
) -> list[dict[str, str]]:
    """What a run records of its data: each pair's file names and sha256."""
    from micronet_tf.files import sha256_of

    return [
        {
            "image": e["image/filename"],
            "image_sha256": sha256_of(Path(images_dir) / e["image/filename"]),
            "mask": e["mask/filename"],
            "mask_sha256": sha256_of(Path(masks_dir) / e["mask/filename"]),
        }
        for e in examples
    ]


# The held-out validation block of each image: its right-most columns, full height (so that a
# layered cross-section keeps every layer in it), never smaller than this many pixels a side.
MIN_HOLD_OUT = 32


def hold_out_strip(examples: Sequence[dict], fraction: float) -> tuple[list[dict], list[dict]]:
    """Split each example into a training part (left) and a validation strip (right) of
    ``fraction`` of its width, hence of its area: ``(train, validation)`` examples. Training
    crops and augmentations only ever see the training parts, so nothing leaks."""
    if not 0 < fraction <= 0.5:
        raise ValueError(
            f"val_fraction={fraction!r}: expected a fraction of each image's "
            "area in (0, 0.5], e.g. 0.2"
        )
    train, validation = [], []
    for example in examples:
        width = example["image"].shape[1]
        strip = max(MIN_HOLD_OUT, int(round(fraction * width)))
        if width - strip < MIN_HOLD_OUT:
            raise ValueError(
                f"val_fraction={fraction}: image {example['image/filename']!r} "
                f"is {width} pixels wide, too narrow to hold out a strip; give "
                "validation images instead"
            )
        cut = width - strip
        name = example["image/filename"]
        for part, columns, suffix in (
            (train, slice(0, cut), ""),
            (validation, slice(cut, width), " [held out]"),
        ):
            part.append(
                {
                    **example,
                    "image": example["image"][:, columns],
                    "segmentation_mask": example["segmentation_mask"][:, columns],
                    "image/filename": name + suffix,
                    "columns": (columns.start, columns.stop),
                }
            )
    return train, validation


def dataset_from_examples(examples: Sequence[dict]):
    """In-memory examples -> a ``tf.data.Dataset`` of the TFDS-like element dicts; its images
    are uint16 when any example's is (8-bit ones scaled by 257), else uint8."""
    import tensorflow as tf

    deep = any(e["image"].dtype == np.uint16 for e in examples)
    signature = {
        "image": tf.TensorSpec((None, None, 3), tf.uint16 if deep else tf.uint8),
        "segmentation_mask": tf.TensorSpec((None, None, 1), tf.uint8),
        "image/filename": tf.TensorSpec((), tf.string),
    }

    def image(example: dict) -> np.ndarray:
        array = example["image"]
        return array.astype(np.uint16) * 257 if deep and array.dtype == np.uint8 else array

    dataset = tf.data.Dataset.from_generator(
        lambda: (
            {
                "image": image(e),
                "segmentation_mask": e["segmentation_mask"],
                "image/filename": e["image/filename"],
            }
            for e in examples
        ),
        output_signature=signature,
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(len(examples)))


def segmentation_dataset_from_folders(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    classes: Mapping[str, decode.Colour | None] | Sequence[str],
    mask_format: str = "rgb",
    *,
    on_unpaired: str = "error",
):
    """A ``tf.data.Dataset`` of ``{"image", "segmentation_mask", "image/filename"}`` like TFDS's.

    Masks are paired by name (``a.tif`` with ``a_mask.tif`` or ``a.png``). ``mask_format="rgb"``:
    ``classes`` maps each class name to its mask colour (8-bit RGB; one class may be ``None`` =
    every other colour). ``"index"``: ``classes`` lists the names of mask values 0, 1, ...
    Everything is read and checked up front (unpaired files, stray colours, size mismatches).
    """
    return dataset_from_examples(
        load_folder_pairs(images_dir, masks_dir, classes, mask_format, on_unpaired=on_unpaired)
    )
