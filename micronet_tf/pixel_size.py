"""The physical size of a pixel, read from where the micrograph's file records it (FEI / Thermo
Fisher and Zeiss SEM tags, OME-XML, ImageJ and TIFF resolution tags), with unit conversion."""

from __future__ import annotations

import math
import os
import warnings
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

# Metres per unit. Spellings are normalised by _UNIT_ALIASES; "um" is the canonical micrometre
# (ASCII, as on the command line).
_METRES = {
    "m": 1.0,
    "cm": 1e-2,
    "mm": 1e-3,
    "um": 1e-6,
    "nm": 1e-9,
    "Å": 1e-10,
    "pm": 1e-12,
    "inch": 0.0254,
}
_UNIT_ALIASES = {
    "metre": "m",
    "meter": "m",
    "meters": "m",
    "metres": "m",
    "centimeter": "cm",
    "centimetre": "cm",
    "millimeter": "mm",
    "millimetre": "mm",
    "µm": "um",  # MICRO SIGN
    "μm": "um",  # GREEK SMALL LETTER MU
    "\\u00b5m": "um",  # as ImageJ escapes it in its description
    "micron": "um",
    "microns": "um",
    "micrometer": "um",
    "micrometre": "um",
    "micrometers": "um",
    "micrometres": "um",
    "nanometer": "nm",
    "nanometre": "nm",
    "nanometers": "nm",
    "nanometres": "nm",
    "picometer": "pm",
    "picometre": "pm",
    "å": "Å",  # LATIN CAPITAL LETTER A WITH RING ABOVE, lower-cased
    "Å": "Å",  # ANGSTROM SIGN
    "\\u00c5": "Å",
    "angstrom": "Å",
    "angstroms": "Å",
    "in": "inch",
    "inches": "inch",
}
# Units a pixel size is shown in (value in [1, 1000) where possible).
_DISPLAY_UNITS = ("pm", "nm", "um", "mm", "m")
# Relative difference under which x and y count as the same size (FEI writes both from floats).
_SQUARE_TOLERANCE = 1e-3
# Common screen / print resolutions (dots per inch), also when a program writes them in cm.
_SCREEN_DPI = (72, 96, 100, 120, 144, 150, 200, 240, 300, 600, 1200, 2400)


def normalize_unit(unit: str) -> str:
    """A length unit's canonical name: ``m``, ``cm``, ``mm``, ``um``, ``nm``, ``Å``, ``pm`` or
    ``inch`` (accepts ``µm``, ``micron``, ``nanometre``, ``angstrom``, ...)."""
    text = str(unit).strip()
    if text in _METRES:
        return text
    folded = text.lower()
    if folded in _METRES:
        return folded
    if text in _UNIT_ALIASES or folded in _UNIT_ALIASES:
        return _UNIT_ALIASES.get(text, _UNIT_ALIASES.get(folded))
    raise ValueError(f"unit={unit!r}: expected a length unit (m, mm, um / µm / micron, nm, pm, Å)")


def convert_length(value: float, unit: str, to: str) -> float:
    """``value`` in ``unit`` expressed in ``to`` (any spelling :func:`normalize_unit` takes),
    to 12 significant digits (5e-9 m is 5 nm, not 5.000000000000001)."""
    converted = float(value) * _METRES[normalize_unit(unit)] / _METRES[normalize_unit(to)]
    return float(f"{converted:.12g}")


def display_unit(metres: float) -> str:
    """The unit in which a length of ``metres`` reads between 1 and 1000 (pm ... m)."""
    for unit in _DISPLAY_UNITS:
        if round(metres / _METRES[unit], 9) < 1000:  # 1e-9 m is 1 nm, not 999.99... pm
            return unit
    return "m"


@dataclass(frozen=True)
class PixelSize:
    """One pixel's width ``x`` and height ``y`` in ``unit``, and where that came from."""

    x: float
    y: float
    unit: str
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit", normalize_unit(self.unit))
        for name in ("x", "y"):
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(value, (bool, str)) or not (math.isfinite(number) and number > 0):
                raise ValueError(f"pixel size {name}={value!r}: expected a positive number")
            object.__setattr__(self, name, number)

    def to(self, unit: str) -> PixelSize:
        """The same size in another unit."""
        return PixelSize(
            convert_length(self.x, self.unit, unit),
            convert_length(self.y, self.unit, unit),
            unit,
            self.source,
        )

    def for_display(self) -> PixelSize:
        """The same size in the unit that reads best (``2.5 nm``, not ``2.5e-09 m``)."""
        return self.to(display_unit(min(self.x, self.y) * _METRES[self.unit]))

    @property
    def is_square(self) -> bool:
        return abs(self.x - self.y) <= _SQUARE_TOLERANCE * max(self.x, self.y)

    @property
    def length(self) -> float:
        """The scale for measurements: ``x`` for square pixels, else ``sqrt(x * y)``, the side
        of a square pixel of the same area. Areas, and the equivalent diameters computed from
        them, are then exact; lengths along one axis are off by up to ``sqrt(max / min)``
        (:func:`micronet_tf.file_commands.measure_files` warns)."""
        return self.x if self.is_square else math.sqrt(self.x * self.y)

    def describe(self) -> str:
        shown = self.for_display()
        size = f"{shown.x:.4g}" if self.is_square else f"{shown.x:.4g} x {shown.y:.4g}"
        return f"{size} {shown.unit}/px ({self.source})"

    def as_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "unit": self.unit, "source": self.source}

    @classmethod
    def from_dict(cls, record: dict) -> PixelSize:
        return cls(record["x"], record["y"], record["unit"], record["source"])


