"""Whole runs on the paper's benchmark sets: train, evaluate, and the end-to-end demo."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras

from micronet_tf._files import atomic_output_path, owned_output_folder
from micronet_tf.training.benchmark_data import benchmark_task, load_split
from micronet_tf.training.checkpoints import (
    BEST_MODEL,
    BEST_RECORD,
    BEST_WEIGHTS,
    CHECKPOINT_DIR,
    LAST_MODEL,
    LOG_FILE,
    latest_checkpoint,
    parse_interval,
)
from micronet_tf.training.evaluation import evaluate_segmentation, plot_training_curves
from micronet_tf.training.train import TrainingResult, train_segmentation

RUN_CONFIG = "run.json"
# What makes two runs the same run: training into a folder whose run.json differs in one of
# these refuses (force=True replaces the old run).
RUN_IDENTITY = ("dataset", "architecture", "encoder", "encoder_weights", "class_names", "crop",
                "batch_size", "samples_per_epoch", "seed", "initial_lr", "patience")
# Files a run writes into its folder (what force=True removes).
RUN_FILES = (RUN_CONFIG, BEST_WEIGHTS, BEST_RECORD, BEST_MODEL, LAST_MODEL, LOG_FILE)
RUN_FOLDERS = (CHECKPOINT_DIR, "tensorboard")


class RunFolderError(ValueError):
    """A run folder that holds another run."""


_FLAGS = {"initial_lr": "--lr"}


def check_training_arguments(*, epochs: int | None = None, batch_size: int | None = None,
                             crop: int = 512, patience: int = 30, repeats: int = 1,
                             initial_lr: float = 2e-4, checkpoint_every: int | str = "5min",
                             encoder_weights=None, cli: bool = False) -> None:
    """Reject bad numbers before any data is built or folder made; ``cli`` names the flags."""
    def name(argument: str) -> str:
        return _FLAGS.get(argument, "--" + argument.replace("_", "-")) if cli else argument

    values = dict(epochs=epochs, batch_size=batch_size, crop=crop, patience=patience,
                  repeats=repeats, initial_lr=initial_lr)
    for argument, value in values.items():
        if value is not None and (isinstance(value, bool) or value <= 0):
            raise ValueError(f"{name(argument)} {value!r}: expected a positive number")
    if crop % 32:
        raise ValueError(f"{name('crop')} {crop}: expected a multiple of 32 (the encoders' "
                         f"output stride), e.g. {max(32, crop // 32 * 32)} or "
                         f"{crop // 32 * 32 + 32}")
    try:
        parse_interval(checkpoint_every)
    except ValueError as error:
        raise ValueError(str(error).replace("checkpoint_every=", name("checkpoint_every") + " ")
                         ) from None
    from micronet_tf._weights import check_weights_argument

    check_weights_argument(encoder_weights, name("encoder_weights"))


def _clear_run(out_dir: Path) -> None:
    import shutil

    for name in RUN_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(out_dir / name, ignore_errors=True)


def prepare_run_folder(out_dir: Path, config: dict, *, force: bool = False) -> None:
    """Refuse a folder that holds a different run (name the differences); ``force`` clears it."""
    record = out_dir / RUN_CONFIG
    if force:
        _clear_run(out_dir)
        return
    if not record.is_file():
        return
    try:
        previous = json.loads(record.read_text())
    except ValueError as error:
        raise RunFolderError(f"{record}: unreadable ({error}); pass --force to replace the "
                             "run in this folder, or a new --out") from None
    differences = [f"{key}: {previous.get(key)!r} there, {config.get(key)!r} now"
                   for key in RUN_IDENTITY if previous.get(key) != config.get(key)]
    if differences:
        raise RunFolderError(
            f"run folder {out_dir} holds a different run ({'; '.join(differences)}). Pass a new "
            "--out, or --force (force=True) to replace that run")


def _write_json(path: Path, payload: dict) -> None:
    with atomic_output_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2))


def train_on_benchmark(
    dataset: str, architecture: str, encoder: str, *, out_dir: str | os.PathLike,
    encoder_weights=None, patience: int = 30, epochs: int | None = None,
    batch_size: int | None = None, crop: int = 512, strategy: str = "auto", seed: int = 0,
    data_dir: str | None = None, repeats: int = 1, initial_lr: float = 2e-4,
    checkpoint_every: int | str = "5min", force: bool = False, verbose: int | str = "auto",
) -> TrainingResult:
    """The paper's recipe on a benchmark set (``micronet_segmentation/super3``, ...).

    ``batch_size=None`` is the paper's full-batch mode (the whole training set, augmented, each
    epoch); ``epochs=None`` trains until the two-stage schedule stops. ``repeats`` > 1 shows
    each training image that many times (differently augmented) per epoch. A folder that
    holds another run is refused (``force=True`` replaces it); one that holds this run resumes
    (a finished one raises ``RunFinishedError`` unless ``epochs`` extends it).
    """
    from micronet_tf.data import make_segmentation_pipeline
    from micronet_tf.models import create_segmentation_model

    check_training_arguments(epochs=epochs, batch_size=batch_size, crop=crop, patience=patience,
                             repeats=repeats, initial_lr=initial_lr,
                             checkpoint_every=checkpoint_every, encoder_weights=encoder_weights)
    task = benchmark_task(dataset)
    train_split, val_split = load_split(task, "train", data_dir), load_split(task, "validation",
                                                                              data_dir)
    count = int(train_split.cardinality()) * repeats
    batch = batch_size or count
    train_ds = make_segmentation_pipeline(
        train_split.repeat(repeats), training=True, crop=crop, batch_size=batch,
        classes=task.targets, keep_orientation=task.keep_orientation, seed=seed,
    )
    val_ds = make_segmentation_pipeline(val_split, training=False, batch_size=1,
                                        classes=task.targets).map(lambda x, y, w: (x, y))
    weights_label = None if encoder_weights is None else str(encoder_weights)
    config = {
        "dataset": task.dataset, "architecture": architecture, "encoder": encoder,
        "encoder_weights": weights_label, "patience": patience, "epochs": epochs,
        "batch_size": batch, "samples_per_epoch": count, "crop": crop, "seed": seed,
        "initial_lr": initial_lr, "class_names": list(task.class_names),
    }
    out_dir = Path(out_dir)
    prepare_run_folder(out_dir, config, force=force)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / RUN_CONFIG, config)

    def build() -> keras.Model:
        return create_segmentation_model(architecture, encoder, encoder_weights,
                                         classes=task.model_classes, class_names=task.class_names)

    return train_segmentation(build, train_ds, val_ds, out_dir=out_dir, patience=patience,
                              initial_lr=initial_lr,
                              max_epochs=100_000 if epochs is None else epochs,
                              strategy=strategy, seed=seed, checkpoint_every=checkpoint_every,
                              verbose=verbose)


def evaluate_on_benchmark(
    model: str | os.PathLike | keras.Model, dataset: str, *, split: str = "test",
    out_dir: str | os.PathLike, data_dir: str | None = None, force: bool = False,
) -> dict:
    """Per-class IoU (JSON, CSV), accuracy maps, and — for a run folder — its training curves.

    ``out_dir`` may hold only what an earlier evaluation wrote there (its manifest says which
    files), unless ``force``."""
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
    with owned_output_folder(out_dir, "evaluate", force) as out_dir:
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
    # A killed demo resumes; a finished one is run again from the start.
    found = latest_checkpoint(out_dir / "run")
    result = train_on_benchmark(
        dataset, architecture, encoder, out_dir=out_dir / "run", encoder_weights=encoder_weights,
        patience=max(epochs, 1), epochs=epochs, batch_size=batch_size, crop=crop, seed=seed,
        data_dir=data_dir, repeats=repeats, initial_lr=initial_lr, verbose=2,
        force=found is not None and bool(found[1].get("finished")),
    )
    trained = time.perf_counter() - started
    # The demo's own report folders (summary.json is written beside the evaluation).
    metrics = evaluate_on_benchmark(out_dir / "run", dataset, split="test",
                                    out_dir=out_dir / "report", data_dir=data_dir, force=True)
    for split in extra_tests:
        evaluate_on_benchmark(out_dir / "run", dataset, split=split,
                              out_dir=out_dir / f"report_{split}", data_dir=data_dir, force=True)
    summary = {
        "dataset": dataset, "architecture": architecture, "encoder": encoder,
        "encoder_weights": None if encoder_weights is None else str(encoder_weights),
        "epochs": result.epochs_run, "best_validation_iou": result.best_iou,
        "best_epoch": None if result.best_epoch is None else result.best_epoch + 1,
        "test_mean_iou": metrics["mean_iou"], "test_per_class_iou": metrics["per_class_iou"],
        "training_seconds": round(trained, 1),
        "checkpoint_seconds": round(result.checkpoint_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    _write_json(out_dir / "report" / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return summary


