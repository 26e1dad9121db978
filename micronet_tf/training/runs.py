"""Whole runs on the paper's benchmark sets: train, evaluate, and the end-to-end demo."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras

from micronet_tf._files import atomic_output_path
from micronet_tf.training.benchmark_data import benchmark_task, load_split
from micronet_tf.training.callbacks import BEST_MODEL
from micronet_tf.training.evaluation import evaluate_segmentation, plot_training_curves
from micronet_tf.training.train import LOG_FILE, TrainingResult, train_segmentation

RUN_CONFIG = "run.json"


def _write_json(path: Path, payload: dict) -> None:
    with atomic_output_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2))


def train_on_benchmark(
    dataset: str, architecture: str, encoder: str, *, out_dir: str | os.PathLike,
    encoder_weights=None, patience: int = 30, epochs: int | None = None,
    batch_size: int | None = None, crop: int = 512, strategy: str = "auto", seed: int = 0,
    data_dir: str | None = None, repeats: int = 1, initial_lr: float = 2e-4,
    verbose: int | str = "auto",
) -> TrainingResult:
    """The paper's recipe on a benchmark set (``micronet_segmentation/super3``, ...).

    ``batch_size=None`` is the paper's full-batch mode (the whole training set, augmented, each
    epoch); ``epochs=None`` trains until the two-stage schedule stops. ``repeats`` > 1 shows
    each training image that many times (differently augmented) per epoch.
    """
    from micronet_tf.data import make_segmentation_pipeline
    from micronet_tf.models import create_segmentation_model

    task = benchmark_task(dataset)
    train_split, val_split = load_split(task, "train", data_dir), load_split(task, "validation",
                                                                              data_dir)
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: expected >= 1")
    count = int(train_split.cardinality()) * repeats
    batch = batch_size or count
    train_ds = make_segmentation_pipeline(
        train_split.repeat(repeats), training=True, crop=crop, batch_size=batch,
        classes=task.targets, keep_orientation=task.keep_orientation, seed=seed,
    )
    val_ds = make_segmentation_pipeline(val_split, training=False, batch_size=1,
                                        classes=task.targets).map(lambda x, y, w: (x, y))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_label = None if encoder_weights is None else str(encoder_weights)
    _write_json(out_dir / RUN_CONFIG, {
        "dataset": task.dataset, "architecture": architecture, "encoder": encoder,
        "encoder_weights": weights_label, "patience": patience, "epochs": epochs,
        "batch_size": batch, "samples_per_epoch": count, "crop": crop, "seed": seed,
        "initial_lr": initial_lr,
        "class_names": task.class_names,
    })

    def build() -> keras.Model:
        return create_segmentation_model(architecture, encoder, encoder_weights,
                                         classes=task.model_classes, class_names=task.class_names)

    return train_segmentation(build, train_ds, val_ds, out_dir=out_dir, patience=patience,
                              initial_lr=initial_lr, max_epochs=epochs or 100_000,
                              strategy=strategy, seed=seed, verbose=verbose)


def evaluate_on_benchmark(
    model: str | os.PathLike | keras.Model, dataset: str, *, split: str = "test",
    out_dir: str | os.PathLike, data_dir: str | None = None,
) -> dict:
    """Per-class IoU (JSON, CSV), accuracy maps, and — for a run folder — its training curves."""
    from micronet_tf.data import make_segmentation_pipeline

    task = benchmark_task(dataset)
    log = None
    if not isinstance(model, keras.Model):
        path = Path(model)
        if path.is_dir():
            log = path / LOG_FILE
            path = path / BEST_MODEL
        if not path.is_file():
            raise FileNotFoundError(f"model {str(path)!r}: expected a run folder holding "
                                    f"{BEST_MODEL} or a .keras file")
        from micronet_tf import load_model

        model = load_model(path)
    if model.output_shape[-1] != task.model_classes:
        raise ValueError(f"the model predicts {model.output_shape[-1]} channels; "
                         f"{task.dataset} needs {task.model_classes} ({task.class_names})")
    split_ds = load_split(task, split, data_dir)
    names = split_ds.map(lambda element: element["image/filename"])
    filenames = [name.decode() for name in names.as_numpy_iterator()]
    eval_ds = make_segmentation_pipeline(split_ds, training=False, batch_size=1,
                                         classes=task.targets, return_info=True)
    skip = [] if task.background_channel is None else [task.background_channel]
    out_dir = Path(out_dir)
    metrics = evaluate_segmentation(model, eval_ds, task.class_names, filenames=filenames,
                                    out_dir=out_dir, skip_channels=skip)
    if log is not None and log.is_file():
        plot_training_curves(log, out_dir / "training_curves.png")
    return metrics


def run_demo(out_dir: str | os.PathLike = "demo_out", *,
             dataset: str = "micronet_segmentation/super3", architecture: str = "Unet",
             encoder: str = "resnet18", encoder_weights=None, epochs: int = 40, crop: int = 256,
             batch_size: int = 8, repeats: int = 8, initial_lr: float = 1e-3, seed: int = 0,
             data_dir: str | None = None, extra_tests: Sequence[str] = ()) -> dict:
    """Data -> training -> test IoU -> report folder, small enough for a CPU in minutes.

    Defaults favour a visible result in a few CPU minutes over the paper's recipe: a small
    encoder, 256 crops, 8 augmented crops of Super-3's single training image per step, a
    fixed budget of epochs and a higher learning rate (1e-3).
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    result = train_on_benchmark(
        dataset, architecture, encoder, out_dir=out_dir / "run", encoder_weights=encoder_weights,
        patience=max(epochs, 1), epochs=epochs, batch_size=batch_size, crop=crop, seed=seed,
        data_dir=data_dir, repeats=repeats, initial_lr=initial_lr, verbose=2,
    )
    trained = time.perf_counter() - started
    metrics = evaluate_on_benchmark(out_dir / "run", dataset, split="test",
                                    out_dir=out_dir / "report", data_dir=data_dir)
    for split in extra_tests:
        evaluate_on_benchmark(out_dir / "run", dataset, split=split,
                              out_dir=out_dir / f"report_{split}", data_dir=data_dir)
    summary = {
        "dataset": dataset, "architecture": architecture, "encoder": encoder,
        "encoder_weights": None if encoder_weights is None else str(encoder_weights),
        "epochs": result.epochs_run, "best_validation_iou": result.best_iou,
        "best_epoch": None if result.best_epoch is None else result.best_epoch + 1,
        "test_mean_iou": metrics["mean_iou"], "test_per_class_iou": metrics["per_class_iou"],
        "training_seconds": round(trained, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    _write_json(out_dir / "report" / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return summary