@dataclass(frozen=True)
class Calibration:
    """What a micrograph's file says about its geometry: the pixel size and, when the
    instrument records it, the height of the micrograph itself, which is less than the file's
    when an information band (data bar) was appended below it (FEI's ``[Image] ResolutionY``)."""

    pixel_size: PixelSize | None = None
    image_height: int | None = None
    image_height_source: str | None = None


def read_pixel_size(path: str | os.PathLike) -> PixelSize | None:
    """The pixel size a micrograph's file records, or ``None`` (see :func:`read_calibration`)."""
    return read_calibration(path).pixel_size


def read_calibration(path: str | os.PathLike) -> Calibration:
    """Pixel size and micrograph height from a TIFF's metadata, trying, in order of trust:

    1. FEI / Thermo Fisher (tags 34682 / 34680): ``[Scan] PixelWidth / PixelHeight`` in metres
       (else ``[EScan]`` / ``[IScan]``); ``[Image] ResolutionY`` below the file's height gives
       the micrograph's height (the data bar is appended below it).
    2. Zeiss SmartSEM (tag 34118): ``ap_image_pixel_size`` with its unit; else ``ap_pixel_size``,
       which SmartSEM refers to a 1024-pixel-wide display, times 1024 / width (the factor
       HyperSpy's reader applies to the tag's unnamed size in metres). ``dp_image_store``
       (``1024 * 768``) below the file's height gives the micrograph's height.
    3. OME-XML ``PhysicalSizeX / Y`` (unit ``PhysicalSizeXUnit``, default µm).
    4. ImageJ's ``unit=`` with the X / YResolution tags (pixels per unit).
    5. TIFF X / YResolution with ResolutionUnit centimetre, unless the value is a common screen
       or print resolution (72, 96, 300 dpi ... written in cm: an editor's default, not a
       calibration). Resolution in inches is almost always such a default (72 / 96 dpi from
       the operating system, 300 dpi from a print setting), so it is used only when it means
       pixels under 1 µm (over 25 400 per inch): no screen or printer comes near, only a
       program that calibrated the image.

    PNG, JPEG and other files give nothing (their dpi fields are screen settings too). Metadata
    that is present but unreadable or implausible never stops a prediction: it is reported in
    a warning naming the file and ignored, and the next source is tried.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return Calibration()
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            width, height = int(page.imagewidth), int(page.imagelength)
            found = _first_of(path, tiff, page, width, height)
    except Exception as error:  # not a TIFF at all: read_image says so where it matters
        warnings.warn(
            f"image {str(path)!r}: its TIFF metadata could not be read ({type(error).__name__}: "
            f"{error}); no pixel size taken from it",
            stacklevel=2,
        )
        return Calibration()
    return found


def _first_of(path: Path, tiff, page, width: int, height: int) -> Calibration:
    readers = (
        ("FEI/Thermo Fisher metadata", lambda: _fei(tiff, width, height)),
        ("Zeiss SmartSEM metadata", lambda: _zeiss(tiff, width, height)),
        ("OME-XML", lambda: _ome(tiff)),
        ("ImageJ metadata", lambda: _imagej(tiff, page)),
        ("TIFF resolution tags", lambda: _resolution_tags(page)),
    )
    pixel_size, image_height, height_source = None, None, None
    for name, reader in readers:
        try:
            size, rows, rows_source = reader()
        except Exception as error:  # malformed metadata of one kind: say so, try the next
            warnings.warn(
                f"image {str(path)!r}: ignoring its {name}, which could not be used "
                f"({type(error).__name__}: {error})",
                stacklevel=4,
            )
            continue
        if image_height is None and rows is not None:
            image_height, height_source = rows, rows_source
        if size is not None:
            pixel_size = size.for_display()
            break
    return Calibration(pixel_size, image_height, height_source)


def _positive(value, what: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{what}={value!r}: expected a positive number")
    return number


def _plausible(size: PixelSize) -> PixelSize:
    """Refuse sizes no micrograph has (under 1 pm or over 1 cm per pixel): a unit mix-up."""
    for value in (size.x, size.y):
        metres = value * _METRES[size.unit]
        if not 1e-12 <= metres <= 1e-2:
            raise ValueError(f"a pixel size of {value:g} {size.unit} is implausible")
    return size


def _fei(tiff, width: int, height: int):
    metadata = tiff.fei_metadata
    if not metadata:
        return None, None, None
    image = metadata.get("Image") or {}
    columns = image.get("ResolutionX")
    if columns is not None and int(columns) != width:
        raise ValueError(
            f"[Image] ResolutionX={columns} but the image is {width} pixels wide (resized after "
            "acquisition?): its PixelWidth no longer applies"
        )
    rows, rows_source = None, None
    if image.get("ResolutionY") is not None:
        recorded = int(image["ResolutionY"])
        if not 0 < recorded <= height:
            raise ValueError(f"[Image] ResolutionY={recorded} for an image {height} rows high")
        if recorded < height:
            rows, rows_source = recorded, "FEI/Thermo Fisher metadata ([Image] ResolutionY)"
    for section in ("Scan", "EScan", "IScan"):
        scan = metadata.get(section) or {}
        if scan.get("PixelWidth") is None:
            continue
        x = _positive(scan["PixelWidth"], f"[{section}] PixelWidth")
        y = _positive(scan.get("PixelHeight", x), f"[{section}] PixelHeight")
        source = f"FEI/Thermo Fisher metadata ({section}/PixelWidth)"
        return _plausible(PixelSize(x, y, "m", source)), rows, rows_source
    return None, rows, rows_source


def _zeiss(tiff, width: int, height: int):
    metadata = tiff.sem_metadata
    if not metadata:
        return None, None, None
    rows, rows_source = None, None
    store = metadata.get("dp_image_store")
    if store is not None:  # ("Store resolution", "1024 * 768")
        columns, recorded = (int(part) for part in str(store[1]).split("*"))
        if columns == width and 0 < recorded < height:
            rows, rows_source = recorded, "Zeiss SmartSEM metadata (dp_image_store)"
    for key, factor in (("ap_image_pixel_size", 1.0), ("ap_pixel_size", 1024 / width)):
        entry = metadata.get(key)
        if entry is None:
            continue
        if len(entry) < 3:
            raise ValueError(f"{key}={entry!r}: expected a value with a unit")
        value = _positive(entry[1], key) * factor
        source = (
            f"Zeiss SmartSEM ({key})"
            if factor == 1.0
            else (f"Zeiss SmartSEM ({key} x 1024 / image width {width})")
        )
        return _plausible(PixelSize(value, value, entry[2], source)), rows, rows_source
    return None, rows, rows_source


def _ome(tiff):
    text = tiff.ome_metadata
    if not text:
        return None, None, None
    root = ElementTree.fromstring(text)
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or pixels.get("PhysicalSizeX") is None:
        return None, None, None
    x = _positive(pixels.get("PhysicalSizeX"), "PhysicalSizeX")
    y = _positive(pixels.get("PhysicalSizeY", x), "PhysicalSizeY")
    unit_x = pixels.get("PhysicalSizeXUnit", "µm")
    unit_y = pixels.get("PhysicalSizeYUnit", unit_x)
    y = convert_length(y, unit_y, unit_x)
    return _plausible(PixelSize(x, y, unit_x, "OME-TIFF PhysicalSizeX/Y")), None, None


def _per_pixel(page, unit: str, source: str) -> PixelSize | None:
    """1 / X|YResolution (pixels per ``unit``) as a pixel size, or None for screen defaults."""
    x_res = _rational(page.tags.valueof("XResolution"))
    y_res = _rational(page.tags.valueof("YResolution")) if "YResolution" in page.tags else x_res
    if x_res is None or y_res is None:
        return None
    if unit == "inch" and x_res <= 25400:  # a screen or print dpi, see read_calibration
        return None
    per_inch = x_res / convert_length(1, unit, "inch")
    if any(abs(per_inch - dpi) <= 0.005 * dpi for dpi in _SCREEN_DPI):
        return None  # 72 dpi written as 28.35 pixels per cm and the like
    return _plausible(PixelSize(1 / x_res, 1 / y_res, unit, source))


def _rational(value) -> float | None:
    if value is None:
        return None
    number = value[0] / value[1] if isinstance(value, tuple) else float(value)
    return number if math.isfinite(number) and number > 0 else None


def _imagej(tiff, page):
    metadata = tiff.imagej_metadata
    if not metadata or not metadata.get("unit"):
        return None, None, None
    unit = str(metadata["unit"])
    if unit.strip().lower() in ("pixel", "pixels", "px", ""):
        return None, None, None
    source = "ImageJ unit + resolution tags"
    return _per_pixel(page, normalize_unit(unit), source), None, None


def _resolution_tags(page):
    unit = page.tags.valueof("ResolutionUnit")
    if unit is None or int(unit) not in (2, 3):  # 1 = NONE: an aspect ratio only
        return None, None, None
    name = "cm" if int(unit) == 3 else "inch"
    return _per_pixel(page, name, f"TIFF resolution tags ({name})"), None, None
