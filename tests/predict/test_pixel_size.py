"""Pixel sizes read from small TIFFs written the way instruments and programs write them (FEI /
Thermo Fisher and Zeiss SEM tags, OME-XML, ImageJ, TIFF resolution tags), unit handling, and the
scale and data bar travelling from ``micronet-tf predict`` through the mask to ``measure``."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from micronet_tf.pixel_size import (
    Calibration,
    PixelSize,
    convert_length,
    display_unit,
    normalize_unit,
    read_calibration,
    read_pixel_size,
)

PIXELS = np.arange(56 * 64, dtype=np.uint16).reshape(56, 64) % 251  # 64 wide, 56 high


def fei_text(
    width: int = 64,
    height: int = 48,
    scan: str = "Scan",
    pixel_width: str = "4.65e-009",
    pixel_height: str = "4.65e-009",
) -> str:
    """The INI text of tag 34682 as FEI / Thermo Fisher SEMs write it (CRLF, exponent with three
    digits, metres), shortened: ``[Image] ResolutionY`` is the micrograph without the data bar."""
    lines = [
        "[User]",
        "Date=03/14/2024",
        "Time=11:45:09 AM",
        "User=supervisor",
        "",
        "[System]",
        "Type=SEM",
        "Source=FEG",
        "SystemType=Quanta 650 FEG",
        "",
        "[Beam]",
        "HV=15000",
        "Beam=EBeam",
        f"Scan={scan}",
        "",
        f"[{scan}]",
        "Dwelltime=3e-006",
        f"PixelWidth={pixel_width}",
        f"PixelHeight={pixel_height}",
        "HorFieldsize=2.976e-007",
        "",
        "[Image]",
        "DigitalContrast=1",
        f"ResolutionX={width}",
        f"ResolutionY={height}",
        "ZoomFactor=1",
        "",
        "[PrivateFei]",
        "DataBarSelected=DateTime HV HFW MicronBar",
        f"DatabarHeight={56 - height}",
    ]
    return "\r\n".join(lines) + "\r\n"


def zeiss_text(
    image_pixel_size: str | None = "Image Pixel Size = 4.466 nm",
    pixel_size: str = "Pixel Size = 2.233 nm",
) -> bytes:
    """Tag 34118 as Zeiss SmartSEM writes it: unnamed numbers, then pairs of an upper-case key
    and ``Label = value unit``, CRLF, in the Windows code page (µ is byte 0xB5)."""
    lines = ["0", "0", "0", "2.233e-009", "AP_WD", "WD = 8.5 mm", "AP_MAG", "Mag = 50.00 K X"]
    lines += ["AP_PIXEL_SIZE", pixel_size]
    if image_pixel_size is not None:
        lines += ["AP_IMAGE_PIXEL_SIZE", image_pixel_size]
    lines += ["DP_IMAGE_STORE", "Store resolution = 64 * 48", "AP_ACTUALKV", "EHT = 15.00 kV"]
    lines += ["DP_DETECTOR_CHANNEL", "Signal A = InLens", "AP_APERTURESIZE", "Aperture = 30.00 µm"]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def same(size: PixelSize | None, x: float, y: float, unit: str, source: str) -> bool:
    """``size`` is ``x`` by ``y`` ``unit`` from ``source`` (to float rounding)."""
    assert size is not None
    assert (size.unit, size.source) == (unit, source)
    return size.x == pytest.approx(x, rel=1e-9) and size.y == pytest.approx(y, rel=1e-9)


def write_tiff(path: Path, **kwargs) -> Path:
    tifffile.imwrite(path, PIXELS.astype(np.uint8), **kwargs)
    return path


def test_fei_thermo_fisher(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "fei.tif", extratags=[(34682, "s", 0, fei_text(), True)])
    calibration = read_calibration(path)
    size = calibration.pixel_size
    assert (size.unit, size.source) == ("nm", "FEI/Thermo Fisher metadata (Scan/PixelWidth)")
    assert size.x == pytest.approx(4.65, rel=1e-12) and size.is_square
    # [Image] ResolutionY = 48 of the file's 56 rows: 8 rows of data bar below the micrograph.
    assert calibration.image_height == 48
    assert "ResolutionY" in calibration.image_height_source
    # A single-column export names its scan section [EScan]; non-square pixels keep both sizes.
    text = fei_text(height=56, scan="EScan", pixel_width="5e-009", pixel_height="6e-009")
    path = write_tiff(tmp_path / "escan.tif", extratags=[(34682, "s", 0, text, True)])
    calibration = read_calibration(path)
    size = calibration.pixel_size
    assert size.source == "FEI/Thermo Fisher metadata (EScan/PixelWidth)"
    assert (size.x, size.y, size.unit) == (pytest.approx(5), pytest.approx(6), "nm")
    assert not size.is_square and size.length == pytest.approx(math.sqrt(30))
    assert calibration.image_height is None  # ResolutionY = the file's height: no bar


def test_zeiss_smartsem(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "zeiss.tif", extratags=[(34118, "s", 0, zeiss_text(), True)])
    calibration = read_calibration(path)
    assert same(calibration.pixel_size, 4.466, 4.466, "nm", "Zeiss SmartSEM (ap_image_pixel_size)")
    assert calibration.image_height == 48  # "Store resolution = 64 * 48" in a 56-row file
    # In µm (byte 0xB5 in the file) and picometres, as different SmartSEM versions write it.
    micro = zeiss_text(image_pixel_size="Image Pixel Size = 1.116 µm")
    path = write_tiff(tmp_path / "micro.tif", extratags=[(34118, "s", 0, micro, True)])
    assert read_pixel_size(path).x == pytest.approx(1.116) and read_pixel_size(path).unit == "um"
    pico = zeiss_text(image_pixel_size="Image Pixel Size = 558.2 pm")
    path = write_tiff(tmp_path / "pico.tif", extratags=[(34118, "s", 0, pico, True)])
    assert (read_pixel_size(path).x, read_pixel_size(path).unit) == (pytest.approx(558.2), "pm")
    # Older files have only ap_pixel_size, which refers to a 1024-pixel-wide display.
    old = zeiss_text(image_pixel_size=None, pixel_size="Pixel Size = 2.233 nm")
    path = write_tiff(tmp_path / "old.tif", extratags=[(34118, "s", 0, old, True)])
    size = read_pixel_size(path)
    assert size.x == pytest.approx(2.233 * 1024 / 64) and size.unit == "nm"
    assert size.source == "Zeiss SmartSEM (ap_pixel_size x 1024 / image width 64)"


def test_ome_imagej_and_resolution_tags(tmp_path: Path) -> None:
    ome = write_tiff(tmp_path / "ome.tif", ome=True, metadata={"PhysicalSizeX": 0.25})
    assert same(read_pixel_size(ome), 250, 250, "nm", "OME-TIFF PhysicalSizeX/Y")
    metadata = {"PhysicalSizeX": 2.0, "PhysicalSizeXUnit": "nm"}
    metadata |= {"PhysicalSizeY": 3.0, "PhysicalSizeYUnit": "Å"}
    ome = write_tiff(tmp_path / "ome_nm.tif", ome=True, metadata=metadata)
    assert same(read_pixel_size(ome), 2000, 300, "pm", "OME-TIFF PhysicalSizeX/Y")  # 2 x 0.3 nm

    # ImageJ writes pixels per unit in the resolution tags and escapes µ in its description.
    for unit in ("\\u00B5m", "micron", "um"):
        path = write_tiff(
            tmp_path / "imagej.tif", imagej=True, resolution=(4.0, 4.0), metadata={"unit": unit}
        )
        assert same(read_pixel_size(path), 250, 250, "nm", "ImageJ unit + resolution tags")
    path = write_tiff(
        tmp_path / "imagej_px.tif", imagej=True, resolution=(4.0, 4.0), metadata={"unit": "pixel"}
    )
    assert read_pixel_size(path) is None

    path = write_tiff(tmp_path / "cm.tif", resolution=(1e5, 2e5), resolutionunit="CENTIMETER")
    assert same(read_pixel_size(path), 100, 50, "nm", "TIFF resolution tags (cm)")


def test_screen_resolutions_are_not_a_scale(tmp_path: Path) -> None:
    """300 / 72 dpi (also written in cm) and PNG / JPEG dpi give None; an inch resolution that
    only a calibrating program writes (a pixel under 1 µm) is taken."""
    for dpi in (300, 72, 96):
        path = write_tiff(tmp_path / f"{dpi}.tif", resolution=(dpi, dpi), resolutionunit="INCH")
        assert read_pixel_size(path) is None, dpi
    per_cm = 72 / 2.54  # 28.35 pixels per cm: an editor's 72 dpi in metric
    path = write_tiff(tmp_path / "72cm.tif", resolution=(per_cm, per_cm), resolutionunit=3)
    assert read_pixel_size(path) is None
    path = write_tiff(tmp_path / "plain.tif")  # tifffile's default: 1 / 1, unit NONE
    assert read_pixel_size(path) is None
    fine = 2.54e7  # pixels per inch: 1 nm pixels
    path = write_tiff(tmp_path / "fine.tif", resolution=(fine, fine), resolutionunit="INCH")
    assert same(read_pixel_size(path), 1, 1, "nm", "TIFF resolution tags (inch)")
    for suffix in ("png", "jpg"):
        Image.fromarray(PIXELS.astype(np.uint8)).save(tmp_path / f"a.{suffix}", dpi=(300, 300))
        assert read_calibration(tmp_path / f"a.{suffix}") == Calibration()
        assert read_pixel_size(tmp_path / f"a.{suffix}") is None


def test_order_of_trust_and_malformed_metadata(tmp_path: Path) -> None:
    both = [(34682, "s", 0, fei_text(), True)]
    path = write_tiff(
        tmp_path / "both.tif", extratags=both, resolution=(1e5, 1e5), resolutionunit=3
    )
    assert read_pixel_size(path).source.startswith("FEI")
    # A broken FEI size is named in a warning and the next source is used.
    broken = [(34682, "s", 0, fei_text(pixel_width="-1"), True)]
    path = write_tiff(
        tmp_path / "broken.tif", extratags=broken, resolution=(1e5, 1e5), resolutionunit=3
    )
    with pytest.warns(UserWarning, match=r"broken.tif.*FEI.*PixelWidth=-1"):
        size = read_pixel_size(path)
    assert same(size, 100, 100, "nm", "TIFF resolution tags (cm)")
    # A resized FEI image (ResolutionX is not the width): its size no longer applies.
    resized = [(34682, "s", 0, fei_text(width=128), True)]
    path = write_tiff(tmp_path / "resized.tif", extratags=resized)
    with pytest.warns(UserWarning, match=r"resized.tif.*ResolutionX=128.*64 pixels wide"):
        assert read_calibration(path).pixel_size is None
    # A unit mix-up (a pixel of 4.65 km) and a Zeiss size without a unit.
    huge = [(34682, "s", 0, fei_text(pixel_width="4650", pixel_height="4650"), True)]
    with pytest.warns(UserWarning, match="implausible"):
        assert read_pixel_size(write_tiff(tmp_path / "huge.tif", extratags=huge)) is None
    bare = zeiss_text(image_pixel_size="Image Pixel Size = 4.466")
    with pytest.warns(UserWarning, match=r"Zeiss.*ap_image_pixel_size"):
        path = write_tiff(tmp_path / "bare.tif", extratags=[(34118, "s", 0, bare, True)])
        assert read_pixel_size(path) is None
    (tmp_path / "not.tif").write_bytes(b"not a tiff")
    with pytest.warns(UserWarning, match=r"not.tif.*could not be read"):
        assert read_pixel_size(tmp_path / "not.tif") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good file warns about nothing
        read_calibration(write_tiff(tmp_path / "fei.tif", extratags=both))


def test_units() -> None:
    for spelling in ("um", "µm", "μm", "micron", "Microns", "micrometre", "\\u00B5m"):
        assert normalize_unit(spelling) == "um", spelling
    assert [normalize_unit(u) for u in ("Å", "Å", "angstrom", "nanometer", "PM")] == [
        "Å",
        "Å",
        "Å",
        "nm",
        "pm",
    ]
    with pytest.raises(ValueError, match="unit 'furlong': expected a length unit"):
        normalize_unit("furlong")
    assert convert_length(1, "µm", "nm") == pytest.approx(1000)
    assert convert_length(5, "Å", "nm") == pytest.approx(0.5)
    assert [display_unit(m) for m in (5e-12, 4.6e-9, 1.2e-6, 0.9e-3)] == ["pm", "nm", "um", "um"]
    size = PixelSize(4.65e-9, 4.65e-9, "m", "test")
    assert same(size.for_display(), 4.65, 4.65, "nm", "test")
    assert size.to("um").x == pytest.approx(4.65e-3)
    assert size.describe() == "4.65 nm/px (test)"
    assert PixelSize.from_dict(json.loads(json.dumps(size.as_dict()))) == size
    assert PixelSize(1, 1.0005, "nm", "t").is_square  # FEI's float rounding
    for bad in (0, -1, float("nan"), "1", True):
        with pytest.raises(ValueError, match="expected a positive number"):
            PixelSize(bad, 1, "nm", "t")
