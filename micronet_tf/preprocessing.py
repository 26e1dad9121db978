"""Reading micrographs and turning them into encoder inputs (ImageNet mean/std, as in MicroNet)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

# MicroNet weights were trained on inputs normalised with ImageNet statistics.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

_TIFF_SUFFIXES = (".tif", ".tiff")
# Pillow modes whose arrays are not pixel values (palette indices, other colour spaces).
_CONVERT_MODES = ("P", "PA", "LA", "La", "CMYK", "YCbCr", "LAB", "HSV")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a micrograph as stored (TIFF through tifffile, anything else through Pillow)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {str(path)!r}: no such file")
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                pages = len(tiff.pages)
                if pages > 1:  # a stack, or a micrograph with a thumbnail: the first page
                    warnings.warn(
                        f"image {str(path)!r} is a multi-page TIFF ({pages} pages); "
                        "using its first page",
                        stacklevel=2,
                    )
                    return np.asarray(tiff.pages[0].asarray())
                return np.asarray(tiff.asarray())
        from PIL import Image

        with Image.open(path) as image:
            if image.mode in _CONVERT_MODES:  # palette, CMYK, ...: decode to real colours
                transparent = "A" in image.mode or "transparency" in image.info
                image = image.convert("RGBA" if transparent else "RGB")
            array = np.asarray(image)
        if image.mode == "I" and array.size and 0 <= array.min() and array.max() <= 65535:
            array = array.astype(np.uint16)  # 16-bit data that Pillow widened to int32
        return array
    except Exception as error:
        raise ValueError(
            f"image {str(path)!r} could not be read ({type(error).__name__}: {error}); "
            "expected a TIFF, PNG or JPEG micrograph"
        ) from error


def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 (alpha dropped) of any integer or float dtype -> HxWx3 in [0, 1].

    Integer images are scaled by their dtype's range (a 16-bit micrograph by 65535), never
    clipped; float images must be in [0, 1] already. Anything else is refused rather than
    guessed: float values outside [0, 1] or not finite, signed integers with negative values.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"expected an image of shape HxW, HxWx1, HxWx3 or HxWx4, got {array.shape}"
        )
    if array.shape[-1] == 4:
        array = array[..., :3]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if np.issubdtype(array.dtype, np.signedinteger) and array.size and array.min() < 0:
        raise ValueError(
            f"signed {array.dtype} image with negative values (min {int(array.min())}): the "
            "rule 'divide by the dtype's maximum' would put them below 0. Shift or rescale it "
            "to unsigned integers (or to floats in [0, 1]) first"
        )
    if np.issubdtype(array.dtype, np.integer):
        return (array.astype(np.float32) / np.iinfo(array.dtype).max).astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not np.isfinite(array).all():
            raise ValueError("float image with NaN or infinite values")
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 1.0)
        if low < -1e-6 or high > 1 + 1e-6:
            raise ValueError(
                f"float image with values in [{low:g}, {high:g}]: float images must be in "
                "[0, 1]. Rescale it (e.g. divide by its detector's maximum) or save it as an "
                "integer image"
            )
        return np.clip(array, 0, 1).astype(np.float32)
    if array.dtype == bool:
        return array.astype(np.float32)
    raise ValueError(f"unsupported image dtype {array.dtype}")


def normalize(
    image: np.ndarray, mean: np.ndarray = IMAGENET_MEAN, std: np.ndarray = IMAGENET_STD
) -> np.ndarray:
    """``(to_float_rgb(image) - mean) / std``: the input the MicroNet encoders expect."""
    return ((to_float_rgb(image) - mean) / std).astype(np.float32)
