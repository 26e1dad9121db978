"""Confidence intervals for what ``measure`` reports, with the sampling unit stated each time:
area fractions (t-intervals between images, or between blocks of one image), object sizes
(percentile bootstrap; over several images, images first, then objects within them) and layer
thickness (t-intervals between blocks along the layer, or between images).

Every interval is an :class:`Interval`. Where the data cannot support one (one image with too
few blocks, fewer than two objects), ``low`` / ``high`` are ``None`` and ``note`` says why; no
interval is ever made up. The intervals cover sampling variation only: segmentation errors, a
wrong pixel size or a field of view that does not represent the material are not in them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
MIN_RESAMPLES = 100
DEFAULT_SEED = 0
# Blocks of one image: squares of at least MIN_BLOCK px and BLOCK_FACTOR x the largest median
# object diameter; an interval needs at least MIN_BLOCKS of them.
MIN_BLOCK = 128
BLOCK_FACTOR = 2.0
MIN_BLOCKS = 9
# Blocks along a layer: at least MIN_BLOCK px and LAYER_BLOCK_FACTOR x its mean thickness long.
LAYER_BLOCK_FACTOR = 2.0
MIN_LAYER_BLOCKS = 5
# One paragraph for summary.json and report.html: how the intervals are made.
METHODS = (
    "Area fraction: over several images, a t-interval over the per-image fractions (images as "
    "independent units); for one image, an area-weighted t-interval over the fractions of "
    f"blocks of >= {MIN_BLOCK} px and >= {BLOCK_FACTOR:g}x the largest median object diameter "
    f"(at least {MIN_BLOCKS} blocks, else no interval), which treats the blocks as independent "
    "samples of a homogeneous material. Sizes (equivalent diameter, area): expanded "
    "percentile bootstrap of the mean and median; over several images hierarchical (images "
    "resampled, then the objects within them), for one image the objects are treated as "
    "independent. Layer thickness: a t-interval over blocks along the layer (the skeleton's "
    f"samples are correlated; blocks >= {MIN_BLOCK} px and {LAYER_BLOCK_FACTOR:g}x the mean "
    f"thickness, at least {MIN_LAYER_BLOCKS}), over several images a t-interval over the "
    "per-image means. Intervals cover sampling variation only, not segmentation errors."
)
# Bootstrap draws per chunk (bounds memory: about 40 bytes per draw).
_CHUNK_DRAWS = 2_000_000


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided confidence interval: ``low`` / ``high`` are ``None`` when
    the data cannot support one, and ``note`` says why (or what makes an interval
    approximate). ``n``: how many values it rests on (images, blocks or objects; ``method``
    names the units)."""

    estimate: float | None
    low: float | None
    high: float | None
    level: float
    method: str
    n: int
    note: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready: floats or ``None``; ``note`` only when there is one."""
        row = asdict(self)
        if row["note"] is None:
            del row["note"]
        return row


def check_confidence(confidence: float) -> float:
    """``confidence`` as a float strictly between 0 and 1, or a ValueError naming it."""
    value = float(confidence)
    if not 0.0 < value < 1.0:
        raise ValueError(f"confidence={confidence}: expected a level between 0 and 1, e.g. 0.95")
    return value


def check_resamples(resamples: int, name: str = "resamples") -> int:
    """``resamples`` as an int of at least MIN_RESAMPLES, or a ValueError naming it
    (``name``: the caller's argument name)."""
    if isinstance(resamples, bool) or int(resamples) != resamples or resamples < MIN_RESAMPLES:
        raise ValueError(
            f"{name}={resamples}: expected a whole number of bootstrap resamples >= "
            f"{MIN_RESAMPLES} (default {DEFAULT_RESAMPLES})"
        )
    return int(resamples)


def _none_interval(estimate: float | None, confidence: float, method: str, n: int, note: str):
    return Interval(estimate, None, None, confidence, method, n, note)


def t_interval(
    values: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    weights: Sequence[float] | None = None,
    method: str = "t-interval",
    unit: str = "values",
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Interval:
    """Student-t interval for a mean from ``n`` independent units (``n >= 2``). With
    ``weights`` (e.g. block areas) the estimate is the weighted mean and its standard error
    the ratio estimator's, ``sqrt(n / (n - 1) * sum(w_i^2 (x_i - mean)^2)) / sum(w_i)``, which
    is ``s / sqrt(n)`` for equal weights; ``n - 1`` degrees of freedom either way. An end
    beyond ``bounds`` (e.g. 0 and 1 for a fraction) is clipped to it, with a note."""
    from scipy import stats

    confidence = check_confidence(confidence)
    x = np.asarray(values, np.float64).ravel()
    w = np.ones_like(x) if weights is None else np.asarray(weights, np.float64).ravel()
    if w.shape != x.shape or (w < 0).any():
        raise ValueError(f"weights: expected {x.size} non-negative numbers, got {w.shape}")
    keep = w > 0
    x, w = x[keep], w[keep]
    n = int(x.size)
    if n == 0:
        return _none_interval(None, confidence, method, 0, f"no {unit} to average")
    estimate = float(np.sum(w * x) / np.sum(w))
    if n < 2:
        return _none_interval(estimate, confidence, method, n, f"one {unit[:-1]}: no interval")
    standard_error = float(math.sqrt(n / (n - 1) * np.sum((w * (x - estimate)) ** 2)) / np.sum(w))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * standard_error
    low, high = max(estimate - half, bounds[0]), min(estimate + half, bounds[1])
    note = None
    if standard_error == 0:
        note = f"all {n} {unit} equal: zero width"
    elif (low, high) != (estimate - half, estimate + half):
        note = f"clipped to the possible range [{bounds[0]:g}, {bounds[1]:g}]"
    return Interval(estimate, low, high, confidence, method, n, note)


def between_images(
    values: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    what: str = "values",
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Interval:
    """Interval for the mean of per-image ``values`` (each image one independent unit, equal
    weights): the variation between fields of view, which is what a second micrograph of the
    same material would show. Few images give wide intervals (t with n - 1 degrees of
    freedom: 12.7 standard errors either side for two images at 95 %)."""
    return t_interval(
        values,
        confidence=confidence,
        method=f"t-interval over per-image {what} (images as units)",
        unit="images",
        bounds=bounds,
    )


def block_edges(length: int, block: int) -> np.ndarray:
    """Edges splitting ``length`` pixels into ``length // block`` near-equal pieces, each at
    least ``block`` long (the remainder is spread over them); one piece when shorter."""
    count = max(1, length // block)
    return np.linspace(0, length, count + 1).round().astype(int)


def automatic_block_size(median_diameters_px: Sequence[float]) -> int:
    """Block side for one image: at least MIN_BLOCK px and BLOCK_FACTOR x the largest of the
    classes' median object diameters, so that most objects lie within one block."""
    largest = max((d for d in median_diameters_px if np.isfinite(d)), default=0.0)
    return max(MIN_BLOCK, int(math.ceil(BLOCK_FACTOR * largest)))


def area_fractions_between_blocks(
    index_mask: np.ndarray,
    num_classes: int,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    block_size: int = MIN_BLOCK,
    min_blocks: int = MIN_BLOCKS,
) -> list[Interval]:
    """Per class, an interval for the area fraction of one image from its blocks: the image is
    split into a grid of near-square blocks of at least ``block_size`` px, each block's
    fraction is one unit of an area-weighted t-interval (estimate = the image's fraction).

    Assumes the blocks are independent samples of a homogeneous material: true when the
    structure (objects and their clustering) is small next to a block, too narrow when it is
    not (neighbouring blocks then share objects) or when the image has a gradient. With fewer
    than ``min_blocks`` blocks there is no interval."""
    index_mask = np.asarray(index_mask)
    if index_mask.ndim != 2:
        raise ValueError(f"index_mask: expected an HxW mask, got shape {index_mask.shape}")
    if int(block_size) < 1:
        raise ValueError(f"block_size={block_size}: expected a positive number of pixels")
    rows, cols = (block_edges(s, int(block_size)) for s in index_mask.shape)
    count = (len(rows) - 1) * (len(cols) - 1)
    method = f"t-interval between {count} blocks of >= {block_size} px (blocks as units)"
    if count < min_blocks:
        fractions = np.bincount(index_mask.ravel(), minlength=num_classes) / index_mask.size
        note = (
            f"{index_mask.shape[1]}x{index_mask.shape[0]} px holds {count} block(s) of "
            f">= {block_size} px, fewer than the {min_blocks} an interval needs: no interval "
            "(measure more images, or pass a smaller block size if objects are small)"
        )
        return [
            _none_interval(float(f), confidence, method, count, note)
            for f in fractions[:num_classes]
        ]
    counts, areas = [], []
    for r0, r1 in zip(rows[:-1], rows[1:]):
        for c0, c1 in zip(cols[:-1], cols[1:]):
            block = index_mask[r0:r1, c0:c1]
            counts.append(np.bincount(block.ravel(), minlength=num_classes)[:num_classes])
            areas.append(block.size)
    fractions = np.asarray(counts, np.float64) / np.asarray(areas, np.float64)[:, None]
    return [
        t_interval(
            fractions[:, k],
            confidence=confidence,
            weights=areas,
            method=method,
            unit="blocks",
            bounds=(0.0, 1.0),
        )
        for k in range(num_classes)
    ]


def _statistic(name: str):
    if name not in ("mean", "median"):
        raise ValueError(f"statistic {name!r}: expected 'mean' or 'median'")
    return np.mean if name == "mean" else np.median


def _segment_statistics(
    ranks: np.ndarray, ordered: np.ndarray, labels: np.ndarray, count: int, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """``names`` ("mean", "median") per label 0..count-1 (NaN for an empty label) of the values
    ``ordered[ranks]``; ``ordered`` is sorted, so sorting integer keys (label, rank) sorts each
    label's values exactly (and much faster than a lexsort of floats)."""
    sizes = np.bincount(labels, minlength=count)
    found = {}
    if "mean" in names:
        with np.errstate(invalid="ignore", divide="ignore"):
            found["mean"] = np.bincount(labels, weights=ordered[ranks], minlength=count) / sizes
    if "median" in names:
        sorted_values = ordered[np.sort(labels * np.int64(ordered.size) + ranks) % ordered.size]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        filled = sizes > 0
        lower = starts[filled] + (sizes[filled] - 1) // 2
        upper = starts[filled] + sizes[filled] // 2
        found["median"] = np.full(count, np.nan)
        found["median"][filled] = (sorted_values[lower] + sorted_values[upper]) / 2
    return found


def _percentile_levels(confidence: float, units: int | None) -> tuple[float, float]:
    """Lower / upper quantile levels of a percentile interval; with ``units`` (the number of
    independent units, m) Hesterberg's expanded percentile interval: the tail levels of a
    normal interval widened from z to ``sqrt(m / (m - 1)) * t(m - 1)``, which undoes the plain
    percentile interval's narrowness for few units (its spread is ``sqrt((m - 1) / m)`` too
    small, and it uses z where t is due)."""
    from scipy import stats

    if units is None:
        return 0.5 - confidence / 2, 0.5 + confidence / 2
    widened = math.sqrt(units / (units - 1)) * stats.t.ppf(0.5 + confidence / 2, units - 1)
    tail = float(stats.norm.sf(widened))
    return tail, 1.0 - tail


def bootstrap(
    groups: Sequence[Sequence[float]],
    *,
    statistics: Sequence[str] = ("mean", "median"),
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    hierarchical: bool = True,
    expanded: bool = True,
    what: str = "objects",
) -> dict[str, Interval]:
    """Percentile-bootstrap intervals for the mean / median of values that come in groups
    (object sizes per image). The estimate is the statistic of all values pooled.

    With two or more groups and ``hierarchical`` (the default), each resample draws as many
    groups as there are, with replacement, then the values of each drawn group with
    replacement: objects of one image share its field of view, preparation and local
    composition, so they are not independent draws from the material, and the images are
    the units that are. With one group (or ``hierarchical=False``, the naive bootstrap that
    pools everything) the values are resampled directly, as if independent. ``expanded``
    (default): Hesterberg's expanded percentile levels for the number of units (images, or
    values), see :func:`_percentile_levels`; ``False``: the plain percentile interval.
    Seeded: equal inputs and ``seed`` give equal intervals."""
    confidence = check_confidence(confidence)
    resamples = check_resamples(resamples)
    functions = {name: _statistic(name) for name in statistics}
    arrays = [np.asarray(g, np.float64).ravel() for g in groups] or [np.zeros(0)]
    if not hierarchical or len(arrays) < 2:
        arrays = [np.concatenate(arrays)]
    nested = len(arrays) >= 2
    pooled = np.concatenate(arrays)
    n = int(pooled.size)
    kind = "expanded percentile bootstrap" if expanded else "percentile bootstrap"
    method = (
        f"hierarchical {kind} ({len(arrays)} images, then {what} within them; "
        f"{resamples} resamples, seed {seed})"
        if nested
        else f"{kind} over {what} ({resamples} resamples, seed {seed})"
    )
    if n < 2:
        note = f"{n} {what}: no interval"
        return {
            name: _none_interval(float(f(pooled)) if n else None, confidence, method, n, note)
            for name, f in functions.items()
        }
    order = np.argsort(pooled, kind="stable")
    ordered, rank_of = pooled[order], np.empty(n, np.int64)
    rank_of[order] = np.arange(n)
    sizes = np.array([a.size for a in arrays])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    draws: dict[str, list] = {name: [] for name in functions}
    chunk = max(1, _CHUNK_DRAWS // (int(sizes.max()) * len(arrays)))
    for done in range(0, resamples, chunk):
        batch = min(chunk, resamples - done)
        if not nested:  # equal-sized resamples: one row each (median by partition, not sort)
            values = pooled[rng.integers(0, n, size=(batch, n))]
            for name, function in functions.items():
                draws[name].append(function(values, axis=1))
            continue
        chosen = rng.integers(0, len(arrays), size=(batch, len(arrays)))  # groups drawn
        counts = sizes[chosen].ravel()  # values to draw for each (resample, drawn group)
        owner = np.repeat(np.arange(counts.size), counts)
        within = np.floor(rng.random(owner.size) * counts[owner]).astype(np.int64)
        picks = starts[chosen].ravel()[owner] + within
        labels = owner // len(arrays)  # the resample each draw belongs to
        found = _segment_statistics(rank_of[picks], ordered, labels, batch, list(functions))
        for name in functions:
            draws[name].append(found[name])
    units = len(arrays) if nested else n
    levels = _percentile_levels(confidence, units if expanded else None)
    intervals = {}
    for name, function in functions.items():
        values = np.concatenate(draws[name])
        empty = int(np.isnan(values).sum())  # resamples that drew only groups without values
        low, high = np.quantile(values[~np.isnan(values)], levels)
        notes = [f"{empty} of {resamples} resamples drew no {what}; left out"] if empty else []
        if expanded and levels[0] * values.size < 1:
            notes.append(
                f"with {units} {'images' if nested else what} the expanded level lies beyond "
                f"the {resamples} resamples: the interval is their range, likely too narrow"
            )
        note = "; ".join(notes) or None
        intervals[name] = Interval(
            float(function(pooled)), float(low), float(high), confidence, method, n, note
        )
    return intervals


def layer_direction(coordinates: np.ndarray) -> str:
    """``"columns"`` for a layer that runs left to right (its samples span more columns than
    rows), else ``"rows"``."""
    coordinates = np.asarray(coordinates)
    if coordinates.size == 0:
        return "columns"
    spans = coordinates.max(0) - coordinates.min(0)
    return "columns" if spans[1] >= spans[0] else "rows"


def thickness_between_blocks(
    thickness: np.ndarray,
    coordinates: np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    block_size: int | None = None,
    min_blocks: int = MIN_LAYER_BLOCKS,
    along: str = "auto",
    pixel_size: float | None = None,
) -> Interval:
    """Interval for a layer's mean thickness from blocks along it (column blocks for a layer
    running left to right): thickness samples along one skeleton are strongly correlated over
    about a thickness, so the samples are not the units; each block's mean thickness is, in a
    t-interval weighted by the samples per block (estimate = the mean of all samples).

    ``thickness``: the samples (physical with ``pixel_size``), ``coordinates``: their (row,
    col) pixels. Block length: ``block_size`` px, or by default at least MIN_BLOCK px and
    LAYER_BLOCK_FACTOR x the mean thickness. Assumes blocks are independent (the layer's
    roughness is shorter than a block). With fewer than ``min_blocks`` blocks there is no
    interval."""
    values = np.asarray(thickness, np.float64).ravel()
    coordinates = np.asarray(coordinates).reshape(-1, 2)
    if coordinates.shape[0] != values.size:
        raise ValueError(f"{values.size} thickness samples but {coordinates.shape[0]} coordinates")
    if along not in ("auto", "rows", "columns"):
        raise ValueError(f"along={along!r}: expected 'auto', 'rows' or 'columns'")
    if values.size == 0:
        return _none_interval(None, confidence, "thickness blocks", 0, "no layer found")
    direction = layer_direction(coordinates) if along == "auto" else along
    position = coordinates[:, 1 if direction == "columns" else 0]
    scale = 1.0 if pixel_size is None else float(pixel_size)
    if block_size is None:
        block_size = max(MIN_BLOCK, int(math.ceil(LAYER_BLOCK_FACTOR * values.mean() / scale)))
    start, stop = int(position.min()), int(position.max()) + 1
    edges = start + block_edges(stop - start, int(block_size))
    block = np.clip(np.searchsorted(edges, position, side="right") - 1, 0, len(edges) - 2)
    count = np.bincount(block, minlength=len(edges) - 1)
    sums = np.bincount(block, weights=values, minlength=len(edges) - 1)
    used = count > 0
    method = (
        f"t-interval between {int(used.sum())} {direction[:-1]} blocks of >= {block_size} px "
        "along the layer (blocks as units, weighted by skeleton samples)"
    )
    if used.sum() < min_blocks:
        note = (
            f"the layer spans {stop - start} px: {int(used.sum())} block(s) of >= {block_size} "
            f"px, fewer than the {min_blocks} an interval needs: no interval"
        )
        return _none_interval(float(values.mean()), confidence, method, int(used.sum()), note)
    return t_interval(
        sums[used] / count[used],
        confidence=confidence,
        weights=count[used],
        method=method,
        unit="blocks",
        bounds=(0.0, math.inf),
    )
