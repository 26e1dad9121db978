"""The SEM data bar: synthetic bars in the styles instruments draw (text in the default font of
PIL's ImageDraw, a scale bar, a separating line), added below or burnt into real benchmark
micrographs (8-bit, 16-bit, and a denoised EBC image, the flattest the benchmark has), must be
found to the row (bound: exact); the benchmark's micrographs as they are must lose nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageDraw

from micronet_tf.data.benchmark import resolve_pointer
from micronet_tf.databar import check_databar, detect_databar, resolve_databar
from micronet_tf.pixel_size import read_calibration
from micronet_tf.preprocessing import read_image

IMAGES = {  # one of each kind: 8-bit Super, 16-bit Super, 1024x1024 denoised EBC
    "super8": "Super1/test/spot2_0d_0.tif",
    "super16": "Super4/test/45kx_SE_15kV-etched_0.tif",
    "ebc": "EBC1/test/050317#3_S0440016.tif",
}
TEXT = ("HV 15.00 kV | WD 5.1 mm | mag 50 000 x | HFW 2.98 um | det ETD", "Quanta 650 FEG")


@pytest.fixture(scope="module")
def micrographs(benchmark_data: Path) -> dict[str, np.ndarray]:
    return {k: read_image(resolve_pointer(benchmark_data / v)) for k, v in IMAGES.items()}


def draw_bar(width: int, rows: int, style: str) -> np.ndarray:
    """An 8-bit information band of ``rows`` x ``width`` in one instrument style."""
    background, ink = {"black": (0, 255), "white": (255, 0), "grey": (128, 255)}[
        style.split("+")[0]
    ]
    band = Image.new("L", (width, rows), background)
    draw = ImageDraw.Draw(band)
    draw.text((6, 4), TEXT[0], fill=ink)
    draw.text((6, rows - 16), TEXT[1], fill=ink)
    if style.startswith("grey"):  # a scale bar with its numbers
        draw.rectangle((width - 140, rows - 14, width - 40, rows - 9), fill=ink)
        draw.text((width - 130, rows - 30), "0    500 nm", fill=ink)
    array = np.asarray(band).copy()
    if style.endswith("line"):  # a 1-pixel line between micrograph and band
        array[0] = ink
    return array


def with_bar(image: np.ndarray, bar: np.ndarray, appended: bool) -> np.ndarray:
    """``image`` with ``bar`` below it (FEI) or burnt into its bottom rows (others)."""
    if image.dtype == np.uint16:
        bar = bar.astype(np.uint16) * 257
    bar = np.repeat(bar[..., None], image.shape[-1], axis=-1) if image.ndim == 3 else bar
    if appended:
        return np.concatenate([image, bar])
    burnt = image.copy()
    burnt[-len(bar) :] = bar
    return burnt


@pytest.mark.parametrize("appended", [True, False], ids=["appended", "burnt-in"])
@pytest.mark.parametrize("style", ["black", "white", "grey", "black+line", "grey+line"])
def test_bars_of_each_style_are_found_to_the_row(
    micrographs: dict[str, np.ndarray], style: str, appended: bool
) -> None:
    for name, image in micrographs.items():
        rows = 40 if image.shape[0] == 512 else 70
        barred = with_bar(image, draw_bar(image.shape[1], rows, style), appended)
        assert detect_databar(barred) == rows, (name, style)
        assert resolve_databar(barred, "auto") == (rows, "detected")


def test_bar_height_from_fei_metadata(tmp_path: Path, micrographs: dict[str, np.ndarray]) -> None:
    """A bar the pixels do not give away (noisy, as after lossy compression) is not cut by
    detection, and is cut exactly when FEI's metadata says where the micrograph ends."""
    image = micrographs["super8"][..., 0]
    noise = np.random.default_rng(0).integers(0, 12, (48, image.shape[1]))
    bar = (draw_bar(image.shape[1], 48, "black").astype(int) + noise).clip(0, 255)
    barred = np.concatenate([image, bar.astype(np.uint8)])
    assert detect_databar(barred) == 0
    assert detect_databar(barred, metadata_height=512) == 48
    text = (
        "[User]\r\nDate=03/14/2024\r\n[Scan]\r\nPixelWidth=5e-009\r\nPixelHeight=5e-009\r\n"
        "[Image]\r\nResolutionX=512\r\nResolutionY=512\r\n[PrivateFei]\r\nDatabarHeight=48\r\n"
    )
    path = tmp_path / "fei.tif"
    tifffile.imwrite(path, barred, extratags=[(34682, "s", 0, text, True)])
    calibration = read_calibration(path)
    assert calibration.image_height == 512
    found = resolve_databar(read_image(path), "auto", metadata_height=calibration.image_height)
    assert found == (48, "metadata")


def test_benchmark_micrographs_lose_nothing(benchmark_data: Path) -> None:
    """Every image of the 7 sets (train / val / test, 8- and 16-bit), as it is: no bar."""
    paths = [
        path
        for path in sorted(benchmark_data.glob("*/*/*"))
        if not path.parent.name.endswith("annot") and path.suffix.lower() in (".tif", ".png")
    ]
    assert len(paths) == 116 and len({p.parts[-3] for p in paths}) == 7
    depths = set()
    for path in paths:
        image = read_image(resolve_pointer(path))
        depths.add(image.dtype.itemsize)
        assert detect_databar(image) == 0, path
    assert depths == {1, 2}


def test_flat_regions_and_odd_images_are_not_cut(micrographs: dict[str, np.ndarray]) -> None:
    image = micrographs["super8"].copy()
    mount = image.copy()
    mount[-60:] = 0  # a uniform black region at the bottom (a mount), nothing drawn in it
    assert detect_databar(mount) == 0
    tall = with_bar(image, draw_bar(512, 200, "black"), appended=False)  # over 1/3 of the image
    assert detect_databar(tall) == 0
    assert detect_databar(tall, max_fraction=0.5) == 200
    for odd in (np.zeros((64, 64), np.uint8), np.full((70, 90), 128, np.uint8), image[:10]):
        assert detect_databar(odd) == 0
    with pytest.raises(ValueError, match="expected an HxW or HxWxC image"):
        detect_databar(np.zeros(5))


def test_databar_settings() -> None:
    image = np.zeros((100, 40), np.uint8)
    assert resolve_databar(image, "none") == (0, "none")
    assert resolve_databar(image, 12) == (12, "given")
    assert resolve_databar(image, "12") == (12, "given")
    with pytest.raises(ValueError, match="databar=100: the image has only 100 rows"):
        resolve_databar(image, 100)
    for bad in ("top", -1, 2.5):
        with pytest.raises(ValueError, match="expected 'auto', 'none' or a number of rows"):
            check_databar(bad)
    with pytest.raises(ValueError, match="metadata_height=101"):
        detect_databar(image, metadata_height=101)
    with pytest.warns(UserWarning, match="would leave 60 of 100 rows"):
        assert detect_databar(image, metadata_height=40) == 0
