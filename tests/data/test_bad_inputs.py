"""Inputs that used to give silently wrong results are refused (or warned about) by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from micronet_tf.data.decode import colour_mask_to_index, index_mask
from micronet_tf.preprocessing import read_image, to_float_rgb

SUPER = [(0, 0, 0), (0, 0, 255), (255, 0, 0)]  # matrix, secondary, tertiary


def test_index_mask_given_a_colour_map_is_refused() -> None:
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16] = 1
    with pytest.raises(
        ValueError,
        match=r"values \[0, 1\]: it looks like a class-index mask.*"
        "mask_format='index'",
    ):
        colour_mask_to_index(mask, [None, (0, 0, 255)], "a_mask.png")
    with pytest.raises(ValueError, match="class-index mask"):
        colour_mask_to_index(np.stack([mask] * 3, -1), SUPER, "b_mask.png")
    white = (mask * 255).astype(np.uint8)  # a 0/255 binary mask is a colour mask: fine
    assert colour_mask_to_index(white, [(0, 0, 0), (255, 255, 255)], "c.png").max() == 1


def test_transparent_mask_pixels_are_refused() -> None:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, :5, 3] = 0
    with pytest.raises(ValueError, match=r"transparent pixels \(5 of 256 pixels, 2.0%\)"):
        colour_mask_to_index(rgba, SUPER, "t_mask.png")
    rgba[..., 3] = 255
    assert colour_mask_to_index(rgba, SUPER, "t_mask.png").max() == 0


def test_a_few_stray_pixels_are_counted_not_rounded_to_zero() -> None:
    rgb = np.zeros((512, 512, 3), np.uint8)
    rgb[:10, :10] = (12, 200, 7)
    with pytest.raises(ValueError, match=r"100 of 262144 pixels, 0.038%"):
        colour_mask_to_index(rgb, SUPER, "s_mask.png")
    index = np.zeros((512, 512), np.uint8)
    index[0, 0] = 7
    with pytest.raises(ValueError, match=r"1 of 262144 pixels, 0.00038%"):
        index_mask(index, 3, "i_mask.png")


def test_float_and_signed_images_are_not_guessed() -> None:
    counts = np.linspace(0, 4000, 64, dtype=np.float32).reshape(8, 8)
    with pytest.raises(ValueError, match=r"float image with values in \[0, 4000\]"):
        to_float_rgb(counts)
    with pytest.raises(ValueError, match="NaN"):
        to_float_rgb(np.full((2, 2), np.nan, np.float32))
    np.testing.assert_allclose(to_float_rgb(counts / 4000)[..., 0], counts / 4000, rtol=1e-6)
    signed = np.array([[-5, 100]], np.int16)
    with pytest.raises(ValueError, match=r"signed int16 image with negative values \(min -5\)"):
        to_float_rgb(signed)
    assert to_float_rgb(np.array([[0, 32767]], np.int16))[0, 1, 0] == pytest.approx(1.0)


def test_multi_page_tiff_uses_its_first_page_and_says_so(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(np.full((8, 8), 10, np.uint8))
        tiff.write(np.full((4, 4), 200, np.uint8))  # e.g. a thumbnail
    with pytest.warns(UserWarning, match=r"multi-page TIFF \(2 pages\); using its first page"):
        image = read_image(path)
    assert image.shape == (8, 8) and int(image.max()) == 10
