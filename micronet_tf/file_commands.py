"""Many files at once: the ``predict`` and ``measure`` commands (go on past a bad file, report
every failure at the end, never overwrite a file they did not write themselves)."""

from __future__ import annotations

import csv
import glob
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from micronet_tf.files import OUTPUT_MANIFEST, atomic_output_path
from micronet_tf.report import PALETTE, overlay  # noqa: F401  (batch.PALETTE, as before)

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
MANIFEST = OUTPUT_MANIFEST  # what predict / measure wrote into an output folder
# The PNG text chunk in which predict's masks carry their scale and data-bar rows to measure.
MASK_RECORD_KEY = "micronet-tf"


def expand_inputs(
    inputs: Iterable[str], skip_in_folders: tuple[str, ...] = (), skip_outputs_of: str | None = None
) -> list[Path]:
    """Files, folders (their images, sorted, without names ending in ``skip_in_folders`` and,
    with ``skip_outputs_of``, without that command's own earlier outputs) and glob patterns ->
    image paths, in order, each once."""
    paths: list[Path] = []
    for item in inputs:
        matches = [Path(m) for m in sorted(glob.glob(item))] or [Path(item)]
        for path in matches:
            if path.is_dir():
                own = _command_outputs(path, skip_outputs_of) if skip_outputs_of else set()
                paths += sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES
                    and p.is_file()
                    and not p.stem.endswith(skip_in_folders)
                    and p.name not in own
                )
            else:
                paths.append(path)
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _write_png(path: Path, array: np.ndarray, record: dict | None = None) -> None:
    from PIL import Image, PngImagePlugin

    info = None
    if record is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(MASK_RECORD_KEY, json.dumps(record))
    with atomic_output_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG", pnginfo=info)


def read_mask_record(path: str | os.PathLike) -> dict | None:
    """What ``predict`` recorded in a mask PNG (pixel size, data-bar rows, source height), or
    None for other masks; an unreadable record is reported in a warning and ignored."""
    import warnings

    from PIL import Image

    try:
        with Image.open(path) as image:
            text = getattr(image, "text", {}).get(MASK_RECORD_KEY)
    except Exception:  # not a readable image: reading the mask itself reports that
        return None
    if text is None:
        return None
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        warnings.warn(
            f"mask {str(path)!r}: ignoring its {MASK_RECORD_KEY!r} record ({error})", stacklevel=2
        )
        return None
    return record


def _write_tiff(path: Path, array: np.ndarray) -> None:
    import tifffile

    with atomic_output_path(path) as temporary:
        tifffile.imwrite(temporary, array)


def _command_outputs(folder: Path, command: str) -> set[str]:
    try:
        files = json.loads((folder / MANIFEST).read_text()).get("files", {})
    except (OSError, ValueError):
        return set()
    return {name for name, by in files.items() if by == command}


class _Outputs:
    """The output folder of one batch run. A name is refused when it is an input, was written
    earlier in the same run (``a.tif`` and ``a.png`` would collide), or exists without being
    listed in the folder's manifest as written by this command (the user's own file; ``force``
    replaces it). Written files are recorded in the manifest."""

    def __init__(
        self, inputs: Sequence[Path], out: Path, command: str, force: bool = False
    ) -> None:
        self.inputs = {p.resolve() for p in inputs if p.exists()}
        self.claimed: dict[Path, str] = {}
        self.out, self.command, self.force = out, command, force
        try:
            self.files: dict[str, str] = json.loads((out / MANIFEST).read_text()).get("files", {})
        except FileNotFoundError:
            self.files = {}
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{out / MANIFEST}: unreadable ({error}); remove it, or pass --force"
            ) from None

    def claim(self, paths: Sequence[Path], source: Path) -> None:
        for path in paths:
            resolved = path.resolve()
            if resolved in self.inputs:
                raise ValueError(f"refusing to overwrite the input file {str(path)!r}")
            if resolved in self.claimed:
                raise ValueError(
                    f"output {path.name!r} was already written for "
                    f"{self.claimed[resolved]!r} (same file name stem)"
                )
            if path.exists() and not self.force and self.files.get(path.name) != self.command:
                raise FileExistsError(
                    f"{str(path)!r} exists and was not written by an earlier `micronet-tf "
                    f"{self.command}` into this folder: pass another --out, or --force to "
                    "replace it"
                )
        for path in paths:
            self.claimed[path.resolve()] = str(source)

    def record(self, *paths: Path) -> None:
        """List written files in the manifest (rewritten atomically)."""
        for path in paths:
            self.files[path.name] = self.command
        with atomic_output_path(self.out / MANIFEST) as temporary:
            temporary.write_text(json.dumps({"files": dict(sorted(self.files.items()))}, indent=1))


