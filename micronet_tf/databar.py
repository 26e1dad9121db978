"""The SEM data bar: the band of text, scale bar and settings that FEI / Thermo Fisher, Zeiss,
JEOL and Hitachi instruments burn into the bottom of a micrograph, found so that prediction
and measurement can leave it out."""

from __future__ import annotations

import warnings

import numpy as np

# A row is "drawn" (graphics, not a micrograph) when its most common exact value (the band's
# background, or a separating line) covers DRAWN_SHARE of it and almost no pixel sits near that
# value without being exactly it (DRAWN_PURITY): a drawn background is one exact value, while a
# micrograph's flattest region (detector noise, even after denoising) spreads over neighbouring
# values. "Near" is within NEAR of the image's value range.
DRAWN_SHARE = 0.4
DRAWN_PURITY = 0.9
NEAR = 0.02
# A row is "natural" (clearly a micrograph's) below these; the band must start with a sharp edge.
NATURAL_SHARE = 0.3
NATURAL_PURITY = 0.8
MIN_ROWS = 6  # a band lower than this holds no legible text
MAX_FRACTION = 1 / 3  # instruments' bands are 5-15 % of the image; more is not a band
_ABOVE = 16  # rows above the band that must look like a micrograph (at least 3/4 of them)
_BACKGROUND_SHARE = 0.5  # of the band's pixels at its background value
_CONTENT_SHARE = 0.002  # of the band's pixels (below its top 2 rows) in a contrasting colour
_CONTRAST = 0.25  # of the image's value range between background and content


def detect_databar(
    image: np.ndarray, *, metadata_height: int | None = None, max_fraction: float = MAX_FRACTION
) -> int:
    """The number of rows at the bottom of ``image`` that are an instrument's information band.

    With ``metadata_height`` (the micrograph's own height as the file records it, e.g. FEI's
    ``[Image] ResolutionY``) the answer is the rest of the rows. Otherwise the band is found from
    row statistics, conservatively, so that an image without a band loses nothing. A band is
    drawn, not imaged: its background is one exact value, with text and lines in other colours,
    while a micrograph's rows, even its flattest, spread over neighbouring values. A row is
    *drawn* when its most common value covers at least 40 % of it and at least 90 % of the
    pixels within 2 % of the image's value range of that value are exactly it (*purity*); it is
    *natural* when that share is under 30 % or that purity under 80 %. The band is the run of
    drawn rows from the bottom up, accepted only when all of these hold:

    - it is at least ``MIN_ROWS`` (6) and at most ``max_fraction`` (1/3) of the image high;
    - it starts with a sharp edge: the row just above it and at least 3/4 of the 16 rows above
      that are natural (a separating line is itself a drawn row, so it is cut with the band);
    - its most common value (the background) covers at least half of its pixels, and at least
      0.2 % of its pixels below its top two rows differ from the background by a quarter of the
      image's value range or more (text, a scale bar: content inside the band, not just an
      edge).

    So a flat region of the micrograph itself (a saturated pore, a black mount at the bottom
    of a cross-section) is not cut: its noise makes it natural, or it has no edge, or nothing
    drawn inside. On the benchmark's 116 micrographs the largest purity of any row whose most
    common value covers 30 % of it is 0.73, and no row is drawn. A band with a gradient, or one
    that a lossy format (JPEG) has blurred, is not found: the answer is then 0, and the caller
    can give the height by hand.
    """
    array = np.asarray(image)
    if array.ndim == 3:
        channels = array[..., : min(3, array.shape[-1])]
        grey = all(np.array_equal(channels[..., 0], channels[..., c]) for c in range(1, 3))
        array = channels[..., 0] if grey or channels.shape[-1] < 3 else channels.mean(axis=-1)
    if array.ndim != 2:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {np.shape(image)}")
    height = array.shape[0]
    if metadata_height is not None:
        rows = height - int(metadata_height)
        if not 0 <= rows < height:
            raise ValueError(
                f"metadata_height={metadata_height}: expected 1 to the image's {height} rows"
            )
        if rows <= height / 2:
            return rows
        warnings.warn(
            f"the metadata's image height {metadata_height} would leave {rows} of {height} rows "
            "as the data bar; ignoring it and looking for the bar in the pixels",
            stacklevel=2,
        )
    limit = int(height * max_fraction)
    value_range = float(array.max()) - float(array.min()) if array.size else 0.0
    if limit < MIN_ROWS or array.shape[1] < 2 or value_range <= 0:
        return 0
    window = array[height - min(height, limit + 1 + _ABOVE) :][::-1]  # bottom row first
    share, purity = _row_statistics(window, NEAR * value_range)
    drawn = (share >= DRAWN_SHARE) & (purity >= DRAWN_PURITY)
    rows = int(np.argmin(drawn)) if not drawn.all() else len(drawn)
    if not MIN_ROWS <= rows <= limit:
        return 0
    natural = ((share < NATURAL_SHARE) | (purity < NATURAL_PURITY))[rows : rows + 1 + _ABOVE]
    if not natural[0] or natural.mean() < 0.75:
        return 0
    band = window[:rows]
    values, counts = np.unique(band, return_counts=True)
    if counts.max() < _BACKGROUND_SHARE * band.size:
        return 0
    background = float(values[np.argmax(counts)])
    inside = np.abs(band[: rows - 2].astype(np.float64) - background) >= _CONTRAST * value_range
    if inside.sum() < _CONTENT_SHARE * band.size:
        return 0
    return rows


def _row_statistics(rows: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the share of its most common exact value, and that value's count over the
    count of pixels within ``near`` of it (its purity)."""
    ordered = np.sort(rows, axis=1)
    height, width = ordered.shape
    flat = ordered.ravel()
    starts = np.ones(flat.size, bool)
    starts[1:] = flat[1:] != flat[:-1]
    starts[::width] = True  # every row starts a run
    first = np.flatnonzero(starts)
    lengths = np.diff(np.append(first, flat.size))
    row_of = first // width
    best = np.lexsort((-lengths, row_of))  # per row, its longest run first
    leaders = best[np.flatnonzero(np.diff(np.append(-1, row_of[best])))]
    mode, count = flat[first[leaders]], lengths[leaders]
    close = np.abs(ordered.astype(np.float64) - mode[:, None].astype(np.float64)) <= near
    return count / width, count / close.sum(axis=1)


def resolve_databar(
    image: np.ndarray, databar: str | int, *, metadata_height: int | None = None
) -> tuple[int, str]:
    """Rows to cut for ``databar`` (``"auto"``, ``"none"`` or a row count) and how they were
    found: ``"metadata"``, ``"detected"``, ``"given"`` or ``"none"``."""
    height = np.shape(image)[0]
    if databar == "none":
        return 0, "none"
    if databar == "auto":
        rows = detect_databar(image, metadata_height=metadata_height)
        usable = metadata_height is not None and height - metadata_height <= height / 2
        return rows, "metadata" if usable else "detected"
    rows = int(check_databar(databar))
    if rows >= height:
        raise ValueError(f"databar={rows}: the image has only {height} rows")
    return rows, "given"


def check_databar(databar: str | int) -> str | int:
    """``"auto"``, ``"none"`` or a row count >= 0 (as an int), else a clear error."""
    if databar in ("auto", "none"):
        return databar
    try:
        rows = int(databar)
    except (TypeError, ValueError):
        rows = -1
    if isinstance(databar, float) or rows < 0:
        raise ValueError(f"databar={databar!r}: expected 'auto', 'none' or a number of rows >= 0")
    return rows
