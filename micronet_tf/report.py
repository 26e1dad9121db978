"""The picture side of ``micronet-tf measure``: size histograms with their intervals, one panel
per image (overlay, uncertainty map, size histograms) and a summary page, ``report.html``
(self-contained: its PNGs are embedded as base64), with ``summary.png`` (area fractions with
error bars, size distributions). Matplotlib's Agg backend; every file written atomically."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from micronet_tf.files import atomic_output_path

_BLUE, _ORANGE = "#3a7bd5", "#e8710a"
# Overlay colours per class index (class 0 is left uncoloured).
PALETTE = np.array(
    [(0, 0, 0), (0, 90, 255), (255, 40, 40), (40, 220, 40), (255, 200, 0), (200, 0, 255)], np.uint8
)


def overlay(image_rgb: np.ndarray, index_mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """8-bit RGB micrograph with each class > 0 tinted in its palette colour. Rows below the
    mask (a data bar cut off before prediction) are kept, untinted and dimmed to half."""
    rows = index_mask.shape[0]
    colours = PALETTE[np.minimum(index_mask, len(PALETTE) - 1)].astype(np.float32)
    blended = image_rgb.astype(np.float32)
    painted = index_mask > 0
    area = blended[:rows]
    area[painted] = (1 - alpha) * area[painted] + alpha * colours[painted]
    blended[rows:] *= 0.5
    return blended.clip(0, 255).astype(np.uint8)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path, dpi: int = 100) -> None:
    with atomic_output_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi)
    _pyplot().close(figure)


def format_number(value: float) -> str:
    """Three significant digits, without an exponent from 1000 on (``4,860``)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def format_interval(interval: dict | None, *, percent: bool = False) -> str:
    """``"50.0 % [41.2, 58.8]"`` / ``"8.5 [7.9, 9.1]"`` from an interval's dict; ``""`` without
    one, ``"n/a"`` when there is no estimate, the estimate alone when there is no interval."""
    if not interval:
        return ""
    if interval.get("estimate") is None:
        return "n/a"

    def number(value: float) -> str:
        return f"{100 * value:.1f}" if percent else format_number(value)

    text = number(interval["estimate"]) + (" %" if percent else "")
    if interval.get("low") is None:
        return text + " (no interval)"
    return f"{text} [{number(interval['low'])}, {number(interval['high'])}]"


