"""Many files at once: the ``predict`` and ``measure`` commands (go on past a bad file, report
every failure at the end, never overwrite a file they did not write themselves)."""

from __future__ import annotations

import csv
import glob
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from micronet_tf._files import OUTPUT_MANIFEST, atomic_output_path

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
MANIFEST = OUTPUT_MANIFEST  # what predict / measure wrote into an output folder
# Overlay colours per class index (class 0 is left uncoloured).
PALETTE = np.array(
    [(0, 0, 0), (0, 90, 255), (255, 40, 40), (40, 220, 40), (255, 200, 0), (200, 0, 255)], np.uint8
)


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


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    with atomic_output_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


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


def overlay(image_rgb: np.ndarray, index_mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """8-bit RGB micrograph with each class > 0 tinted in its palette colour."""
    colours = PALETTE[np.minimum(index_mask, len(PALETTE) - 1)].astype(np.float32)
    blended = image_rgb.astype(np.float32)
    painted = index_mask > 0
    blended[painted] = (1 - alpha) * blended[painted] + alpha * colours[painted]
    return blended.clip(0, 255).astype(np.uint8)


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
    tta: str | None = None,
    uncertainty: str | None = None,
    keep_orientation: bool | None = None,
) -> dict[str, str]:
    """``<name>_mask.png`` (class index) and ``<name>_overlay.png`` per input, with
    ``uncertainty`` also ``<name>_uncertainty.tif`` (float32); returns ``{input: error}`` for
    the files that failed. Files in ``out_dir`` that an earlier ``predict`` did not write are
    never replaced (unless ``force``), and its outputs in an input folder are not segmented
    again. ``mixed_precision`` / ``jit_compile`` / ``tta`` / ``uncertainty`` /
    ``keep_orientation``: as :func:`micronet_tf.tiling.predict`."""
    from micronet_tf.preprocessing import read_image, to_float_rgb
    from micronet_tf.tiling import check_tta, predict, to_index_mask

    check_tta(tta, uncertainty)  # once, before any file

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
        from micronet_tf import load_model
        from micronet_tf.compute import with_precision

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
    from micronet_tf.tiling import DEFAULT_MULTIPLE, _check, input_rule

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
        result = predict(
            model,
            image,
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
        )
        probabilities = result if uncertainty is None else result[0]
        mask = to_index_mask(probabilities)
        _write_png(targets[0], mask)
        rgb = (to_float_rgb(image) * 255).round().astype(np.uint8)
        _write_png(targets[1], overlay(rgb, mask))
        if uncertainty is not None:
            _write_tiff(targets[2], result[1])
        outputs.record(*targets)
        names = ", ".join(target.name for target in targets)
        return f"{mask.shape[1]}x{mask.shape[0]} -> {names}"

    return _run_each(paths, work)


