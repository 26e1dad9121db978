"""``micronet-tf measure`` with intervals and its report: the Super1 test masks end to end (CI
columns, summary.json, report.html parsed, PNGs with and without an uncertainty map), and the
new flags checked."""

from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import stats

from micronet_tf.cli import main
from micronet_tf.data.benchmark import resolve_pointer
from micronet_tf.file_commands import MANIFEST, overlay
from micronet_tf.measure import read_index_mask
from micronet_tf.preprocessing import read_image, to_float_rgb

from .test_batch_cli import run_cli

CLASSES = ["matrix", "secondary", "tertiary"]


class Page(HTMLParser):
    """The parts of report.html a test looks at: headings, table cells, images."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self.notes: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag in ("h2", "td", "th") or (tag == "p" and ("class", "note") in attrs):
            self._open = tag if tag != "p" else "note"
            if tag in ("td", "th"):
                self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open == "h2":
            self.headings.append(data)
        elif self._open in ("td", "th"):
            self.rows[-1][-1] += data
        elif self._open == "note":
            self.notes.append(data)


def dark_share(panel: Path) -> float:
    """Share of near-black pixels in the top right quarter of a panel (where the uncertainty
    map goes: magma is black at zero; without a map that area holds a line of grey text)."""
    array = np.asarray(Image.open(panel).convert("RGB"))
    height, width = array.shape[:2]
    corner = array[int(0.05 * height) : height // 2, width // 2 :]
    return float((corner.max(-1) < 40).mean())


def test_super1_masks_end_to_end(tmp_path: Path, benchmark_data: Path) -> None:
    super1 = benchmark_data / "Super1"
    masks = tmp_path / "masks"
    masks.mkdir()
    for path in sorted((super1 / "test_annot").glob("*_mask.tif")):
        shutil.copy(resolve_pointer(path), masks / path.name)
    # What predict writes beside a mask, for one image: its overlay and uncertainty map.
    index = read_index_mask(masks / "spot2_0d_0_mask.tif")
    rgb = to_float_rgb(read_image(resolve_pointer(super1 / "test" / "spot2_0d_0.tif"))) * 255
    Image.fromarray(overlay(rgb.round().astype(np.uint8), index)).save(
        masks / "spot2_0d_0_overlay.png"
    )
    edges = (np.abs(np.diff(index.astype(int), axis=0, prepend=0)) > 0).astype(np.float32)
    tifffile.imwrite(masks / "spot2_0d_0_uncertainty.tif", 0.2 * edges)

    out = tmp_path / "measured"
    result = run_cli("measure", str(masks), "--classes", *CLASSES, "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all 4 image(s), secondary: area fraction" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    names = sorted(p.name for p in masks.glob("*_mask.tif"))
    assert sorted(summary["images"]) == names  # the overlay and uncertainty map were skipped
    fractions = [summary["images"][n]["secondary"]["area_fraction"] for n in names]
    overall = summary["all_images"]["secondary"]
    interval = overall["area_fraction_ci"]
    assert set(interval) == {"estimate", "low", "high", "level", "method", "n"}
    half = stats.t.ppf(0.975, 3) * np.std(fractions, ddof=1) / 2  # recomputed independently
    assert interval["estimate"] == pytest.approx(np.mean(fractions))
    assert (interval["low"], interval["high"]) == pytest.approx(
        (np.mean(fractions) - half, np.mean(fractions) + half)
    )
    assert interval["n"] == 4 and "per-image area fractions" in interval["method"]
    diameter = overall["equivalent_diameter"]["mean"]
    assert diameter["low"] < diameter["estimate"] < diameter["high"]
    assert "hierarchical" in diameter["method"] and overall["objects"] == sum(
        summary["images"][n]["secondary"]["objects"] for n in names
    )
    one = summary["images"]["spot2_0d_0_mask.tif"]["tertiary"]
    assert one["area_fraction_ci"]["n"] == 16  # 512 px: 4 x 4 blocks of 128 px
    assert one["area_fraction_ci"]["low"] < one["area_fraction"] < one["area_fraction_ci"]["high"]

    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 3 + 3 and [r["image"] for r in rows[-3:]] == ["ALL"] * 3
    for column in (
        "area_fraction",
        "mean_equivalent_diameter",
        "median_equivalent_diameter",
        "mean_area",
        "median_area",
    ):
        for row in rows:
            if row["class"] != "matrix":
                low, value, high = (
                    float(row[k]) for k in (f"{column}_ci_low", column, f"{column}_ci_high")
                )
                assert low <= value <= high, (row["image"], row["class"], column)
    assert {r["ci_level"] for r in rows} == {"0.95"}

    page = Page()
    page.feed((out / "report.html").read_text())
    assert all(name in page.headings for name in names)
    cells = [cell for row in page.rows for cell in row]
    assert all(name in cells for name in names) and "all images" in cells
    header = page.rows[0]
    assert header[:4] == ["image", "class", "objects", "area fraction"]
    all_secondary = next(r for r in page.rows if r[:2] == ["all images", "secondary"])
    expected = f"{100 * interval['estimate']:.1f} % [{100 * interval['low']:.1f}, "
    assert all_secondary[3].startswith(expected)
    assert len(page.images) == 1 + 4 and all(
        src.startswith("data:image/png;base64,") for src in page.images
    )
    missing = [n for n in page.notes if "uncertainty.tif beside the mask" in n]
    assert len(missing) == 3 and not any("spot2_0d_0_" in n for n in missing)

    panels = {n: out / n.replace(".tif", "_report.png") for n in names}
    for panel in [*panels.values(), out / "summary.png"]:
        assert Image.open(panel).size[0] > 600
    with_map = dark_share(panels["spot2_0d_0_mask.tif"])
    without = dark_share(panels["spot2_0d_4_mask.tif"])
    assert with_map > 0.2 > 0.02 > without, (with_map, without)
    listed = json.loads((out / MANIFEST).read_text())["files"]
    for name in ["report.html", "summary.png", *(p.name for p in panels.values())]:
        assert listed[name] == "measure"


def test_flags_are_checked_and_the_report_can_be_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    mask = np.zeros((200, 300), np.uint8)  # 1 x 2 blocks of 128 px: too few for an interval
    mask[50:90, 40:80] = 1
    mask[120:130, 200:260] = 1
    path = tmp_path / "small_mask.png"
    Image.fromarray(mask).save(path)
    out = tmp_path / "out"
    for flags, message in (
        (["--confidence", "1.5"], "--confidence 1.5: expected a level between 0 and 1"),
        (
            ["--bootstrap", "50"],
            "--bootstrap 50: expected a whole number of bootstrap resamples >= 100",
        ),
        (["--block-size", "0"], "--block-size 0: expected a positive whole number"),
    ):
        assert main(["measure", str(path), "--out", str(out), *flags]) == 2
        assert message in capsys.readouterr().err
    assert not out.exists()

    code = main(
        ["measure", str(path), "--out", str(out), "--no-report"]
        + ["--confidence", "0.9", "--bootstrap", "200"]
    )
    assert code == 0
    assert not (out / "report.html").exists() and not (out / "summary.png").exists()
    assert not (out / "small_mask_report.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    fraction = summary["images"]["small_mask.png"]["class1"]["area_fraction_ci"]
    assert fraction["low"] is None and "no interval" in fraction["note"]
    assert fraction["estimate"] == pytest.approx(mask.mean())
    assert summary["all_images"]["class1"]["area_fraction_ci"] == fraction  # one image
    sizes = summary["images"]["small_mask.png"]["class1"]["equivalent_diameter"]["mean"]
    assert sizes["n"] == 2 and sizes["level"] == 0.9 and "200 resamples" in sizes["method"]
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[1]["area_fraction_ci_low"] == "" and rows[1]["ci_level"] == "0.9"
    # Smaller blocks, asked for: an interval.
    code = main(["measure", str(path), "--out", str(out), "--no-report", "--block-size", "50"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    fraction = summary["images"]["small_mask.png"]["class1"]["area_fraction_ci"]
    assert fraction["n"] == 4 * 6 and fraction["low"] < fraction["estimate"] < fraction["high"]


def test_panel_finds_what_predict_wrote_beside_the_mask(tmp_path: Path) -> None:
    from micronet_tf.report import write_image_panel

    mask = np.zeros((64, 96), np.uint8)
    mask[10:30, 10:40] = 1
    path = tmp_path / "a_mask.png"
    Image.fromarray(mask).save(path)
    rows = [{"class": "grain", "equivalent_diameter_area": 27.6}]
    classes = {"matrix": {}, "grain": {"equivalent_diameter": {}}}
    panel = tmp_path / "panel.png"
    notes = write_image_panel(panel, path, mask, ["matrix", "grain"], rows, classes, "px")
    assert notes == [
        "no a_overlay.png beside the mask: classes drawn from the mask",
        "no a_uncertainty.tif beside the mask: uncertainty panel omitted",
    ]
    Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(tmp_path / "a_overlay.png")
    tifffile.imwrite(tmp_path / "a_uncertainty.tif", np.zeros((64, 95), np.float32))
    notes = write_image_panel(panel, path, mask, ["matrix", "grain"], rows, classes, "px")
    assert notes == ["a_uncertainty.tif has shape (64, 95), the mask (64, 96): panel omitted"]
    tifffile.imwrite(tmp_path / "a_uncertainty.tif", np.ones((64, 96), np.float32))
    assert write_image_panel(panel, path, mask, ["matrix", "grain"], rows, classes, "px") == []
    assert Image.open(panel).size[0] > 600
