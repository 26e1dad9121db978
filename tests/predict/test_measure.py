"""Measurements: on the Super test masks against themselves (zero error) and against an eroded
copy (the error the erosion implies, computed object by object), and layer thickness on a band
of known width."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage import measure as skmeasure

from micronet_tf.data._benchmark import SUPER_COLOURS, SUPER_CLASSES
from micronet_tf.data._decode import colour_mask_to_index
from micronet_tf.measure import (
    area_fractions,
    compare_object_sizes,
    compare_thickness,
    layer_thickness,
    objects,
)
from micronet_tf.preprocessing import read_image

SQUARE = np.ones((3, 3), bool)


def super_test_masks(benchmark_data: Path) -> list[np.ndarray]:
    folder = benchmark_data / "Super1" / "test_annot"
    return [colour_mask_to_index(read_image(p), SUPER_COLOURS, p.name)
            for p in sorted(folder.glob("*_mask.tif"))]


def expected_erosion_errors(truth: np.ndarray) -> np.ndarray:
    """Each true object eroded on its own; its largest surviving piece is what a prediction
    made of the eroded mask is matched with."""
    errors = []
    labels = skmeasure.label(truth, connectivity=2)
    for region in skmeasure.regionprops(labels):
        alone = np.pad(region.image, 1)
        eroded = ndimage.binary_erosion(alone, SQUARE)
        pieces = np.bincount(skmeasure.label(eroded, connectivity=2).ravel())[1:]
        if pieces.size:
            errors.append(100.0 * (pieces.max() - region.area) / region.area)
    return np.asarray(errors)


def test_super_masks_against_themselves_and_eroded(benchmark_data: Path) -> None:
    masks = super_test_masks(benchmark_data)
    assert len(masks) == 4
    for index_mask in masks:
        for class_index in (1, 2):  # secondary, tertiary
            truth = index_mask == class_index
            same = compare_object_sizes(truth, truth)
            assert same["matched"] > 0 and same["missed"] == 0
            assert same["mean_percent_error"] == 0.0 and same["std_percent_error"] == 0.0
            eroded = ndimage.binary_erosion(truth, SQUARE)
            result = compare_object_sizes(eroded, truth)
            expected = expected_erosion_errors(truth)
            assert result["matched"] == expected.size
            assert result["mean_percent_error"] == pytest.approx(expected.mean(), rel=1e-9)
            assert result["mean_percent_error"] < -5  # erosion shrinks every object
    fractions = area_fractions(masks[0], SUPER_CLASSES)
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert 0.3 < fractions["secondary"] < 0.7


def test_objects_in_physical_units() -> None:
    mask = np.zeros((50, 60), bool)
    mask[10:20, 10:30] = True  # 10 x 20 rectangle
    mask[30:34, 40:44] = True
    rows = objects(mask, pixel_size=0.5)
    assert len(rows) == 2
    big = max(rows, key=lambda r: r["area"])
    assert big["area"] == pytest.approx(200 * 0.25)
    assert big["axis_major_length"] > big["axis_minor_length"] > 0


def test_thickness_of_a_band_of_known_width() -> None:
    band = np.zeros((200, 300), bool)
    band[80:120, :] = True  # 40 px thick
    samples = layer_thickness(band)
    assert np.median(samples) == pytest.approx(40, abs=1.5)
    assert compare_thickness(band, band)["percent_error"] == 0.0
    thinner = np.zeros_like(band)
    thinner[84:116, :] = True  # 32 px: -20 %
    assert compare_thickness(thinner, band)["percent_error"] == pytest.approx(-20, abs=3)
    assert layer_thickness(band, pixel_size=0.1).mean() == pytest.approx(
        samples.mean() * 0.1
    )
