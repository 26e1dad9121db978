"""``predict`` normalises intensities as the model was trained (issue 18, part 1): the setting
stored in the model, percentiles over the whole image (never per tile), a warning naming the
file for a dim image under ``"dtype"``, and ``predict --normalization`` to override it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from micronet_tf.cli import main
from micronet_tf.data.benchmark import resolve_pointer
from micronet_tf.file_commands import predict_files
from micronet_tf.intensity import scale_to_unit
from micronet_tf.models import create_segmentation_model, set_input_normalization
from micronet_tf.prediction import predict
from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD, read_image
from tests.predict.test_predict import TOLERANCE, small_context_model, softmax

TILING = {"tile": 128, "overlap": 32}


def _benchmark_crop(benchmark_data: Path) -> np.ndarray:
    """A 200 x 240 corner of the first Super-1 test micrograph (8-bit grey)."""
    path = sorted((benchmark_data / "Super1" / "test").glob("*.tif"))[0]
    image = read_image(resolve_pointer(path))
    assert image.dtype == np.uint8
    return image[:200, :240]


def twelve_bit_copy(image: np.ndarray) -> np.ndarray:
    """The 8-bit image as a 12-bit detector in a 16-bit file writes it: values 0..4080."""
    return image.astype(np.uint16) * 16


def _percentile_model():
    model = create_segmentation_model(
        "Unet", "resnet18", classes=3, activation="softmax", encoder_depth=3,
        decoder_channels=(32, 16, 8),
    )  # fmt: skip
    set_input_normalization(model, "percentile")
    return model


def test_stored_percentile_setting_makes_a_12_bit_copy_predict_as_the_original(
    benchmark_data: Path,
) -> None:
    original = _benchmark_crop(benchmark_data)
    copy = twelve_bit_copy(original)
    model = _percentile_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # percentile: no low-range warning for the dim copy
        eight = predict(model, original, **TILING)
        twelve = predict(model, copy, **TILING, name="copy.tif")
    np.testing.assert_allclose(twelve, eight, atol=1e-6)
    # Overriding the stored setting with "dtype" sees the copy as a dim sixteenth, says so
    # (naming the image) and predicts something else.
    with pytest.warns(UserWarning, match=r"copy\.tif.*uint16 range"):
        dim = predict(model, copy, **TILING, normalization="dtype", name="copy.tif")
    assert np.abs(dim - eight).max() > 1e-3


def test_percentiles_come_from_the_whole_image_not_each_tile() -> None:
    """Tiles of a small-context model equal one whole-image call on the image scaled by its
    own percentiles; a dim gradient makes per-tile percentiles differ from them."""
    model = small_context_model()
    rows = np.linspace(200, 1200, 150)[:, None] + np.zeros((1, 230))
    noise = np.random.default_rng(0).integers(0, 300, (150, 230))
    image = (rows + noise).astype(np.uint16)
    unit = scale_to_unit(image, "percentile:1,99")
    whole = softmax(np.asarray(model(((unit - IMAGENET_MEAN) / IMAGENET_STD)[None]))[0])
    tiled = predict(model, image, tile=96, overlap=32, normalization="percentile:1,99")
    inner = np.s_[3:-3, 3:-3]
    assert np.abs(tiled[inner] - whole[inner]).max() <= TOLERANCE
    top_tile = scale_to_unit(image[:96], "percentile:1,99")  # as one tile would scale itself
    assert np.abs(top_tile - unit[:96]).max() > 0.1
    with pytest.raises(ValueError, match="'auto'"):
        predict(model, image, normalization="minmax")


def test_files_and_cli_use_the_models_setting_and_name_dim_files(
    tmp_path: Path, benchmark_data: Path
) -> None:
    original = _benchmark_crop(benchmark_data)
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "eight.tif", original)
    tifffile.imwrite(inputs / "twelve.tif", twelve_bit_copy(original))
    model_path = tmp_path / "percentile.keras"
    _percentile_model().save(model_path)

    assert predict_files(model_path, [str(inputs)], tmp_path / "auto", **TILING) == {}
    out = tmp_path / "auto"
    masks = {n: np.asarray(Image.open(out / f"{n}_mask.png")) for n in ("eight", "twelve")}
    np.testing.assert_array_equal(masks["eight"], masks["twelve"])

    # --normalization dtype overrides the stored setting: a warning names the dim file.
    with pytest.warns(UserWarning, match=r"twelve\.tif.*uses only"):
        code = main(
            ["predict", str(model_path), str(inputs), "--out", str(tmp_path / "dtype"),
             "--tile", "128", "--overlap", "32", "--normalization", "dtype"]
        )  # fmt: skip
    assert code == 0
    with pytest.raises(SystemExit):
        main(["predict", str(model_path), str(inputs), "--normalization", "percentile:9"])
