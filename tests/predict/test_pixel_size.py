"""Pixel sizes read from small TIFFs written the way instruments and programs write them (FEI /
Thermo Fisher and Zeiss SEM tags, OME-XML, ImageJ, TIFF resolution tags), unit handling, and the
scale and data bar travelling from ``micronet-tf predict`` through the mask to ``measure``."""

from __future__ import annotations

import csv
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
    with pytest.raises(ValueError, match="unit='furlong': expected a length unit"):
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


def test_scale_and_bar_travel_from_predict_to_measure(
    tmp_path: Path, benchmark_data: Path, capsys: pytest.CaptureFixture
) -> None:
    """An FEI-style TIFF with a data bar, through ``micronet-tf predict`` and ``measure``: the
    bar is left out of the mask (its height from the metadata), the pixel size travels in the
    mask, measure reports nanometres and names the source; ``--pixel-size`` overrides both."""
    from PIL import ImageDraw

    from micronet_tf.cli import main
    from micronet_tf.data.benchmark import resolve_pointer
    from micronet_tf.models import create_segmentation_model
    from micronet_tf.preprocessing import read_image

    names = ["matrix", "secondary", "tertiary"]
    model = create_segmentation_model(
        "Unet", "resnet18", classes=3, activation="softmax", class_names=names
    )
    model.save(tmp_path / "unet.keras")
    micrograph = read_image(resolve_pointer(benchmark_data / "Super1/test/spot2_0d_0.tif"))
    band = Image.new("L", (128, 24), 0)
    ImageDraw.Draw(band).text((4, 6), "HV 15.00 kV  HFW 640 nm", fill=255)
    barred = np.concatenate([micrograph[:128, :128, 0], np.asarray(band)])
    text = fei_text(width=128, height=128, pixel_width="5e-009", pixel_height="5e-009")
    tifffile.imwrite(tmp_path / "fei.tif", barred, extratags=[(34682, "s", 0, text, True)])

    predict = ["predict", str(tmp_path / "unet.keras"), str(tmp_path / "fei.tif")]
    predict += ["--tile", "128", "--overlap", "0"]
    assert main([*predict, "--out", str(tmp_path / "seg")]) == 0
    printed = capsys.readouterr().out
    bar = "data bar: 24 rows (metadata: FEI/Thermo Fisher metadata ([Image] ResolutionY))"
    assert bar in printed
    assert "pixel size: 5 nm/px (FEI/Thermo Fisher metadata (Scan/PixelWidth))" in printed
    mask = np.asarray(Image.open(tmp_path / "seg/fei_mask.png"))
    assert mask.shape == (128, 128)  # the micrograph only
    shown = np.asarray(Image.open(tmp_path / "seg/fei_overlay.png"))
    assert shown.shape == (152, 128, 3)  # the whole file, the bar dimmed and untinted
    assert np.array_equal(shown[128:, :, 1], barred[128:] // 2)
    record = json.loads(Image.open(tmp_path / "seg/fei_mask.png").text["micronet-tf"])
    assert (record["databar_rows"], record["source_height"]) == (24, 152)

    classes = ["--classes", *names]
    assert main(["measure", str(tmp_path / "seg"), *classes, "--out", str(tmp_path / "m")]) == 0
    summary = json.loads((tmp_path / "m/summary.json").read_text())
    scale = summary["scales"]["fei_mask.png"]
    assert summary["unit"] == "nm" and scale["pixel_size_unit"] == "nm"
    assert scale["pixel_size"] == pytest.approx(5) and scale["databar_rows"] == 24
    assert scale["pixel_size_source"] == "FEI/Thermo Fisher metadata (Scan/PixelWidth)"
    with open(tmp_path / "m/fei_mask_objects.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["class"] == "secondary"]
    assert sum(float(r["area"]) for r in rows) == pytest.approx((mask == 1).sum() * 25)

    # --pixel-size overrides the file's (predict) and the mask's (measure).
    given_flags = ["--pixel-size", "2", "--unit", "nm", "--databar", "none"]
    assert main([*predict, *given_flags, "--out", str(tmp_path / "given")]) == 0
    assert "data bar: 0 rows (none); pixel size: 2 nm/px (--pixel-size)" in capsys.readouterr().out
    given = Image.open(tmp_path / "given/fei_mask.png")
    assert np.asarray(given).shape == (152, 128)
    assert json.loads(given.text["micronet-tf"])["pixel_size"]["source"] == "--pixel-size"
    measure = ["measure", str(tmp_path / "given"), *classes, "--pixel-size", "0.01"]
    assert main([*measure, "--out", str(tmp_path / "o")]) == 0
    summary = json.loads((tmp_path / "o/summary.json").read_text())
    assert summary["unit"] == "um" and summary["pixel_size"] == 0.01
    scale = summary["scales"]["fei_mask.png"]
    assert (scale["pixel_size"], scale["pixel_size_source"]) == (0.01, "--pixel-size")


def write_mask(path: Path, pixel_size: dict | None, text: str | None = None) -> Path:
    """A 40 x 40 class-index mask with one 10 x 10 object, carrying a record as predict does."""
    from PIL import PngImagePlugin

    mask = np.zeros((40, 40), np.uint8)
    mask[5:15, 5:15] = 1
    info = PngImagePlugin.PngInfo()
    record = {"pixel_size": pixel_size, "databar_rows": 0, "source_height": 40}
    info.add_text("micronet-tf", text if text is not None else json.dumps(record))
    Image.fromarray(mask).save(path, pnginfo=info)
    return path


def test_measure_masks_of_different_scales(tmp_path: Path) -> None:
    from micronet_tf.file_commands import measure_files

    def nm(x: float, y: float | None = None, unit: str = "nm") -> dict:
        return {"x": x, "y": x if y is None else y, "unit": unit, "source": "test"}

    a = write_mask(tmp_path / "a_mask.png", nm(5))
    b = write_mask(tmp_path / "b_mask.png", nm(0.002, unit="um"))  # 2 nm
    plain = write_mask(tmp_path / "c_mask.png", None)
    out = tmp_path / "out"
    assert measure_files([str(a), str(b)], out, class_names=["bg", "fg"]) == {}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unit"] == "nm"  # the display unit of the smallest pixel
    assert summary["scales"]["b_mask.png"]["pixel_size_unit"] == "um"  # its own, as recorded
    diameters = {k: v["fg"]["mean_equivalent_diameter"] for k, v in summary["images"].items()}
    side = math.sqrt(4 * 100 / math.pi)  # of a 10 x 10 pixel object
    assert diameters == {
        "a_mask.png": pytest.approx(5 * side),
        "b_mask.png": pytest.approx(2 * side),
    }

    # A run mixing masks with and without a scale fails the latter, not the summary's units.
    failures = measure_files([str(a), str(plain)], tmp_path / "mixed", class_names=["bg", "fg"])
    assert list(failures) == [str(plain)] and "no pixel size recorded" in failures[str(plain)]

    # Non-square pixels: areas exact, lengths from sqrt(x * y), with a warning.
    odd = write_mask(tmp_path / "d_mask.png", nm(2, 8))
    with pytest.warns(UserWarning, match=r"d_mask.png.*2 x 8 nm"):
        measure_files([str(odd)], tmp_path / "odd", class_names=["bg", "fg"])
    rows = (tmp_path / "odd/d_mask_objects.csv").read_text().splitlines()
    header, values = rows[0].split(","), rows[1].split(",")
    assert float(values[header.index("area")]) == pytest.approx(100 * 16)

    # A broken record is named and ignored: pixels, as for any other mask.
    broken = write_mask(tmp_path / "e_mask.png", None, text="{not json")
    with pytest.warns(UserWarning, match=r"e_mask.png.*micronet-tf"):
        measure_files([str(broken)], tmp_path / "broken", class_names=["bg", "fg"])
    assert json.loads((tmp_path / "broken/summary.json").read_text())["unit"] == "px"
