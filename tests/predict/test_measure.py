"""Measurements: on the Super test masks against themselves (zero error) and against an eroded
copy (the error the erosion implies, computed object by object), the oxide thickness of EBC
masks against themselves, and layer thickness on a band of known width."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from micronet_tf.data import EBC_CLASSES, SUPER_CLASSES
from micronet_tf.data.benchmark import resolve_pointer
from micronet_tf.measure import (
    area_fractions,
    compare_object_sizes,
    compare_thickness,
    layer_thickness,
    objects,
    read_index_mask,
)
from micronet_tf.preprocessing import read_image

SQUARE = np.ones((3, 3), bool)


def super_test_masks(benchmark_data: Path) -> dict[str, np.ndarray]:
    folder = benchmark_data / "Super1" / "test_annot"
    return {p.name: read_index_mask(resolve_pointer(p)) for p in sorted(folder.glob("*_mask.tif"))}


def decode_by_hand(path: Path) -> np.ndarray:
    """Independent Super decoding: pure blue = 1, pure red = 2 after scaling to 8 bit."""
    rgba = read_image(resolve_pointer(path)).astype(np.float64)
    rgb = np.round(rgba[..., :3] / (65535 if rgba.max() > 255 else 255) * 255)
    blue = (rgb == (0, 0, 255)).all(-1)
    red = (rgb == (255, 0, 0)).all(-1)
    return np.where(blue, 1, np.where(red, 2, 0))


def expected_erosion_errors(truth: np.ndarray) -> tuple[np.ndarray, int]:
    """Each true object (scipy's 8-connected labels) eroded on its own; a prediction made of the
    eroded mask matches it with its largest surviving piece. Returns (errors, vanished)."""
    labels, count = ndimage.label(truth, structure=SQUARE)
    errors, vanished = [], 0
    for index, window in enumerate(ndimage.find_objects(labels), 1):
        alone = np.pad(labels[window] == index, 1)
        area = alone.sum()
        pieces, _ = ndimage.label(ndimage.binary_erosion(alone, SQUARE), structure=SQUARE)
        sizes = np.bincount(pieces.ravel())[1:]
        if sizes.size:
            errors.append(100.0 * (sizes.max() - area) / area)
        else:
            vanished += 1
    assert len(errors) + vanished == count
    return np.asarray(errors), vanished


def test_decoding_matches_the_colours(benchmark_data: Path) -> None:
    for folder in ("Super1/test_annot", "Super4/test_annot"):  # Super4: two 16-bit masks
        for path in sorted((benchmark_data / folder).glob("*_mask.tif")):
            decoded = read_index_mask(resolve_pointer(path))
            assert np.array_equal(decoded, decode_by_hand(path)), path.name
            assert set(np.unique(decoded)) == {0, 1, 2}


def test_super_masks_against_themselves_and_eroded(benchmark_data: Path) -> None:
    masks = super_test_masks(benchmark_data)
    assert len(masks) == 4
    for name, index_mask in masks.items():
        for class_index in (1, 2):  # secondary, tertiary
            truth = index_mask == class_index
            same = compare_object_sizes(truth, truth)
            count = ndimage.label(truth, structure=SQUARE)[1]
            assert same["matched"] == count > 0 and same["missed"] == 0
            assert same["mean_percent_error"] == 0.0 and same["std_percent_error"] == 0.0
            eroded = ndimage.binary_erosion(truth, SQUARE)
            result = compare_object_sizes(eroded, truth)
            expected, vanished = expected_erosion_errors(truth)
            assert (result["matched"], result["missed"]) == (expected.size, vanished), name
            assert result["mean_percent_error"] == pytest.approx(expected.mean(), rel=1e-9)
            assert result["std_percent_error"] == pytest.approx(expected.std(), rel=1e-9)
            assert result["mean_percent_error"] < -5  # erosion shrinks every object
    fractions = area_fractions(masks["spot2_0d_0_mask.tif"], SUPER_CLASSES)
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert 0.3 < fractions["secondary"] < 0.7 and 0.0 < fractions["tertiary"] < 0.05


def test_oxide_thickness_of_ebc_masks_against_themselves(benchmark_data: Path) -> None:
    path = sorted((benchmark_data / "EBC1" / "test_annot").glob("*.tif"))[0]
    oxide = read_index_mask(resolve_pointer(path)) == EBC_CLASSES.index("oxide")
    same = compare_thickness(oxide, oxide)
    assert same["percent_error"] == 0.0 and same["true_mean"] > 10  # deterministic skeleton
    thinner = compare_thickness(ndimage.binary_erosion(oxide, SQUARE, iterations=2), oxide)
    assert thinner["percent_error"] < -2


def test_objects_in_physical_units() -> None:
    mask = np.zeros((50, 60), bool)
    mask[10:20, 10:30] = True  # 10 x 20 rectangle
    mask[30:34, 40:44] = True
    rows = objects(mask, pixel_size=0.5)
    assert len(rows) == 2
    big = max(rows, key=lambda r: r["area"])
    assert big["area"] == pytest.approx(200 * 0.25)
    assert big["equivalent_diameter_area"] == pytest.approx(np.sqrt(4 * 200 / np.pi) * 0.5)
    assert big["feret_diameter_max"] == pytest.approx(np.hypot(10, 20) * 0.5, rel=0.05)
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
    assert layer_thickness(band, pixel_size=0.1).mean() == pytest.approx(samples.mean() * 0.1)
    speck = band.copy()
    speck[10:20, 10:20] = True  # 100 px²: removed as in the paper (objects up to 1000 px²)
    assert np.array_equal(layer_thickness(speck), samples)
