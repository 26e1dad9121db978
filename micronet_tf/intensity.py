"""How a micrograph's raw intensities become the [0, 1] values a model sees: by the range of
its dtype (``"dtype"``: 8-bit / 255, 16-bit / 65535; the paper's rule and the default) or by
each image's own percentiles (``"percentile"``, e.g. 0.1 / 99.9: a 12-bit detector's values in
a 16-bit file, or a dim exposure, fill [0, 1] like a well-exposed 8-bit image).

One :class:`Normalization` is used by the data pipeline, training (stored in the trained
model), ``predict`` / ``evaluate`` and the exports, so that prediction sees what training saw.
Percentiles are taken over the whole image (all pixels and colour channels together, by the
inverted CDF: the smallest value at or above which ``100 - q`` % lie), never per tile, so tiled
and whole-image prediction agree.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

KINDS = ("dtype", "percentile")
DEFAULT_PERCENTILES = (0.1, 99.9)
# Under "dtype", an integer image spanning less than this share of its dtype's range is warned
# about: to the model it looks nearly uniform.
LOW_RANGE_SHARE = 1 / 16


@dataclass(frozen=True)
class Normalization:
    """``kind`` ``"dtype"`` or ``"percentile"``; ``low`` / ``high``: the percentiles (0-100)
    mapped to 0 and 1 (values beyond them are clipped)."""

    kind: str = "dtype"
    low: float = DEFAULT_PERCENTILES[0]
    high: float = DEFAULT_PERCENTILES[1]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"normalization={self.kind!r}: expected one of {KINDS}")
        if self.kind == "percentile" and not 0.0 <= self.low < self.high <= 100.0:
            raise ValueError(
                f"normalization percentiles {self.low:g}, {self.high:g}: expected "
                "0 <= low < high <= 100 (e.g. percentile:0.1,99.9)"
            )

    @classmethod
    def parse(cls, value: Normalization | str | dict | None) -> Normalization:
        """``None`` / ``"dtype"`` / ``"percentile"`` / ``"percentile:0.5,99.5"`` / a
        :meth:`to_config` dict / a :class:`Normalization` -> a :class:`Normalization`."""
        if isinstance(value, Normalization):
            return value
        if value is None:
            return cls()
        if isinstance(value, dict):
            return cls(
                str(value.get("kind", "dtype")),
                float(value.get("low", DEFAULT_PERCENTILES[0])),
                float(value.get("high", DEFAULT_PERCENTILES[1])),
            )
        if not isinstance(value, str):
            raise ValueError(
                f"normalization={value!r}: expected 'dtype', 'percentile' or 'percentile:LOW,HIGH'"
            )
        kind, _, bounds = value.strip().lower().partition(":")
        if not bounds:
            return cls(kind)
        try:
            low, high = (float(v) for v in bounds.split(","))
        except ValueError:
            raise ValueError(
                f"normalization={value!r}: expected 'percentile:LOW,HIGH' with two "
                "numbers, e.g. percentile:0.1,99.9"
            ) from None
        if kind != "percentile":
            raise ValueError(f"normalization={value!r}: only 'percentile' takes bounds")
        return cls(kind, low, high)

    def __str__(self) -> str:
        return "dtype" if self.kind == "dtype" else f"percentile:{self.low:g},{self.high:g}"

    def to_config(self) -> dict:
        if self.kind == "dtype":
            return {"kind": "dtype"}
        return {"kind": "percentile", "low": self.low, "high": self.high}

    def bounds(self, image: np.ndarray) -> tuple[float, float]:
        """The raw values mapped to 0 and 1: the dtype's range, or the image's percentiles
        (over every pixel and colour channel; an alpha channel is left out)."""
        array = _colour_channels(np.asarray(image))
        if self.kind == "dtype":
            if np.issubdtype(array.dtype, np.integer):
                return 0.0, float(np.iinfo(array.dtype).max)
            return 0.0, 1.0
        if array.size == 0:
            return 0.0, 1.0
        # inverted_cdf: the smallest value with at least ``q`` % of the values at or below
        # it. Unlike interpolation it is the same for a grey image and its RGB copy, and it
        # is one sorted element, which graphs (SavedModel, ONNX) compute alike.
        low, high = np.percentile(array, (self.low, self.high), method="inverted_cdf")
        return float(low), float(high)


def _colour_channels(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] == 4:
        return array[..., :3]
    return array


def scale_to_unit(
    image: np.ndarray,
    normalization: Normalization | str | None = None,
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """HxW(x1/3/4) image -> HxWx3 float32 in [0, 1] by ``normalization`` (``bounds``: the
    values already computed for the whole image, e.g. when scaling it tile by tile)."""
    from micronet_tf.preprocessing import to_float_rgb

    norm = Normalization.parse(normalization)
    if norm.kind == "dtype":
        return to_float_rgb(image)  # its checks (signed, NaN, floats outside [0, 1]) apply
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"expected an image of shape HxW, HxWx1, HxWx3 or HxWx4, got {np.shape(image)}"
        )
    if np.issubdtype(array.dtype, np.floating) and array.size and not np.isfinite(array).all():
        raise ValueError("float image with NaN or infinite values")
    array = _colour_channels(array)
    low, high = bounds if bounds is not None else norm.bounds(array)
    rgb = array.astype(np.float32)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    if high <= low:  # a constant image: nothing to stretch
        return np.zeros(rgb.shape, np.float32)
    return np.clip((rgb - np.float32(low)) / np.float32(high - low), 0.0, 1.0).astype(np.float32)


def to_uint8_rgb(image: np.ndarray, normalization: Normalization | str | None = None) -> np.ndarray:
    """:func:`scale_to_unit` quantised to HxWx3 uint8 (what the datasets store)."""
    return np.round(scale_to_unit(image, normalization) * 255.0).astype(np.uint8)


def low_range_warning(image: np.ndarray, name: str) -> str | None:
    """A warning text when an integer image uses less than 1/16 of its dtype's range (it then
    looks nearly uniform under ``"dtype"`` normalisation), else None."""
    array = _colour_channels(np.asarray(image))
    if not np.issubdtype(array.dtype, np.integer) or array.size == 0:
        return None
    top = float(np.iinfo(array.dtype).max)
    low, high = float(array.min()), float(array.max())
    if high - low >= LOW_RANGE_SHARE * top:
        return None
    return (
        f"image {name!r} uses only {100 * (high - low) / top:.1f}% of its {array.dtype} range "
        f"(values {low:g} to {high:g}): under normalization 'dtype' it looks nearly uniform to "
        "the model. If the model was trained on such images, fine; otherwise train and predict "
        "with --normalization percentile (normalization='percentile')"
    )


def warn_if_low_range(image: np.ndarray, name: str, normalization: Normalization) -> None:
    """Emit :func:`low_range_warning` for ``"dtype"`` normalisation."""
    if normalization.kind == "dtype":
        message = low_range_warning(image, name)
        if message is not None:
            warnings.warn(message, stacklevel=3)