def _histogram(values: np.ndarray, title: str, unit: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.4))
    axis.hist(values, bins=min(40, max(5, values.size // 3)), color="#3a7bd5")
    axis.set_xlabel(f"equivalent diameter ({unit})")
    axis.set_ylabel("objects")
    axis.set_title(title)
    figure.tight_layout()
    with atomic_output_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=90)
    plt.close(figure)


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


def _measure_one(
    mask: np.ndarray,
    truth: np.ndarray | None,
    names: Sequence[str],
    thickness: Sequence[str],
    pixel_size: float | None,
) -> tuple[list, dict]:
    from micronet_tf.measure import (
        area_fractions,
        compare_object_sizes,
        compare_thickness,
        layer_thickness,
        objects,
    )

    fractions = area_fractions(mask, names)
    rows, classes = [], {}
    for index, name in enumerate(names):
        info: dict = {"area_fraction": fractions[name]}
        if index > 0:  # class 0 is the background / matrix: no objects
            found = objects(mask == index, pixel_size=pixel_size)
            rows += [{"class": name, **row} for row in found]
            diameters = [row["equivalent_diameter_area"] for row in found]
            info.update(
                objects=len(found),
                mean_equivalent_diameter=float(np.mean(diameters)) if found else None,
            )
            if truth is not None:
                result = compare_object_sizes(mask == index, truth == index)
                info["size_error"] = {k: v for k, v in result.items() if k != "errors"}
        if name in thickness:
            samples = layer_thickness(mask == index, pixel_size=pixel_size)
            info["thickness"] = {
                "mean": float(samples.mean()) if samples.size else None,
                "std": float(samples.std()) if samples.size else None,
                "samples": int(samples.size),
            }
            if truth is not None:
                info["thickness_error"] = compare_thickness(
                    mask == index, truth == index, pixel_size=pixel_size
                )
        classes[name] = info
    return rows, classes


def _summary_rows(images: dict) -> list[dict]:
    rows = []
    for image, classes in images.items():
        for name, info in classes.items():
            row = {
                "image": image,
                "class": name,
                "area_fraction": info["area_fraction"],
                "objects": info.get("objects"),
                "mean_equivalent_diameter": info.get("mean_equivalent_diameter"),
            }
            for key in ("matched", "missed", "mean_percent_error", "std_percent_error"):
                row[f"size_{key}"] = info.get("size_error", {}).get(key)
            row["thickness_mean"] = info.get("thickness", {}).get("mean")
            row["thickness_percent_error"] = info.get("thickness_error", {}).get("percent_error")
            rows.append(row)
    return rows


def measure_files(
    masks: Iterable[str],
    out_dir: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    truth_dir: str | None = None,
    pixel_size: float | None = None,
    unit: str = "px",
    thickness: Sequence[str] = (),
    force: bool = False,
) -> dict[str, str]:
    """Per image: ``<name>_objects.csv`` (one row per object, with its class) and a size
    histogram per class; for all: ``summary.json`` / ``summary.csv`` (area fractions, object
    counts, with ``truth_dir`` the size errors, for ``thickness`` classes the layer thickness
    and its error) and ``sizes_<class>.png`` over every image. Masks: class-index images, or
    the benchmark's Super colour masks. Returns ``{mask: error}`` for the files that failed.
    Files in ``out_dir`` that an earlier ``measure`` did not write are never replaced (unless
    ``force``), and when every mask fails no summary replaces an earlier one."""
    from micronet_tf.measure import read_index_mask

    paths = expand_inputs(
        masks,
        skip_in_folders=("_overlay", "_uncertainty"),  # predict's overlays and float maps
        skip_outputs_of="measure",
    )
    if not paths:
        raise ValueError("no mask images found")
    if pixel_size is not None and pixel_size <= 0:
        raise ValueError(f"pixel_size={pixel_size}: expected a positive number")
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
    outputs.claim([out / "summary.json", out / "summary.csv"], Path("summary"))
    unit_name = unit if pixel_size else "px"
    images: dict[str, dict] = {}
    all_rows: list[dict] = []

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
        rows, classes = _measure_one(mask, truth, names, thickness, pixel_size)
        targets = [out / f"{path.stem}_objects.csv"]
        drawn = [n for n in names[1:] if any(r["class"] == n for r in rows)]
        targets += [out / f"{path.stem}_{name}_sizes.png" for name in drawn]
        outputs.claim(targets, path)
        _write_csv(targets[0], rows)
        for name, target in zip(drawn, targets[1:]):
            values = np.array([r["equivalent_diameter_area"] for r in rows if r["class"] == name])
            _histogram(values, f"{path.stem}: {name}", unit_name, target)
        outputs.record(*targets)
        images[path.name] = classes
        all_rows.extend({"image": path.name, **row} for row in rows)
        return ", ".join(
            f"{n}: {c['objects']} objects" for n, c in classes.items() if "objects" in c
        )

    failures = _run_each(paths, work)
    if not images:  # nothing measured: keep whatever summary the folder had
        return failures
    for name in dict.fromkeys(row["class"] for row in all_rows):
        values = np.array([r["equivalent_diameter_area"] for r in all_rows if r["class"] == name])
        target = out / f"sizes_{name}.png"
        outputs.claim([target], Path("summary"))
        _histogram(values, f"{name}: {len(images)} image(s)", unit_name, target)
        outputs.record(target)
    summary = {"pixel_size": pixel_size, "unit": unit_name, "images": images, "failed": failures}
    with atomic_output_path(out / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2))
    _write_csv(out / "summary.csv", _summary_rows(images))
    outputs.record(out / "summary.json", out / "summary.csv")
    return failures
