"""Measuring what a segmentation shows: objects, area fractions, layer thickness — and how far
a prediction's measurements are from the ground truth's (the paper's Figure 6)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from skimage import measure, morphology

# The benchmark's Super masks (RGB): blue = secondary, red = tertiary, anything else = matrix.
from micronet_tf.data.benchmark import SUPER_COLOURS

# regionprops columns reported per object (lengths in pixels, or in units with pixel_size).
_LENGTHS = (
    "equivalent_diameter_area",
    "axis_major_length",
    "axis_minor_length",
    "perimeter",
    "feret_diameter_max",
)
_AREAS = ("area",)
_UNITLESS = ("eccentricity", "solidity", "orientation")


def _check_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name}: expected an HxW mask, got shape {mask.shape}")
    return mask


def read_index_mask(
    path: str | os.PathLike, colours: Sequence | None = SUPER_COLOURS, num_classes: int = 256
) -> np.ndarray:
    """HxW uint8 class indices from a mask file: single-channel (or grey RGB) masks as they
    are (e.g. ``micronet-tf predict`` output, EBC masks 0/1/2); colour masks through
    ``colours`` (class i's RGB, one ``None`` = everything else; default: the Super masks)."""
    from micronet_tf.data.decode import colour_mask_to_index, index_mask
    from micronet_tf.preprocessing import read_image

    array = read_image(path)
    name = os.fspath(path)
    coloured = (
        array.ndim == 3
        and array.shape[-1] in (3, 4)
        and not all(np.array_equal(array[..., 0], array[..., c]) for c in (1, 2))
    )
    if coloured:
        if colours is None:
            raise ValueError(f"mask {name!r} is a colour image: pass the class colours")
        return colour_mask_to_index(array, colours, name)
    return index_mask(array, num_classes, name)


def objects(mask: np.ndarray, *, pixel_size: float | None = None) -> list[dict]:
    """One row per connected object (8-connectivity) of a boolean mask: label, centroid,
    area, equivalent diameter, major / minor axis, perimeter, maximum Feret diameter,
    eccentricity, solidity, orientation. With ``pixel_size`` (units per pixel) lengths and
    areas are physical."""
    mask = _check_mask(mask, "mask").astype(bool)
    scale = 1.0 if pixel_size is None else float(pixel_size)
    rows = []
    for region in measure.regionprops(measure.label(mask, connectivity=2)):
        row = {
            "label": int(region.label),
            "centroid_row": float(region.centroid[0]),
            "centroid_col": float(region.centroid[1]),
        }
        row.update({k: float(getattr(region, k)) * scale for k in _LENGTHS})
        row.update({k: float(getattr(region, k)) * scale**2 for k in _AREAS})
        row.update({k: float(getattr(region, k)) for k in _UNITLESS})
        rows.append(row)
    return rows


def area_fractions(index_mask: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Fraction of pixels of each class in a class-index mask."""
    index_mask = _check_mask(index_mask, "index_mask")
    counts = np.bincount(index_mask.ravel(), minlength=len(class_names))
    if len(counts) > len(class_names):
        raise ValueError(f"index_mask has class {len(counts) - 1}, beyond {list(class_names)}")
    return {name: float(c / index_mask.size) for name, c in zip(class_names, counts)}


def layer_thickness(
    mask: np.ndarray, *, pixel_size: float | None = None, min_size: int = 1000
) -> np.ndarray:
    """Local thickness along a layer (the paper's oxide method): closing, opening, removal of
    holes and objects up to ``min_size`` px², then twice the medial-axis distance at every
    skeleton pixel. Returns those thickness samples (physical with ``pixel_size``)."""
    return thickness_samples(mask, pixel_size=pixel_size, min_size=min_size)[0]


def thickness_samples(
    mask: np.ndarray, *, pixel_size: float | None = None, min_size: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`layer_thickness`'s samples and where they lie: ``(thickness, coordinates)``, the
    latter an Nx2 array of (row, col) skeleton pixels, in the same order. The positions let
    an interval use blocks along the layer (neighbouring samples are strongly correlated)."""
    mask = _check_mask(mask, "mask").astype(bool)
    cleaned = morphology.opening(morphology.closing(mask))
    cleaned = morphology.remove_small_holes(cleaned, max_size=min_size)
    cleaned = morphology.remove_small_objects(cleaned, max_size=min_size)
    # rng fixed: medial_axis breaks ties at random, which would make equal masks differ.
    skeleton, distance = morphology.medial_axis(cleaned, return_distance=True, rng=0)
    scale = 1.0 if pixel_size is None else float(pixel_size)
    return 2.0 * distance[skeleton] * scale, np.argwhere(skeleton)


def compare_object_sizes(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Percent error of object areas: each true object is matched to the predicted object that
    overlaps it most; error = 100 x (predicted area - true area) / true area. True objects no
    prediction touches are counted as missed."""
    predicted = _check_mask(predicted, "predicted").astype(bool)
    truth = _check_mask(truth, "truth").astype(bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted {predicted.shape} and truth {truth.shape} differ in size")
    true_labels = measure.label(truth, connectivity=2)
    pred_labels = measure.label(predicted, connectivity=2)
    pred_areas = np.bincount(pred_labels.ravel())
    errors, missed = [], 0
    for region in measure.regionprops(true_labels):
        overlap = pred_labels[region.slice][region.image]
        overlap = overlap[overlap > 0]
        if overlap.size == 0:
            missed += 1
            continue
        match = np.bincount(overlap).argmax()
        errors.append(100.0 * (pred_areas[match] - region.area) / region.area)
    errors = np.asarray(errors, float)
    return {
        "matched": int(errors.size),
        "missed": missed,
        "mean_percent_error": float(errors.mean()) if errors.size else float("nan"),
        "std_percent_error": float(errors.std()) if errors.size else float("nan"),
        "errors": errors,
    }


def compare_thickness(predicted: np.ndarray, truth: np.ndarray, **kwargs) -> dict:
    """Mean layer thickness of prediction and truth, and the percent error of the former."""
    ours, true = layer_thickness(predicted, **kwargs), layer_thickness(truth, **kwargs)
    if true.size == 0:
        raise ValueError("the true mask has no layer left after cleaning (min_size)")
    mean_pred = float(ours.mean()) if ours.size else 0.0
    mean_true = float(true.mean())
    return {
        "predicted_mean": mean_pred,
        "true_mean": mean_true,
        "percent_error": 100.0 * (mean_pred - mean_true) / mean_true,
    }
