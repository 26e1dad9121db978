"""Micrograph reading and normalisation: 8/16-bit, grayscale, RGBA, the real benchmark files."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from micronet_tf.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    normalize,
    read_image,
    to_float_rgb,
)


def test_integer_images_scale_by_dtype_range() -> None:
    gray16 = np.array([[0, 65535], [32768, 1]], dtype=np.uint16)
    rgb = to_float_rgb(gray16)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[..., 0], gray16 / 65535.0, rtol=1e-6)
    rgba8 = np.full((2, 2, 4), 255, dtype=np.uint8)
    rgba8[..., 3] = 0
    np.testing.assert_array_equal(to_float_rgb(rgba8), np.ones((2, 2, 3), np.float32))


def test_normalize_uses_imagenet_statistics() -> None:
    white = np.full((1, 1, 3), 255, np.uint8)
    expected = (1 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(normalize(white)[0, 0], expected, rtol=1e-6)


def test_bad_shapes_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HxWx4, got \\(2, 2, 5\\)"):
        to_float_rgb(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(FileNotFoundError, match="absent.tif"):
        read_image(tmp_path / "absent.tif")
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="broken.tif.*could not be read"):
        read_image(broken)


def test_sixteen_bit_tiff_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "x16.tif"
    tifffile.imwrite(path, np.array([[0, 65535]], np.uint16))
    np.testing.assert_allclose(to_float_rgb(read_image(path))[0, :, 0], [0.0, 1.0])


def test_real_super_micrograph(benchmark_data: Path) -> None:
    image = read_image(benchmark_data / "Super1" / "train" / "spot7_180d_3.tif")
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert normalize(image).shape == (512, 512, 3)