def _run_each(paths: Sequence[Path], work) -> dict[str, str]:
    failures: dict[str, str] = {}
    for path in paths:
        try:
            print(f"{path}: {work(path)}", flush=True)
        except Exception as error:  # reported at the end; one bad file must not stop the rest
            failures[str(path)] = f"{type(error).__name__}: {error}"
            print(f"{path}: FAILED ({failures[str(path)]})", flush=True)
    return failures


def predict_files(
    model_path: str | os.PathLike,
    inputs: Iterable[str],
    out_dir: str | os.PathLike,
    *,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    engine: str = "keras",
    activation: str = "auto",
    force: bool = False,
    mixed_precision: str | None = None,
    jit_compile: bool = False,
    databar: str | int = "auto",
    pixel_size: float | None = None,
    unit: str = "um",
    tta: str | None = None,
    uncertainty: str | None = None,
    keep_orientation: bool | None = None,
    normalization: str = "auto",
) -> dict[str, str]:
    """``<name>_mask.png`` (class index) and ``<name>_overlay.png`` per input, with
    ``uncertainty`` also ``<name>_uncertainty.tif`` (float32); returns ``{input: error}`` for
    the files that failed. Files in ``out_dir`` that an earlier ``predict`` did not write are
    never replaced (unless ``force``), and its outputs in an input folder are not segmented
    again. ``mixed_precision`` / ``jit_compile`` / ``tta`` / ``uncertainty`` /
    ``keep_orientation`` / ``normalization`` (default: as the model was trained; a dim
    image under ``"dtype"`` is named in a warning): as :func:`micronet_tf.prediction.predict`.

    ``databar``: ``"auto"`` (the file's metadata, else :func:`micronet_tf.databar.detect_databar`),
    ``"none"`` or a number of rows: the instrument's band at the bottom, left out of the
    prediction; the mask covers the rows above it, the overlay shows it dimmed. The pixel size
    is read from the file (:func:`micronet_tf.pixel_size.read_calibration`) unless
    ``pixel_size`` (in ``unit``) is given. Both are recorded in the mask PNG (text chunk
    ``micronet-tf``), where ``measure`` finds them."""
    from micronet_tf.databar import check_databar, resolve_databar
    from micronet_tf.intensity import Normalization
    from micronet_tf.pixel_size import PixelSize, read_calibration
    from micronet_tf.prediction import check_tta, predict, to_index_mask
    from micronet_tf.preprocessing import read_image, to_float_rgb

    check_tta(tta, uncertainty)  # once, before any file
    if normalization != "auto":
        Normalization.parse(normalization)

    databar = check_databar(databar)
    if pixel_size is not None and pixel_size <= 0:
        raise ValueError(f"pixel_size={pixel_size}: expected a positive number")
    given = None if pixel_size is None else PixelSize(pixel_size, pixel_size, unit, "--pixel-size")

    paths = expand_inputs(inputs, skip_outputs_of="predict")
    if not paths:
        raise ValueError("no input images found")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(
            f"model {str(model_path)!r}: no such file (expected a .keras "
            "file, or an .onnx file with --engine onnx)"
        )
    if engine == "keras":
        from micronet_tf.compute import with_precision
        from micronet_tf.saving import load_model

        # Rebuilt once here (not once per file) when another precision is asked for.
        model = with_precision(load_model(model_path, compile=False), mixed_precision)
    elif engine == "onnx":
        import onnxruntime

        try:
            model = onnxruntime.InferenceSession(str(model_path))
        except Exception as error:  # onnxruntime raises its own Fail / InvalidProtobuf types
            raise ValueError(
                f"model {str(model_path)!r} is corrupt or not an ONNX model "
                f"({type(error).__name__}: {str(error)[:200]})"
            ) from None
    else:
        raise ValueError(f"engine={engine!r}: expected 'keras' or 'onnx'")
    # Checked once here, not once per file.
    from micronet_tf.prediction import DEFAULT_MULTIPLE, _check, input_rule

    _check(
        tile, overlap, batch_size, input_rule(model) if engine == "keras" else (DEFAULT_MULTIPLE, 0)
    )
    out = Path(out_dir)
    outputs = _Outputs(paths, out, "predict", force)

    def work(path: Path) -> str:
        targets = [out / f"{path.stem}_mask.png", out / f"{path.stem}_overlay.png"]
        if uncertainty is not None:
            targets.append(out / f"{path.stem}_uncertainty.tif")
        outputs.claim(targets, path)
        image = read_image(path)
        calibration = read_calibration(path)
        scale = given or calibration.pixel_size
        height = image.shape[0]
        bar, how = resolve_databar(image, databar, metadata_height=calibration.image_height)
        result = predict(
            model,
            image[: height - bar],
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            engine=engine,
            activation=activation,
            mixed_precision=mixed_precision,
            jit_compile=jit_compile,
            tta=tta,
            uncertainty=uncertainty,
            keep_orientation=keep_orientation,
            normalization=normalization,
            name=str(path),
        )
        probabilities = result if uncertainty is None else result[0]
        mask = to_index_mask(probabilities)
        how = f"{how}: {calibration.image_height_source}" if how == "metadata" else how
        record = {
            "image": path.name,
            "source_height": height,
            "databar_rows": bar,
            "databar": how,
            "pixel_size": scale.as_dict() if scale else None,
        }
        _write_png(targets[0], mask, record)
        rgb = (to_float_rgb(image) * 255).round().astype(np.uint8)
        _write_png(targets[1], overlay(rgb, mask))
        if uncertainty is not None:
            _write_tiff(targets[2], result[1])
        outputs.record(*targets)
        names = ", ".join(target.name for target in targets)
        return (
            f"{mask.shape[1]}x{height} -> {names}; data bar: "
            f"{bar} rows ({how}); pixel size: {scale.describe() if scale else 'unknown'}"
        )

    return _run_each(paths, work)


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(key for row in rows for key in row)) or ["class", "label"]
    with atomic_output_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def find_truth(truth_dir: Path, mask_path: Path) -> Path:
    """The true mask for ``mask_path`` in ``truth_dir``: same stem, any image suffix, with or
    without a ``_mask`` ending (``a_mask.png`` pairs with ``a_mask.tif`` or ``a.tif``)."""
    stem = mask_path.stem
    base = stem[:-5] if stem.endswith("_mask") else stem
    for candidate in (stem, base, f"{base}_mask"):
        for suffix in IMAGE_SUFFIXES:
            for name in (candidate + suffix, candidate + suffix.upper()):
                if (truth_dir / name).is_file():
                    return truth_dir / name
    raise FileNotFoundError(
        f"no true mask for {mask_path.name!r} in {str(truth_dir)!r} "
        f"(looked for {stem!r}, {base!r}, {base + '_mask'!r} + .tif/.png/...)"
    )


