"""One intensity normalisation (``"dtype"`` or ``"percentile"``) for data, training, serving
and exports (:mod:`micronet_tf.intensity`): a 12-bit-in-16-bit copy of a benchmark image gives
the 8-bit original's values under ``"percentile"``; the benchmark's real 16-bit images."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from micronet_tf.data.benchmark import resolve_pointer
from micronet_tf.intensity import Normalization, low_range_warning, scale_to_unit, to_uint8_rgb
from micronet_tf.preprocessing import read_image, to_float_rgb


def _super1_test_image(benchmark_data: Path) -> np.ndarray:
    path = sorted((benchmark_data / "Super1" / "test").glob("*.tif"))[0]
    image = read_image(resolve_pointer(path))
    assert image.dtype == np.uint8
    return image


def twelve_bit_copy(image: np.ndarray) -> np.ndarray:
    """The 8-bit image as a 12-bit detector in a 16-bit file writes it: values 0..4080."""
    return image.astype(np.uint16) * 16


def test_parse_and_errors() -> None:
    assert Normalization.parse(None) == Normalization("dtype")
    assert Normalization.parse("percentile") == Normalization("percentile", 0.1, 99.9)
    assert Normalization.parse("percentile:0.5,99.5") == Normalization("percentile", 0.5, 99.5)
    assert str(Normalization.parse("Percentile:1,99")) == "percentile:1,99"
    config = Normalization("percentile", 2, 98).to_config()
    assert Normalization.parse(config) == Normalization("percentile", 2, 98)
    for bad, message in (
        ("minmax", "expected one of"),
        ("percentile:99,1", "low < high"),
        ("percentile:1", "two numbers"),
        ("dtype:1,2", "only 'percentile'"),
    ):
        with pytest.raises(ValueError, match=message):
            Normalization.parse(bad)


def test_twelve_bit_copy_equals_the_8_bit_original_under_percentile(
    benchmark_data: Path,
) -> None:
    original = _super1_test_image(benchmark_data)
    copy = twelve_bit_copy(original)
    percentile = Normalization.parse("percentile")
    low, high = percentile.bounds(copy)
    assert (low, high) == tuple(16 * v for v in percentile.bounds(original))
    np.testing.assert_allclose(
        scale_to_unit(copy, percentile), scale_to_unit(original, percentile), atol=1e-6
    )
    # Under "dtype" the copy is a dim sixteenth of the original, and says so.
    dim = scale_to_unit(copy, "dtype")
    assert float(dim.max()) < 1 / 16 + 1e-6
    message = low_range_warning(copy, "copy.tif")
    assert message is not None and "copy.tif" in message and "percentile" in message
    assert low_range_warning(original, "original.tif") is None
    # A grey image and its RGB copy have the same bounds (inverted CDF).
    grey = copy[..., 0]
    assert percentile.bounds(grey) == percentile.bounds(np.repeat(grey[..., None], 3, axis=-1))


def test_real_16_bit_images_of_the_benchmark(benchmark_data: Path) -> None:
    """Super-2's out-of-distribution set holds two real 16-bit micrographs: full-range enough
    for no warning, and their percentile scaling agrees with their 8-bit rendition's to
    within 8-bit quantisation."""
    deep = []
    for path in sorted((benchmark_data / "Super2" / "different_test").glob("*.tif")):
        image = tifffile.imread(resolve_pointer(path))
        if image.dtype == np.uint16:
            deep.append(image)
    assert len(deep) == 2
    percentile = Normalization.parse("percentile")
    for image in deep:
        assert low_range_warning(image, "ood.tif") is None
        eight_bit = to_uint8_rgb(image, "dtype")
        low, high = percentile.bounds(eight_bit)
        # Rounding to 8 bit moves each value and each bound by at most half a level.
        np.testing.assert_allclose(
            scale_to_unit(image, percentile),
            scale_to_unit(eight_bit, percentile),
            atol=2.0 / (high - low),
        )
        # The 16-bit file under "dtype" is what the dataset has always stored.
        np.testing.assert_allclose(scale_to_unit(image, "dtype"), to_float_rgb(image))


def test_pipeline_applies_the_normalisation_per_whole_image(benchmark_data: Path) -> None:
    import tensorflow as tf

    from micronet_tf.data import make_segmentation_pipeline

    original = _super1_test_image(benchmark_data)
    mask = np.zeros(original.shape[:2] + (1,), np.uint8)
    batches = {}
    for name, image in (("8-bit", original), ("12-bit", twelve_bit_copy(original))):
        ds = tf.data.Dataset.from_tensors((image, mask))
        x, _, weight = next(
            iter(
                make_segmentation_pipeline(
                    ds, training=False, classes=2, normalization="percentile"
                )
            )
        )
        batches[name] = x.numpy()
    np.testing.assert_array_equal(batches["8-bit"], batches["12-bit"])
    # The values are the percentile-stretched image (quantised to 8 bit), standardised.
    from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

    expected = (to_uint8_rgb(original, "percentile") / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(batches["8-bit"][0], expected, atol=1e-5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_segmentation_pipeline(
            tf.data.Dataset.from_tensors((original, mask)),
            training=False,
            classes=2,
            normalization="imagenet",
        )
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_folders_keep_16_bit_precision(tmp_path: Path, benchmark_data: Path) -> None:
    from micronet_tf.data import segmentation_dataset_from_folders

    original = _super1_test_image(benchmark_data)[:64, :64]
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", twelve_bit_copy(original))
    tifffile.imwrite(tmp_path / "images" / "b.tif", original)
    for stem in "ab":
        tifffile.imwrite(tmp_path / "masks" / f"{stem}_mask.tif", np.zeros((64, 64), np.uint8))
    ds = segmentation_dataset_from_folders(
        tmp_path / "images", tmp_path / "masks", ["background"], "index"
    )
    images = [element["image"].numpy() for element in ds]
    assert all(image.dtype == np.uint16 for image in images)
    np.testing.assert_array_equal(
        images[0], np.round(to_float_rgb(twelve_bit_copy(original)) * 65535)
    )
    np.testing.assert_array_equal(images[1], original.astype(np.uint16) * 257)


def test_graph_percentiles_equal_numpy(benchmark_data: Path) -> None:
    """The in-graph scaling (SavedModel, raw-image exports) matches the NumPy one."""
    from micronet_tf.models.layers import scale_to_unit_range

    original = _super1_test_image(benchmark_data)
    batch = np.stack([twelve_bit_copy(original), twelve_bit_copy(original[::-1] // 2)])
    config = Normalization.parse("percentile:1,99").to_config()
    produced = np.asarray(scale_to_unit_range(batch, config, 65535.0))
    for image, out in zip(batch, produced):
        np.testing.assert_allclose(out, scale_to_unit(image, "percentile:1,99"), atol=1e-6)
    flat = np.zeros((1, 4, 4, 3), np.uint16)  # a constant image maps to 0, not NaN
    assert np.all(np.asarray(scale_to_unit_range(flat, config, 65535.0)) == 0)
