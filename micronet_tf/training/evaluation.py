"""Evaluation as the paper reports it: per-class IoU on whole test images, accuracy maps
(white true positive, black true negative, cyan false positive, magenta false negative), and
training curves from a run's log."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy import special

from micronet_tf.data.pipeline import without_autotuning
from micronet_tf.files import atomic_output_path

ACCURACY_COLOURS = {
    "true_positive": (255, 255, 255),
    "true_negative": (0, 0, 0),
    "false_positive": (0, 255, 255),
    "false_negative": (255, 0, 255),
}


def accuracy_map(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """HxW booleans -> HxWx3 uint8 in the paper's colours."""
    out = np.zeros((*truth.shape, 3), np.uint8)
    out[predicted & truth] = ACCURACY_COLOURS["true_positive"]
    out[predicted & ~truth] = ACCURACY_COLOURS["false_positive"]
    out[~predicted & truth] = ACCURACY_COLOURS["false_negative"]
    return out


def _probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    from micronet_tf.training.train import output_activation

    outputs = np.asarray(model(images, training=False))
    return special.expit(outputs) if output_activation(model) == "sigmoid" else outputs


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_output_path(path) as temporary:
        tf.io.write_file(str(temporary), tf.io.encode_png(image))


def evaluate_segmentation(
    model: keras.Model,
    dataset: tf.data.Dataset,
    class_names: Sequence[str],
    *,
    filenames: Sequence[str] | None = None,
    threshold: float = 0.5,
    out_dir: str | os.PathLike | None = None,
    skip_channels: Sequence[int] = (),
) -> dict:
    """IoU per class (pixels pooled over all images, prediction ``> threshold``) and per image.

    ``dataset`` yields ``(image, target, {"height", "width"})`` batches, as
    ``make_segmentation_pipeline(..., training=False, return_info=True)`` makes them. Each
    image's predicted and true area fraction per class, and their mean absolute error. With
    ``out_dir``: ``metrics.json``, ``metrics.csv`` and ``accuracy/<image>_<class>.png`` (not for
    ``skip_channels``, e.g. the matrix / background channel).
    """
    names = list(class_names)
    intersection = np.zeros(len(names))
    union = np.zeros(len(names))
    per_image = []
    index = 0
    out = Path(out_dir) if out_dir is not None else None
    for images, targets, info in without_autotuning(dataset):  # no wait when it is freed
        probabilities = _probabilities(model, images)
        for b in range(probabilities.shape[0]):
            height, width = int(info["height"][b]), int(info["width"][b])
            predicted = probabilities[b, :height, :width] > threshold
            truth = np.asarray(targets[b, :height, :width]) > 0.5
            inter = (predicted & truth).sum(axis=(0, 1))
            uni = (predicted | truth).sum(axis=(0, 1))
            intersection += inter
            union += uni
            name = Path(filenames[index]).stem if filenames else f"image{index:03d}"
            pixels = height * width
            per_image.append(
                {
                    "image": name,
                    **{
                        f"iou_{c}": float(i / u) if u else 1.0 for c, i, u in zip(names, inter, uni)
                    },
                    **{
                        f"area_{c}": float(predicted[..., k].sum() / pixels)
                        for k, c in enumerate(names)
                    },
                    **{
                        f"area_{c}_true": float(truth[..., k].sum() / pixels)
                        for k, c in enumerate(names)
                    },
                }
            )
            if out is not None:
                for channel, class_name in enumerate(names):
                    if channel not in skip_channels:
                        _write_png(
                            out / "accuracy" / f"{name}_{class_name}.png",
                            accuracy_map(predicted[..., channel], truth[..., channel]),
                        )
            index += 1
    if index == 0:
        raise ValueError("the evaluation dataset is empty")
    per_class = {c: float(i / u) if u else 1.0 for c, i, u in zip(names, intersection, union)}
    scored = [v for k, v in enumerate(per_class.values()) if k not in skip_channels]
    # The measurement a phase analysis reports: each class's area fraction, against the truth.
    area_error = {
        c: float(np.mean([abs(r[f"area_{c}"] - r[f"area_{c}_true"]) for r in per_image]))
        for c in names
    }
    metrics = {
        "per_class_iou": per_class,
        "mean_iou": float(np.mean(scored)),
        "area_fraction_mean_abs_error": area_error,
        "mean_iou_classes": [c for k, c in enumerate(names) if k not in skip_channels],
        "images": per_image,
        "threshold": threshold,
    }
    if out is not None:
        with atomic_output_path(out / "metrics.json") as temporary:
            temporary.write_text(json.dumps(metrics, indent=2))
        with (
            atomic_output_path(out / "metrics.csv") as temporary,
            open(temporary, "w", newline="") as handle,
        ):
            fields = [
                "image",
                *[f"iou_{c}" for c in names],
                *[f"area_{c}" for c in names],
                *[f"area_{c}_true" for c in names],
            ]
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(per_image)
            writer.writerow({"image": "ALL", **{f"iou_{c}": v for c, v in per_class.items()}})
    return metrics


def plot_training_curves(log_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Loss and IoU (training and validation) per epoch, from a run's ``log.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_csv) as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{log_csv}: no epochs logged yet")
    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for axis, metric in zip(axes, ("loss", "iou")):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            if key in rows[0]:
                axis.plot(
                    epochs,
                    [float(r[key]) for r in rows],
                    style,
                    label="validation" if prefix else "training",
                )
        axis.set_xlabel("epoch")
        axis.set_title("loss (0.7 BCE + 0.3 Dice)" if metric == "loss" else "mean IoU")
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    out_png = Path(out_png)
    with atomic_output_path(out_png) as temporary:
        figure.savefig(temporary, dpi=90, format="png")
    plt.close(figure)
    return out_png