def _size_intervals(groups: Sequence[Sequence[dict]], statistics: dict) -> dict:
    """Bootstrap intervals (mean, median) of equivalent diameter and area; ``groups``: the
    object rows of each image (images first, then objects, when there are several)."""
    from micronet_tf.measurement_statistics import bootstrap

    found = {}
    for key, column in (("equivalent_diameter", "equivalent_diameter_area"), ("area", "area")):
        intervals = bootstrap(
            [[row[column] for row in rows] for rows in groups],
            confidence=statistics["confidence"],
            resamples=statistics["bootstrap"],
            seed=statistics["seed"],
        )
        found[key] = {name: interval.to_dict() for name, interval in intervals.items()}
    return found


def _measure_one(
    mask: np.ndarray,
    truth: np.ndarray | None,
    names: Sequence[str],
    thickness: Sequence[str],
    pixel_size: float | None,
    statistics: dict,
) -> tuple[list, dict, dict]:
    """Object rows, per-class measurements with intervals, and the thickness samples of the
    ``thickness`` classes."""
    from micronet_tf import measurement_statistics as ms
    from micronet_tf.measure import (
        area_fractions,
        compare_object_sizes,
        compare_thickness,
        objects,
        thickness_samples,
    )

    fractions = area_fractions(mask, names)
    found = {index: objects(mask == index, pixel_size=pixel_size) for index in range(1, len(names))}
    block = statistics["block_size"] or ms.automatic_block_size(
        [
            float(np.median([r["equivalent_diameter_area"] for r in rows])) / (pixel_size or 1.0)
            for rows in found.values()
            if rows
        ]
    )
    blocks = ms.area_fractions_between_blocks(
        mask, len(names), confidence=statistics["confidence"], block_size=block
    )
    rows, classes, layers = [], {}, {}
    for index, name in enumerate(names):
        info: dict = {"area_fraction": fractions[name], "area_fraction_ci": blocks[index].to_dict()}
        if index > 0:  # class 0 is the background / matrix: no objects
            rows += [{"class": name, **row} for row in found[index]]
            diameters = [row["equivalent_diameter_area"] for row in found[index]]
            info.update(
                objects=len(found[index]),
                mean_equivalent_diameter=float(np.mean(diameters)) if diameters else None,
            )
            info.update(_size_intervals([found[index]], statistics))
            if truth is not None:
                result = compare_object_sizes(mask == index, truth == index)
                info["size_error"] = {k: v for k, v in result.items() if k != "errors"}
        if name in thickness:
            samples, where = thickness_samples(mask == index, pixel_size=pixel_size)
            layers[name] = samples
            interval = ms.thickness_between_blocks(
                samples, where, confidence=statistics["confidence"], pixel_size=pixel_size
            )
            info["thickness"] = {
                "mean": float(samples.mean()) if samples.size else None,
                "std": float(samples.std()) if samples.size else None,
                "samples": int(samples.size),
                "interval": interval.to_dict(),
            }
            if truth is not None:
                info["thickness_error"] = compare_thickness(
                    mask == index, truth == index, pixel_size=pixel_size
                )
        classes[name] = info
    return rows, classes, layers


