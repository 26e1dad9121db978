"""Many files at once: the ``predict`` and ``measure`` commands (go on past a bad file, report
every failure at the end, never overwrite an input)."""

from __future__ import annotations

import csv
import glob
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from micronet_tf._files import atomic_output_path

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
# Overlay colours per class index (class 0 is left uncoloured).
PALETTE = np.array([(0, 0, 0), (0, 90, 255), (255, 40, 40), (40, 220, 40), (255, 200, 0),
                    (200, 0, 255)], np.uint8)


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> image paths, in order."""
    paths: list[Path] = []
    for item in inputs:
        matches = [Path(m) for m in sorted(glob.glob(item))] or [Path(item)]
        for path in matches:
            if path.is_dir():
                paths += sorted(p for p in path.iterdir()
                                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            else:
                paths.append(path)
    return paths


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    with atomic_output_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


def _outputs_safe(outputs: Sequence[Path], inputs: Sequence[Path]) -> None:
    sources = {p.resolve() for p in inputs if p.exists()}
    clash = [str(p) for p in outputs if p.resolve() in sources]
    if clash:
        raise ValueError(f"refusing to overwrite input files: {', '.join(clash)}")


def overlay(image_rgb: np.ndarray, index_mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    colours = PALETTE[np.minimum(index_mask, len(PALETTE) - 1)].astype(np.float32)
    blended = image_rgb.astype(np.float32)
    painted = index_mask > 0
    blended[painted] = (1 - alpha) * blended[painted] + alpha * colours[painted]
    return blended.clip(0, 255).astype(np.uint8)


def predict_files(model_path: str | os.PathLike, inputs: Iterable[str],
                  out_dir: str | os.PathLike, *, tile: int = 512, overlap: int = 64,
                  batch_size: int = 4, engine: str = "keras") -> dict[str, str]:
    """``<name>_mask.png`` (class index) and ``<name>_overlay.png`` per input; returns
    ``{input: error}`` for the files that failed."""
    from micronet_tf.preprocessing import read_image, to_float_rgb
    from micronet_tf.tiling import predict, to_index_mask

    paths = expand_inputs(inputs)
    if not paths:
        raise ValueError("no input images found")
    out = Path(out_dir)
    model = model_path
    if engine == "keras":
        from micronet_tf import load_model

        model = load_model(model_path, compile=False)
    failures: dict[str, str] = {}
    for path in paths:
        try:
            targets = [out / f"{path.stem}_mask.png", out / f"{path.stem}_overlay.png"]
            _outputs_safe(targets, paths)
            image = read_image(path)
            probabilities = predict(model, image, tile=tile, overlap=overlap,
                                    batch_size=batch_size, engine=engine)
            mask = to_index_mask(probabilities)
            _write_png(targets[0], mask)
            rgb = (to_float_rgb(image) * 255).round().astype(np.uint8)
            _write_png(targets[1], overlay(rgb, mask))
            print(f"{path} -> {targets[0].name}")
        except Exception as error:  # reported at the end; one bad file must not stop the rest
            failures[str(path)] = f"{type(error).__name__}: {error}"
            print(f"{path}: FAILED ({failures[str(path)]})")
    return failures


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


def measure_files(masks: Iterable[str], out_dir: str | os.PathLike, *,
                  class_names: Sequence[str] | None = None, truth_dir: str | None = None,
                  pixel_size: float | None = None, unit: str = "px") -> dict[str, str]:
    """Per image and class: an objects CSV and a size histogram; ``summary.json`` with area
    fractions and, with ``truth_dir`` (index masks of the same names), size errors."""
    from micronet_tf.measure import area_fractions, compare_object_sizes, objects
    from micronet_tf.preprocessing import read_image

    paths = expand_inputs(masks)
    if not paths:
        raise ValueError("no mask images found")
    out = Path(out_dir)
    summary: dict = {"pixel_size": pixel_size, "unit": unit if pixel_size else "px",
                     "images": {}}
    failures: dict[str, str] = {}
    for path in paths:
        try:
            mask = read_image(path)
            if mask.ndim != 2:
                raise ValueError(f"expected a single-channel class-index mask, got {mask.shape}")
            count = int(mask.max()) + 1
            names = list(class_names) if class_names else [f"class{i}" for i in range(count)]
            entry = {"area_fractions": area_fractions(mask, names), "classes": {}}
            truth = None
            if truth_dir is not None:
                truth = read_image(Path(truth_dir) / path.name)
            for index, name in enumerate(names[1:], 1):
                rows = objects(mask == index, pixel_size=pixel_size)
                csv_path = out / f"{path.stem}_{name}_objects.csv"
                with atomic_output_path(csv_path) as temporary, open(temporary, "w",
                                                                    newline="") as handle:
                    if rows:
                        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                        writer.writeheader()
                        writer.writerows(rows)
                diameters = np.array([r["equivalent_diameter_area"] for r in rows])
                info = {"objects": len(rows),
                        "mean_equivalent_diameter": float(diameters.mean()) if rows else None}
                if rows:
                    _histogram(diameters, f"{path.stem}: {name}", summary["unit"],
                               out / f"{path.stem}_{name}_sizes.png")
                if truth is not None:
                    result = compare_object_sizes(mask == index, truth == index)
                    info["size_error"] = {k: v for k, v in result.items() if k != "errors"}
                entry["classes"][name] = info
            summary["images"][path.name] = entry
            counts = ", ".join(f"{n}: {c['objects']} objects" for n, c in entry["classes"].items())
            print(f"{path}: {counts}")
        except Exception as error:  # reported at the end; one bad file must not stop the rest
            failures[str(path)] = f"{type(error).__name__}: {error}"
            print(f"{path}: FAILED ({failures[str(path)]})")
    summary["failed"] = failures
    with atomic_output_path(out / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2))
    return failures