def draw_size_histogram(
    axis, values: np.ndarray, intervals: dict, label: str, unit: str, counted: str = "objects"
) -> None:
    """Histogram of object sizes (or thickness samples, ``counted``) with the mean (blue) and
    median (orange) marked, as far as ``intervals`` has them: a line at the estimate, a
    shaded band over its interval."""
    values = np.asarray(values, float)
    axis.hist(values, bins=min(40, max(5, values.size // 3)), color="#9db7d9", edgecolor="white")
    for key, colour in (("mean", _BLUE), ("median", _ORANGE)):
        interval = intervals.get(key) or {}
        if interval.get("estimate") is None:
            continue
        if interval.get("low") is not None:
            axis.axvspan(interval["low"], interval["high"], color=colour, alpha=0.22, lw=0)
        axis.axvline(
            interval["estimate"], color=colour, lw=1.8, label=f"{key} {format_interval(interval)}"
        )
    axis.set_xlabel(f"{label} ({unit})")
    axis.set_ylabel(counted)
    level = next((i["level"] for i in intervals.values() if i and i.get("level")), None)
    if level is not None and axis.get_legend_handles_labels()[0]:
        axis.legend(
            fontsize=8, title=f"{level:.0%} interval shaded", title_fontsize=8, loc="upper right"
        )


def write_size_histogram(
    path: str | os.PathLike, values: np.ndarray, intervals: dict, title: str, unit: str
) -> Path:
    """One size histogram (equivalent diameter) as a PNG, mean / median and intervals marked."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.6, 3.6))
    draw_size_histogram(axis, values, intervals, "equivalent diameter", unit)
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    _save(figure, Path(path), dpi=90)
    return Path(path)


def companion(mask_path: Path, suffix: str) -> Path:
    """The file ``predict`` wrote beside a mask: ``a_mask.png`` -> ``a_<suffix>``."""
    stem = mask_path.stem[:-5] if mask_path.stem.endswith("_mask") else mask_path.stem
    return mask_path.with_name(f"{stem}_{suffix}")


def _overlay_image(
    mask_path: Path, index_mask: np.ndarray, notes: list[str]
) -> tuple[np.ndarray, str]:
    from micronet_tf.preprocessing import read_image

    found = companion(mask_path, "overlay.png")
    if found.is_file():
        try:
            image = read_image(found)
            if image.shape[:2] == index_mask.shape:
                return image, f"overlay ({found.name})"
            notes.append(f"{found.name} is {image.shape[1]}x{image.shape[0]}, not the mask's size")
        except ValueError as error:
            notes.append(f"{found.name} unreadable ({error})")
    else:
        notes.append(f"no {found.name} beside the mask: classes drawn from the mask")
    colours = PALETTE[np.minimum(index_mask, len(PALETTE) - 1)].copy()
    colours[index_mask == 0] = 225  # light grey for class 0 (matrix / background)
    return colours, "classes (from the mask)"


def _uncertainty(mask_path: Path, shape: tuple, notes: list[str]) -> np.ndarray | None:
    found = companion(mask_path, "uncertainty.tif")
    if not found.is_file():
        notes.append(f"no {found.name} beside the mask: uncertainty panel omitted")
        return None
    import tifffile

    try:
        array = np.asarray(tifffile.imread(found), np.float32)
    except Exception as error:  # tifffile raises several types for a broken file
        notes.append(f"{found.name} unreadable ({type(error).__name__}): panel omitted")
        return None
    array = np.squeeze(array)
    if array.shape != tuple(shape):
        notes.append(f"{found.name} has shape {array.shape}, the mask {shape}: panel omitted")
        return None
    return array


def write_image_panel(
    path: str | os.PathLike,
    mask_path: Path,
    index_mask: np.ndarray,
    class_names: Sequence[str],
    rows: Sequence[dict],
    classes: dict,
    unit: str,
    thickness: dict[str, np.ndarray] | None = None,
) -> list[str]:
    """One PNG for one image: the overlay ``predict`` wrote beside the mask (or the classes
    drawn from the mask), its uncertainty map with a colour bar (``<name>_uncertainty.tif``;
    omitted when missing) and a size histogram per class with objects (for the classes in
    ``thickness``, the histogram of its thickness samples instead). Returns notes on what
    was missing."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    notes: list[str] = []
    picture, picture_title = _overlay_image(mask_path, index_mask, notes)
    uncertainty = _uncertainty(mask_path, index_mask.shape, notes)
    thickness = thickness or {}
    drawn = [n for n in class_names[1:] if n in thickness or any(r["class"] == n for r in rows)]
    columns = max(2, len(drawn))
    figure = plt.figure(figsize=(5.2 * columns, 5.4 + (3.3 if drawn else 0)), layout="constrained")
    grid = figure.add_gridspec(
        2 if drawn else 1, columns, height_ratios=[5.4, 3.3][: 1 + bool(drawn)]
    )
    top_grid = grid[0, :].subgridspec(1, 2)
    axis = figure.add_subplot(top_grid[0, 0])
    axis.imshow(picture, interpolation="nearest" if picture.shape[0] < 1024 else "antialiased")
    axis.set_title(picture_title, fontsize=10)
    axis.set_axis_off()
    handles = [
        Patch(
            color=(0.88, 0.88, 0.88) if k == 0 else PALETTE[min(k, len(PALETTE) - 1)] / 255,
            label=f"{name}: {format_interval(classes[name].get('area_fraction_ci'), percent=True)}",
        )
        for k, name in enumerate(class_names)
        if name in classes
    ]
    axis.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
        fontsize=8,
        ncol=1,
        title="area fraction [interval]",
        title_fontsize=8,
        frameon=False,
    )
    axis = figure.add_subplot(top_grid[0, 1])
    axis.set_axis_off()
    if uncertainty is not None:
        shown = axis.imshow(uncertainty, cmap="magma", interpolation="nearest")
        axis.set_title(f"uncertainty ({companion(mask_path, 'uncertainty.tif').name})", fontsize=10)
        figure.colorbar(shown, ax=axis, shrink=0.8, label="per-pixel uncertainty")
    else:
        axis.text(
            0.5,
            0.5,
            f"no uncertainty map\n({companion(mask_path, 'uncertainty.tif').name} is not\n"
            "beside the mask; predict --tta writes it)",
            ha="center",
            va="center",
            fontsize=10,
            color="#555555",
            transform=axis.transAxes,
        )
    for column, name in enumerate(drawn):
        axis = figure.add_subplot(grid[1, column])
        if name in thickness:
            interval = classes[name]["thickness"]["interval"]
            draw_size_histogram(
                axis, thickness[name], {"mean": interval}, "thickness", unit, "skeleton samples"
            )
            axis.set_title(f"{name}: layer thickness", fontsize=10)
            continue
        values = np.array([r["equivalent_diameter_area"] for r in rows if r["class"] == name])
        draw_size_histogram(
            axis, values, classes[name].get("equivalent_diameter", {}), "equivalent diameter", unit
        )
        axis.set_title(f"{name}: {values.size} objects", fontsize=10)
    figure.suptitle(mask_path.name, fontsize=12)
    _save(figure, Path(path), dpi=80)
    return notes


def write_summary_figure(
    path: str | os.PathLike,
    class_names: Sequence[str],
    overall: dict,
    images: dict,
    sizes: dict[str, np.ndarray],
    unit: str,
) -> Path:
    """``summary.png``: area fraction per class over all images with its interval as an error
    bar and each image's fraction as a dot; then one size histogram per class over all
    images, mean / median and their intervals marked."""
    plt = _pyplot()
    drawn = [n for n in class_names if sizes.get(n) is not None and len(sizes[n])]
    figure, axes = plt.subplots(
        1, 1 + len(drawn), figsize=(5.2 * (1 + len(drawn)), 4.2), layout="constrained"
    )
    axes = np.atleast_1d(axes)
    axis = axes[0]
    positions = np.arange(len(class_names))
    for k, name in enumerate(class_names):
        interval = overall.get(name, {}).get("area_fraction_ci") or {}
        estimate = interval.get("estimate")
        if estimate is None:
            continue
        axis.bar(k, 100 * estimate, color="#9db7d9", width=0.6)
        if interval.get("low") is not None:
            low, high = 100 * interval["low"], 100 * interval["high"]
            axis.errorbar(
                k,
                100 * estimate,
                yerr=[[100 * estimate - low], [high - 100 * estimate]],
                color="black",
                capsize=6,
                lw=1.5,
            )
        top = 100 * (interval["high"] if interval.get("low") is not None else estimate)
        axis.annotate(
            format_interval(interval, percent=True).replace(" [", "\n["),
            (k, top),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
        dots = [c[name]["area_fraction"] for c in images.values() if name in c]
        spread = np.linspace(-0.15, 0.15, len(dots)) if len(dots) > 1 else [0.0]
        axis.scatter(k + np.asarray(spread), 100 * np.asarray(dots), s=14, color=_ORANGE, zorder=3)
    axis.set_xticks(positions, class_names)
    axis.set_ylabel("area fraction (%)")
    axis.set_ylim(0, axis.get_ylim()[1] * 1.15)  # room for the labels, also above 100 %
    axis.set_yticks([t for t in axis.get_yticks() if 0 <= t <= 100])
    level = next(
        (c["area_fraction_ci"]["level"] for c in overall.values() if "area_fraction_ci" in c), 0.95
    )
    axis.set_title(
        f"area fraction, {len(images)} image(s)\nbars: {level:.0%} interval; dots: images",
        fontsize=10,
    )
    for axis, name in zip(axes[1:], drawn):
        draw_size_histogram(
            axis,
            sizes[name],
            overall[name].get("equivalent_diameter", {}),
            "equivalent diameter",
            unit,
        )
        axis.set_title(f"{name}: {len(sizes[name])} objects, {len(images)} image(s)", fontsize=10)
    _save(figure, Path(path), dpi=90)
    return Path(path)


def _embedded(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cell(group: str, key: str | None = None):
    def get(cells: dict) -> dict | None:
        found = cells.get(group) or {}
        return found.get(key) if key else found

    return get


_COLUMNS = (
    ("area fraction", _cell("area_fraction_ci")),
    ("mean diameter", _cell("equivalent_diameter", "mean")),
    ("median diameter", _cell("equivalent_diameter", "median")),
    ("mean area", _cell("area", "mean")),
    ("median area", _cell("area", "median")),
    ("mean thickness", _cell("thickness", "interval")),
)


def _list(title: str, items: Sequence[str]) -> str:
    if not items:
        return ""
    heading = f"<h3>{html.escape(title)}</h3>" if title else ""
    return heading + "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def _intervals(cells: dict) -> list[tuple[str, dict]]:
    """Every interval of one class's summary cells, with its column name."""
    return [(label, get(cells)) for label, get in _COLUMNS if get(cells)]


def _table(rows: list[tuple[str, str, dict]], unit: str, level: float) -> str:
    columns = [(label, get) for label, get in _COLUMNS if any(get(c) for _, _, c in rows)]
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in columns)
    body = "".join(
        f"<tr><td>{html.escape(image)}</td><td>{html.escape(name)}</td>"
        f"<td>{'' if cells.get('objects') is None else cells['objects']}</td>"
        + "".join(
            f"<td>{html.escape(format_interval(get(cells), percent=label == 'area fraction'))}</td>"
            for label, get in columns
        )
        + "</tr>"
        for image, name, cells in rows
    )
    return (
        f"<table><thead><tr><th>image</th><th>class</th><th>objects</th>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
        f"<p class=small>Each cell: estimate [{level:.0%} interval]. Lengths in "
        f"{html.escape(unit)}, areas in {html.escape(unit)}².</p>"
    )


def write_html(
    path: str | os.PathLike,
    summary: dict,
    per_image: dict[str, dict],
    panels: dict[str, Path],
    summary_png: Path,
    notes: dict[str, list[str]],
) -> Path:
    """``report.html``: the summary table over all images (intervals), the per-image table,
    ``summary.png`` and each image's panel, embedded (base64), and how each interval was made."""
    unit = summary["unit"]
    overall = summary["all_images"]
    statistics = summary["statistics"]
    overall_rows = [("all images", name, cells) for name, cells in overall.items()]
    image_rows = [
        (image, name, cells)
        for image, classes in per_image.items()
        for name, cells in classes.items()
    ]
    every = [
        (f"{image}, {name}, {label}", interval)
        for image, classes in [("all images", overall), *per_image.items()]
        for name, cells in classes.items()
        for label, interval in _intervals(cells)
    ]
    methods = sorted({interval["method"] for _, interval in every})
    where: dict[str, list[str]] = {}
    for context, interval in every:
        if interval.get("note"):
            where.setdefault(interval["note"], []).append(context)
    interval_notes = [f"{note} ({'; '.join(found)})" for note, found in where.items()]
    sections = [
        f"<section><h2>{html.escape(image)}</h2>"
        + "".join(f"<p class=note>{html.escape(n)}</p>" for n in notes.get(image, []))
        + _embedded(panels[image], f"panel of {image}")
        + "</section>"
        for image in per_image
        if image in panels
    ]
    failed = summary.get("failed") or {}
    level = statistics["confidence"]
    scale = (
        f"pixel size {summary['pixel_size']:g} {html.escape(unit)}"
        if summary["pixel_size"]
        else "no pixel size: lengths in pixels"
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>micronet-tf measure report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #eef2f7; }} td:nth-child(-n+2) {{ text-align: left; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
.small, .note {{ font-size: 0.85em; color: #555; }}
</style></head><body>
<h1>Measurements with {statistics["confidence"]:.0%} intervals</h1>
<p>{len(per_image)} image(s); {scale};
bootstrap {statistics["bootstrap"]} resamples, seed {statistics["seed"]}.
{f"<b>{len(failed)} file(s) failed</b>: " + html.escape(", ".join(failed)) if failed else ""}</p>
<h2>All images</h2>
{_table(overall_rows, unit, level)}
{_embedded(summary_png, "summary: area fractions and size distributions")}
<h2>Per image</h2>
{_table(image_rows, unit, level)}
<h2>Methods</h2>
{_list("", methods)}
{_list("Notes", interval_notes)}
<p class=small>{html.escape(statistics["notes"])}</p>
{"".join(sections)}
</body></html>
"""
    with atomic_output_path(path) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return Path(path)