def _recorded_scale(path: Path, record: dict):
    """The pixel size ``predict`` recorded in a mask, or None (a broken one with a warning)."""
    import warnings

    from micronet_tf.pixel_size import PixelSize

    if not record.get("pixel_size"):
        return None
    try:
        return PixelSize.from_dict(record["pixel_size"])
    except (KeyError, TypeError, ValueError) as error:
        warnings.warn(
            f"mask {str(path)!r}: ignoring its recorded pixel size ({error})", stacklevel=3
        )
        return None


def _all_images(images: dict, all_rows: list[dict], statistics: dict) -> dict:
    """Per class, over all measured images: area fraction (t-interval between images; one
    image: its blocks), sizes (hierarchical bootstrap), thickness (between images' means)."""
    from micronet_tf.measurement_statistics import between_images

    names = list(dict.fromkeys(name for classes in images.values() for name in classes))
    level = statistics["confidence"]
    by_image_class: dict[tuple, list[dict]] = {}
    for row in all_rows:
        by_image_class.setdefault((row["image"], row["class"]), []).append(row)
    overall = {}
    for name in names:
        # A class beyond an image's largest index (auto-named classes) covers none of it.
        fractions = [classes.get(name, {}).get("area_fraction", 0.0) for classes in images.values()]
        single = next(iter(images.values())).get(name, {}) if len(images) == 1 else {}
        cells: dict = {
            "area_fraction": float(np.mean(fractions)),
            "area_fraction_ci": single.get("area_fraction_ci")
            or between_images(
                fractions, confidence=level, what="area fractions", bounds=(0.0, 1.0)
            ).to_dict(),
        }
        if any("objects" in classes.get(name, {}) for classes in images.values()):
            groups = [by_image_class.get((image, name), []) for image in images]
            cells["objects"] = sum(len(g) for g in groups)
            cells.update(_size_intervals(groups, statistics))
        means = [
            c[name]["thickness"]["mean"]
            for c in images.values()
            if name in c and "thickness" in c[name] and c[name]["thickness"]["mean"] is not None
        ]
        if any(name in c and "thickness" in c[name] for c in images.values()):
            cells["thickness"] = {
                "images": len(means),
                "interval": single.get("thickness", {}).get("interval")
                or between_images(
                    means, confidence=level, what="mean thicknesses", bounds=(0.0, math.inf)
                ).to_dict(),
            }
        overall[name] = cells
    return overall


