"""Decoding micrographs and label images to the arrays the datasets store."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from micronet_tf import intensity
from micronet_tf.preprocessing import read_image, to_float_rgb

Colour = tuple[int, int, int]


class _ShapedMetadataFilter(logging.Filter):
    """NASA's Super masks carry tifffile "shaped" metadata that disagrees with their single
    RGBA page; tifffile logs an ERROR per file and then reads the page correctly."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "shaped series shape does not match page shape" not in record.getMessage()


logging.getLogger("tifffile").addFilter(_ShapedMetadataFilter())


def pixel_share(selected: np.ndarray) -> str:
    """``"100 of 262144 pixels, 0.038%"``: the count too, so a few pixels never read as 0.0%."""
    count, total = int(np.count_nonzero(selected)), int(selected.size)
    share = 100 * count / max(total, 1)
    digits = 1 if share >= 0.1 or share == 0 else max(1, -int(np.floor(np.log10(share))) + 1)
    return f"{count} of {total} pixels, {share:.{digits}f}%"


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Any micrograph array -> HxWx3 uint8; 16-bit (any integer) data scaled by its range."""
    array = np.asarray(image)
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[-1] == 3:
        return array
    return intensity.to_uint8_rgb(array)


def read_rgb(path: str | os.PathLike, keep_16bit: bool = False) -> np.ndarray:
    """Read a micrograph as HxWx3 uint8 (grey, RGB, RGBA; 8 or 16 bit; TIFF, PNG, JPEG), or,
    with ``keep_16bit``, integer images deeper than 8 bit as HxWx3 uint16 (scaled by their
    dtype's range), so that a percentile normalisation later sees every grey level."""
    image = read_image(path)
    try:
        if keep_16bit and np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize > 1:
            return np.round(to_float_rgb(image) * 65535.0).astype(np.uint16)
        return to_uint8_rgb(image)
    except ValueError as error:
        raise ValueError(f"image {os.fspath(path)!r}: {error}") from error


def colour_mask_to_index(
    mask: np.ndarray, colours: Sequence[Colour | None], name: str
) -> np.ndarray:
    """RGB(A) label image -> HxW uint8 class index; ``colours[i]`` is class i's colour.

    Colours are compared after scaling to 8 bit (a 16-bit ``(0, 0, 65535)`` is ``(0, 0, 255)``).
    At most one class may be ``None``: it takes every pixel no other colour claims. Without a
    ``None`` class, pixels of other colours are an error giving their fraction and examples.
    """
    if sum(colour is None for colour in colours) > 1:
        raise ValueError("at most one class may have the colour None (= every other colour)")
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[-1] == 4:
        opaque = np.iinfo(array.dtype).max if np.issubdtype(array.dtype, np.integer) else 1.0
        transparent = array[..., 3] < opaque
        if transparent.any():
            raise ValueError(
                f"mask {name!r} has transparent pixels ({pixel_share(transparent)}), whose "
                "class its colour alone does not tell; flatten the mask (paint those pixels "
                "in their class colour, without transparency)"
            )
    rgb = to_uint8_rgb(array)
    grey = (
        array.ndim == 2
        or (array.ndim == 3 and array.shape[-1] == 1)
        or (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))
    )
    if grey and np.issubdtype(array.dtype, np.integer):
        values = np.unique(array if array.ndim == 2 else array[..., 0])
        named = {tuple(int(c) for c in colour) for colour in colours if colour is not None}
        unmatched = [int(v) for v in values if 0 < v < 16 and (v, v, v) not in named]
        if unmatched and values.max() < 16:
            raise ValueError(
                f"mask {name!r} is a grey image with the values {values.tolist()}: it looks "
                "like a class-index mask, not a colour one. Pass mask_format='index' "
                "(--mask-format index) with one class name per value"
            )
    fallback = next((i for i, colour in enumerate(colours) if colour is None), None)
    index = np.full(rgb.shape[:2], 255 if fallback is None else fallback, np.uint8)
    packed = (
        (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    )
    for i, colour in enumerate(colours):
        if colour is not None:
            r, g, b = (int(c) for c in colour)
            index[packed == ((r << 16) | (g << 8) | b)] = i
    if fallback is None:
        outside = index == 255
        if outside.any():
            examples = np.unique(rgb[outside], axis=0)[:3]
            raise ValueError(
                f"mask {name!r} has colours outside the class map ({pixel_share(outside)}, "
                f"e.g. {', '.join(str(tuple(int(v) for v in c)) for c in examples)}); "
                "add those colours to `classes`, give one class the colour None "
                "(= everything else) or clean the mask"
            )
    return index


def index_mask(mask: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    """Single-channel class-index label image -> HxW uint8, values checked below ``num_classes``."""
    array = np.asarray(mask)
    if (
        array.ndim == 3
        and array.shape[-1] in (3, 4)
        and all(np.array_equal(array[..., 0], array[..., c]) for c in (1, 2))
    ):
        array = array[..., 0]  # a grey mask saved as RGB(A)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(
            f"mask {name!r} has shape {array.shape}; an index mask must be "
            "single-channel (HxW), or pass mask_format='rgb' for colour masks"
        )
    outside = (array < 0) | (array >= num_classes)
    if outside.any():
        values = np.unique(array[outside])[:5].tolist()
        raise ValueError(
            f"mask {name!r} has values outside 0..{num_classes - 1} ({pixel_share(outside)}, "
            f"e.g. {values}); pass a `classes` list with one name per value"
        )
    return array.astype(np.uint8)


def check_same_size(image: np.ndarray, mask: np.ndarray, image_name: str, mask_name: str) -> None:
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(
            f"image {image_name!r} is {image.shape[1]}x{image.shape[0]} (WxH) but its mask "
            f"{mask_name!r} is {mask.shape[1]}x{mask.shape[0]}; they must be the same size"
        )