def _interval_columns(prefix: str, interval: dict | None) -> dict:
    interval = interval or {}
    return {
        prefix: interval.get("estimate"),
        f"{prefix}_ci_low": interval.get("low"),
        f"{prefix}_ci_high": interval.get("high"),
    }


def _summary_rows(images: dict, overall: dict, level: float, scales: dict) -> list[dict]:
    """summary.csv: one row per image and class, then one ``ALL`` row per class (over all
    images); every interval as ``<column>_ci_low`` / ``<column>_ci_high``, each
    image's scale (``pixel_size*``; the ``ALL`` rows are in the summary's one unit)."""
    rows = []
    for image, classes in [*images.items(), ("ALL", overall)]:
        scale = scales.get(image, {})
        for name, info in classes.items():
            fraction = info.get("area_fraction_ci") or {}
            row = {
                "image": image,
                "class": name,
                **_interval_columns("area_fraction", fraction),
                "area_fraction": info["area_fraction"],
                "area_fraction_ci_method": fraction.get("method"),
                "objects": info.get("objects"),
            }
            for key in ("equivalent_diameter", "area"):
                for statistic in ("mean", "median"):
                    interval = info.get(key, {}).get(statistic)
                    row.update(_interval_columns(f"{statistic}_{key}", interval))
            for key in ("matched", "missed", "mean_percent_error", "std_percent_error"):
                row[f"size_{key}"] = info.get("size_error", {}).get(key)
            row.update(
                _interval_columns("thickness_mean", info.get("thickness", {}).get("interval"))
            )
            row["thickness_percent_error"] = info.get("thickness_error", {}).get("percent_error")
            row["ci_level"] = level
            for key in ("pixel_size", "pixel_size_y", "pixel_size_unit", "pixel_size_source"):
                row[key] = scale.get(key)
            rows.append(row)
    return rows


def measure_files(
    masks: Iterable[str],
    out_dir: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    truth_dir: str | None = None,
    pixel_size: float | None = None,
    unit: str = "um",
    thickness: Sequence[str] = (),
    force: bool = False,
    confidence: float = 0.95,
    bootstrap: int = 2000,
    seed: int = 0,
    block_size: int | None = None,
    report: bool = True,
) -> dict[str, str]:
    """Per image: ``<name>_objects.csv`` (one row per object, with its class) and a size
    histogram per class; for all: ``summary.json`` / ``summary.csv`` (area fractions, object
    counts, sizes, with ``truth_dir`` the size errors, for ``thickness`` classes the layer
    thickness and its error) and ``sizes_<class>.png`` over every image. Every measurement
    comes with a ``confidence`` interval (:mod:`micronet_tf.measurement_statistics`): area
    fractions between images (one image: between blocks of ``block_size`` px, default from
    the object sizes), sizes by a ``bootstrap`` with that many resamples (``seed``),
    thickness between blocks along the layer or between images. With ``report``: a panel
    ``<name>_report.png`` per image, ``summary.png`` and ``report.html``
    (:mod:`micronet_tf.report`).
    Masks: class-index images, or the benchmark's Super colour masks. Returns ``{mask:
    error}`` for the files that failed. Files in ``out_dir`` that an earlier ``measure`` did
    not write are never replaced (unless ``force``), and when every mask fails no summary
    replaces an earlier one.

    Scale: ``pixel_size`` (in ``unit``) for every mask, else the pixel size ``predict``
    recorded in each mask (from its micrograph's file), else pixels. Each image is measured in
    its own scale and reported in one unit for all, the display unit of the smallest pixel
    (``summary.json``'s ``unit``); ``scales`` there and the ``pixel_size*`` columns of
    ``summary.csv`` say per image which size, in its own unit, and where it came from. A run
    that mixes masks with and without a scale fails the latter rather than add pixels to
    micrometres. Non-square pixels: areas and equivalent diameters are exact, lengths use
    ``sqrt(x * y)`` (:attr:`micronet_tf.pixel_size.PixelSize.length`), with a warning."""
    import warnings

    from micronet_tf import measurement_statistics as ms
    from micronet_tf import report as reporting
    from micronet_tf.measure import read_index_mask
    from micronet_tf.pixel_size import PixelSize, convert_length, display_unit

    statistics = {
        "confidence": ms.check_confidence(confidence),
        "bootstrap": ms.check_resamples(bootstrap, "bootstrap"),
        "seed": int(seed),
        "block_size": None if block_size is None else int(block_size),
    }
    if block_size is not None and (int(block_size) != block_size or block_size < 1):
        raise ValueError(f"block_size={block_size}: expected a positive whole number of pixels")
    paths = expand_inputs(
        masks,
        skip_in_folders=("_overlay", "_uncertainty"),  # predict's overlays and uncertainty maps
        skip_outputs_of="measure",
    )
    if not paths:
        raise ValueError("no mask images found")
    if pixel_size is not None and pixel_size <= 0:
        raise ValueError(f"pixel_size={pixel_size}: expected a positive number")
    given = None if pixel_size is None else PixelSize(pixel_size, pixel_size, unit, "--pixel-size")
    records = {path: read_mask_record(path) or {} for path in paths}
    scales = {path: given or _recorded_scale(path, record) for path, record in records.items()}
    known = [s for s in scales.values() if s is not None]
    if given is not None or not known:
        unit_name = given.unit if given else "px"
    else:
        unit_name = display_unit(min(convert_length(s.length, s.unit, "m") for s in known))
    unknown = [name for name in thickness if class_names and name not in class_names]
    if unknown:
        raise ValueError(f"thickness classes {unknown} are not among --classes {class_names}")
    out = Path(out_dir)
    truth_root = Path(truth_dir) if truth_dir is not None else None
    if truth_root is not None and not truth_root.is_dir():
        raise FileNotFoundError(f"truth folder {str(truth_root)!r}: no such folder")
    outputs = _Outputs(
        [*paths, *(truth_root.iterdir() if truth_root else ())], out, "measure", force
    )
    summaries = [out / "summary.json", out / "summary.csv"]
    summaries += [out / "summary.png", out / "report.html"] if report else []
    outputs.claim(summaries, Path("summary"))
    images: dict[str, dict] = {}
    image_scales: dict[str, dict] = {}
    all_rows: list[dict] = []
    panels: dict[str, Path] = {}
    notes: dict[str, list[str]] = {}

    def work(path: Path) -> str:
        mask = read_index_mask(path)
        names = (
            list(class_names) if class_names else [f"class{i}" for i in range(int(mask.max()) + 1)]
        )
        if int(mask.max()) >= len(names):
            raise ValueError(f"mask has class {int(mask.max())}, beyond --classes {names}")
        missing = [name for name in thickness if name not in names]
        if missing:
            raise ValueError(f"thickness classes {missing} are not among the classes {names}")
        truth = None
        if truth_root is not None:
            truth = read_index_mask(find_truth(truth_root, path))
            if truth.shape != mask.shape:
                raise ValueError(
                    f"true mask is {truth.shape[1]}x{truth.shape[0]}, this one "
                    f"{mask.shape[1]}x{mask.shape[0]}"
                )
        scale = scales[path]
        if scale is None and known:
            raise ValueError(
                "no pixel size recorded in this mask, while other masks of this run have one: "
                "pass --pixel-size, or measure it in a run of its own"
            )
        if scale is not None and not scale.is_square:
            warnings.warn(
                f"mask {str(path)!r}: pixels are {scale.x:g} x {scale.y:g} {scale.unit}; areas "
                "and equivalent diameters are exact, other lengths use sqrt(x * y)",
                stacklevel=2,
            )
        length = None if scale is None else scale.to(unit_name).length
        rows, classes, layers = _measure_one(mask, truth, names, thickness, length, statistics)
        targets = [out / f"{path.stem}_objects.csv"]
        drawn = [n for n in names[1:] if any(r["class"] == n for r in rows)]
        targets += [out / f"{path.stem}_{name}_sizes.png" for name in drawn]
        targets += [out / f"{path.stem}_report.png"] if report else []
        outputs.claim(targets, path)
        _write_csv(targets[0], rows)
        for name, target in zip(drawn, targets[1:]):
            values = np.array([r["equivalent_diameter_area"] for r in rows if r["class"] == name])
            intervals = classes[name]["equivalent_diameter"]
            reporting.write_size_histogram(
                target, values, intervals, f"{path.stem}: {name}", unit_name
            )
        if report:
            notes[path.name] = reporting.write_image_panel(
                targets[-1], path, mask, names, rows, classes, unit_name, layers
            )
            panels[path.name] = targets[-1]
        outputs.record(*targets)
        images[path.name] = classes
        record = records[path]
        image_scales[path.name] = {
            "pixel_size": scale.x if scale else None,
            "pixel_size_y": scale.y if scale else None,
            "pixel_size_unit": scale.unit if scale else "px",
            "pixel_size_source": scale.source if scale else None,
            "databar_rows": record.get("databar_rows"),
            "source_height": record.get("source_height"),
            "databar": record.get("databar"),
        }
        all_rows.extend({"image": path.name, **row} for row in rows)
        counts = ", ".join(
            f"{n}: {c['objects']} objects" for n, c in classes.items() if "objects" in c
        )
        fractions = ", ".join(
            f"{n} {reporting.format_interval(c['area_fraction_ci'], percent=True)}"
            for n, c in classes.items()
        )
        return f"{counts + '; ' if counts else ''}area fractions {fractions}"

    failures = _run_each(paths, work)
    if not images:  # nothing measured: keep whatever summary the folder had
        return failures
    overall = _all_images(images, all_rows, statistics)
    sizes = {}
    for name in dict.fromkeys(row["class"] for row in all_rows):
        sizes[name] = np.array(
            [r["equivalent_diameter_area"] for r in all_rows if r["class"] == name]
        )
        target = out / f"sizes_{name}.png"
        outputs.claim([target], Path("summary"))
        reporting.write_size_histogram(
            target,
            sizes[name],
            overall[name]["equivalent_diameter"],
            f"{name}: {len(images)} image(s)",
            unit_name,
        )
        outputs.record(target)
    summary = {
        "pixel_size": pixel_size,
        "unit": unit_name,
        "statistics": {**statistics, "notes": ms.METHODS},
        "all_images": overall,
        "images": images,
        "scales": image_scales,
        "failed": failures,
    }
    with atomic_output_path(out / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2))
    _write_csv(
        out / "summary.csv", _summary_rows(images, overall, statistics["confidence"], image_scales)
    )
    if report:
        names = list(overall)
        reporting.write_summary_figure(
            out / "summary.png", names, overall, images, sizes, unit_name
        )
        reporting.write_html(
            out / "report.html", summary, images, panels, out / "summary.png", notes
        )
    outputs.record(*summaries)
    for name, cells in overall.items():
        print(
            f"all {len(images)} image(s), {name}: area fraction "
            f"{reporting.format_interval(cells['area_fraction_ci'], percent=True)}"
            + (
                f"; mean diameter {reporting.format_interval(cells['equivalent_diameter']['mean'])}"
                f" {unit_name}"
                if cells.get("objects")
                else ""
            ),
            flush=True,
        )
    return failures
