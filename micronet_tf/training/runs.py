"""Whole runs: train and evaluate on the paper's benchmark sets, on ``micronet-tf dataset``
folders and on one's own labelled folders; the end-to-end demo."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from micronet_tf.files import atomic_output_path, owned_output_folder
from micronet_tf.training.benchmark_data import SegmentationTask, benchmark_task, load_split
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
RUN_IDENTITY = (
    "dataset",
    "architecture",
    "encoder",
    "encoder_weights",
    "class_names",
    "crop",
    "batch_size",
    "samples_per_epoch",
    "seed",
    "initial_lr",
    "patience",
    "data_sha256",
    "init",
    "normalization",
)
# What a key of RUN_IDENTITY meant in run folders written before it was recorded.
_IDENTITY_DEFAULTS = {"normalization": "dtype"}
# Files a run writes into its folder (what force=True removes).
RUN_FILES = (
    RUN_CONFIG,
    BEST_WEIGHTS,
    BEST_RECORD,
    BEST_MODEL,
    LAST_MODEL,
    LOG_FILE,
    "encoder.weights.h5",
    "classes.json",
)  # the last two: pre-training runs
RUN_FOLDERS = (CHECKPOINT_DIR, "tensorboard")


class RunFolderError(ValueError):
    """A run folder that holds another run."""


_FLAGS = {"initial_lr": "--lr"}


def check_training_arguments(
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    crop: int = 512,
    patience: int = 30,
    repeats: int = 1,
    initial_lr: float = 2e-4,
    checkpoint_every: int | str = "5min",
    encoder_weights=None,
    cli: bool = False,
) -> None:
    """Reject bad numbers before any data is built or folder made; ``cli`` names the flags."""

    def name(argument: str) -> str:
        return _FLAGS.get(argument, "--" + argument.replace("_", "-")) if cli else argument

    values = dict(
        epochs=epochs,
        batch_size=batch_size,
        crop=crop,
        patience=patience,
        repeats=repeats,
        initial_lr=initial_lr,
    )
    for argument, value in values.items():
        if value is not None and (isinstance(value, bool) or value <= 0):
            raise ValueError(f"{name(argument)} {value!r}: expected a positive number")
    if crop % 32:
        raise ValueError(
            f"{name('crop')} {crop}: expected a multiple of 32 (the encoders' "
            f"output stride), e.g. {max(32, crop // 32 * 32)} or "
            f"{crop // 32 * 32 + 32}"
        )
    try:
        parse_interval(checkpoint_every)
    except ValueError as error:
        raise ValueError(
            str(error).replace("checkpoint_every=", name("checkpoint_every") + " ")
        ) from None
    from micronet_tf.weights import check_weights_argument

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
        raise RunFolderError(
            f"{record}: unreadable ({error}); pass --force to replace the "
            "run in this folder, or a new --out"
        ) from None
    differences = [
        f"{key}: {previous.get(key, _IDENTITY_DEFAULTS.get(key))!r} there, {config.get(key)!r} now"
        for key in RUN_IDENTITY
        if previous.get(key, _IDENTITY_DEFAULTS.get(key)) != config.get(key)
    ]
    if differences:
        raise RunFolderError(
            f"run folder {out_dir} holds a different run ({'; '.join(differences)}). Pass a new "
            "--out, or force (--force) to replace that run"
        )


def start_run(out_dir: str | os.PathLike, config: dict, *, strategy, force: bool = False) -> Path:
    """Set up this process's run folder: refuse one holding a different run (``force``
    replaces it), then record ``config`` in its ``run.json``. The chief (or a single process)
    uses ``out_dir``; another worker its own ``out_dir/workertemp_<id>`` (see
    :func:`~micronet_tf.training.distribute.worker_folder`), which it returns."""
    from micronet_tf.training.distribute import get_strategy, worker_folder

    folder = worker_folder(out_dir, get_strategy(strategy))
    prepare_run_folder(folder, config, force=force)
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / RUN_CONFIG, config)
    return folder


def _write_json(path: Path, payload: dict) -> None:
    with atomic_output_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2))


@dataclass
class TrainingData:
    """A run's data: the task, its training and validation examples (TFDS-like element
    dicts), and what run.json records of them."""

    task: SegmentationTask
    train: tf.data.Dataset
    validation: tf.data.Dataset
    record: dict


def _pixels_record(split: tf.data.Dataset) -> list[dict]:
    """File names and the sha256 of each example's pixels (image and mask)."""
    rows = []
    for element in split.as_numpy_iterator():
        name = element["image/filename"]
        rows.append(
            {
                "image": name.decode() if isinstance(name, bytes) else str(name),
                "pixels_sha256": hashlib.sha256(element["image"].tobytes()).hexdigest(),
                "mask_pixels_sha256": hashlib.sha256(
                    element["segmentation_mask"].tobytes()
                ).hexdigest(),
            }
        )
    return rows


def dataset_task(dataset: str) -> SegmentationTask:
    """A benchmark set's name, or a folder written by ``micronet-tf dataset`` -> its task."""
    if Path(dataset).is_dir():
        from micronet_tf.data.folder_tfds import load_segmentation_tfds_info

        info = load_segmentation_tfds_info(dataset)
        return SegmentationTask(str(Path(dataset)), info.class_map, info.keep_orientation)
    return benchmark_task(dataset)


def _load_tfds_split(task: SegmentationTask, split: str, data_dir: str | None):
    if Path(task.dataset).is_dir():
        from micronet_tf.data.folder_tfds import load_segmentation_tfds_split

        return load_segmentation_tfds_split(task.dataset, split)
    return load_split(task, split, data_dir)


def tfds_training_data(dataset: str, data_dir: str | None = None) -> TrainingData:
    """A benchmark set, or a dataset written by ``micronet-tf dataset``, as training data."""
    task = dataset_task(dataset)
    train, validation = (
        _load_tfds_split(task, split, data_dir) for split in ("train", "validation")
    )
    record = {
        "source": task.dataset,
        "train": _pixels_record(train),
        "validation": _pixels_record(validation),
    }
    return TrainingData(task, train, validation, record)


def folder_training_data(
    images: str | os.PathLike,
    masks: str | os.PathLike,
    classes,
    *,
    mask_format: str | None = None,
    val_images: str | os.PathLike | None = None,
    val_masks: str | os.PathLike | None = None,
    val_fraction: float | None = None,
    keep_orientation: bool = False,
) -> TrainingData:
    """Labelled folders (see :func:`~micronet_tf.data.segmentation_dataset_from_folders`) as
    training data; validation from other folders, or a held-out strip of ``val_fraction`` of
    each image (:func:`~micronet_tf.data.folders.hold_out_strip`; 0.2 when neither is given)."""
    from micronet_tf.data.class_map import ClassMap, parse_class_map
    from micronet_tf.data.folders import (
        dataset_from_examples,
        describe_pairs,
        hold_out_strip,
        load_folder_pairs,
    )

    class_map = (
        classes if isinstance(classes, ClassMap) else parse_class_map(list(classes), mask_format)
    )
    if (val_images is None) != (val_masks is None):
        raise ValueError(
            "val_images and val_masks go together: pass both folders, or "
            "val_fraction to hold out part of each training image"
        )
    if val_images is not None and val_fraction is not None:
        raise ValueError(
            "pass validation folders (val_images=, val_masks=) or val_fraction=, not both"
        )

    def read(image_dir, mask_dir, argument):
        try:
            return load_folder_pairs(
                image_dir, mask_dir, class_map.folder_classes, class_map.mask_format
            )
        except FileNotFoundError as error:
            raise FileNotFoundError(
                str(error)
                .replace("images_dir=", f"{argument}images=")
                .replace("masks_dir=", f"{argument}masks=")
            ) from None

    examples = read(images, masks, "")
    record = {
        "source": {"images": str(Path(images).resolve()), "masks": str(Path(masks).resolve())},
        "class_map": class_map.to_json(),
        "train": describe_pairs(images, masks, examples),
    }
    if val_images is not None:
        validation = read(val_images, val_masks, "val_")
        record["validation"] = describe_pairs(val_images, val_masks, validation)
        train = examples
    else:
        fraction = 0.2 if val_fraction is None else val_fraction
        train, validation = hold_out_strip(examples, fraction)
        record["validation"] = {
            "val_fraction": fraction,
            "held_out": "the right-most columns of each training image, full height",
            "columns": {e["image/filename"]: list(e["columns"]) for e in validation},
        }
    task = SegmentationTask(f"folders:{Path(images)}", class_map, keep_orientation)
    return TrainingData(
        task, dataset_from_examples(train), dataset_from_examples(validation), record
    )


def _fine_tune_builder(
    init: Path, task: SegmentationTask, architecture: str | None, encoder: str | None
):
    """A builder that starts from the model in ``init``: as it is for the same classes, with a
    new head (all else kept) for other ones; announces which in one line."""
    from micronet_tf.models import (
        class_names,
        create_segmentation_model,
        input_normalization,
        model_info,
    )
    from micronet_tf.saving import load_model

    loaded = load_model(init, compile=False)
    try:
        info, old_names = model_info(loaded), class_names(loaded)
    except ValueError:
        raise ValueError(
            f"init={str(init)!r}: not a segmentation model made by micronet-tf "
            "(convert a PyTorch one with `micronet-tf convert-model` first)"
        ) from None
    for argument, given, own in (
        ("architecture", architecture, info["architecture"]),
        ("encoder", encoder, info["encoder"]),
    ):
        if given is not None and given.lower() != own.lower():
            raise ValueError(
                f"{argument}={given!r}, but init={str(init)!r} is a {own} model: "
                f"leave {argument}= out (fine-tuning keeps the model's)"
            )
    same = old_names == task.class_names and info["classes"] == task.model_classes
    if same:
        print(f"fine-tuning {init}: same classes ({', '.join(task.class_names)})", flush=True)
    else:
        print(
            f"fine-tuning {init}: new head for {', '.join(task.class_names)} (the model "
            f"had {', '.join(old_names or ['?'])}); encoder and decoder weights kept",
            flush=True,
        )
    weights = {layer.name: layer.get_weights() for layer in loaded.layers}
    normalization = input_normalization(loaded)
    del loaded

    def build() -> keras.Model:
        model = create_segmentation_model(
            info["architecture"],
            info["encoder"],
            classes=task.model_classes,
            class_names=task.class_names,
            encoder_options=info.get("encoder_options"),
            **info.get("decoder_kwargs", {}),
        )
        for layer in model.layers:
            if layer.weights and (same or not layer.name.startswith("segmentation_head")):
                layer.set_weights(weights[layer.name])
        return model

    return build, info["architecture"], info["encoder"], normalization


def validation_pipeline(
    ds: tf.data.Dataset, *, batch: int, crop: int, classes, normalization=None
) -> tf.data.Dataset:
    """``(image, target)`` batches of whole validation images for ``fit``: images of one size
    share a batch, up to the training batch's count and 4x its pixels (inference keeps no
    activations for a backward pass), with a known number of batches."""
    from micronet_tf.data import make_segmentation_pipeline

    val_ds = make_segmentation_pipeline(
        ds,
        training=False,
        batch_size=batch,
        max_batch_pixels=4 * batch * crop * crop,
        classes=classes,
        normalization=normalization,
    ).map(lambda x, y, w: (x, y))
    # Batches by size have no static count, and Keras warns "ran out of data" without one;
    # counting them reads the few validation images once, into the pipeline's cache.
    batches = sum(1 for _ in val_ds)
    return val_ds.apply(tf.data.experimental.assert_cardinality(batches))


def training_pipelines(
    data: TrainingData,
    *,
    crop: int,
    batch_size: int | None,
    repeats: int,
    seed: int,
    strategy: tf.distribute.Strategy | None = None,
    deterministic: bool = False,
    normalization=None,
):
    """``(train_ds, val_ds, samples per epoch, batch size)`` as :func:`train_run` feeds them
    (``deterministic``: augmented crops in a fixed order; ``normalization``: intensity
    scaling, :mod:`micronet_tf.intensity`)."""
    from micronet_tf.data import make_segmentation_pipeline
    from micronet_tf.training.distribute import is_multiworker

    task = data.task
    count = int(data.train.cardinality()) * repeats
    batch = batch_size or count
    train_ds = make_segmentation_pipeline(
        data.train.repeat(repeats),
        training=True,
        crop=crop,
        batch_size=batch,
        classes=task.targets,
        keep_orientation=task.keep_orientation,
        seed=seed,
        deterministic=deterministic,
        normalization=normalization,
    )
    val_ds = validation_pipeline(
        data.validation, batch=batch, crop=crop, classes=task.targets, normalization=normalization
    )
    if strategy is not None and is_multiworker(strategy):
        workers = strategy.extended._num_workers
        if batch < workers:
            raise ValueError(
                f"batch_size={batch}: with {workers} workers each needs at least "
                "one crop per step; raise repeats= (each image's crops per epoch) "
                "or batch_size="
            )
        # Every replica validates on every image (a copy each): a few whole images of their
        # own sizes cannot be split evenly, and the IoU of pooled intersections and unions is
        # the same over identical copies.
        copies = strategy.num_replicas_in_sync
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        val_ds = val_ds.map(
            lambda x, y: (tf.repeat(x, copies, axis=0), tf.repeat(y, copies, axis=0))
        ).with_options(options)
    return train_ds, val_ds, count, batch


def train_run(
    data: TrainingData,
    architecture: str | None = None,
    encoder: str | None = None,
    *,
    out_dir: str | os.PathLike,
    encoder_weights=None,
    init: str | os.PathLike | None = None,
    patience: int = 30,
    epochs: int | None = None,
    batch_size: int | None = None,
    crop: int = 512,
    strategy: str | tf.distribute.Strategy = "auto",
    seed: int = 0,
    repeats: int = 1,
    initial_lr: float = 2e-4,
    checkpoint_every: int | str = "5min",
    force: bool = False,
    verbose: int | str = "auto",
    deterministic: bool = False,
    mixed_precision: str | None = None,
    jit_compile: bool = False,
    normalization: str | None = None,
) -> TrainingResult:
    """The paper's recipe on ``data`` (see :func:`train_on_benchmark` for the arguments);
    ``init``: fine-tune a trained ``.keras`` model (a new head when the classes differ)."""
    from micronet_tf.compute import dtype_policy
    from micronet_tf.intensity import Normalization
    from micronet_tf.models import (
        create_segmentation_model,
        set_input_normalization,
        set_training_labels,
    )
    from micronet_tf.training.distribute import get_strategy

    dtype_policy(mixed_precision)  # a bad name fails before any work
    chosen = None if normalization is None else Normalization.parse(normalization)
    strategy = get_strategy(strategy)
    task = data.task
    if init is not None:
        init = Path(init)
        if encoder_weights is not None:
            raise ValueError(
                "init= starts from a whole trained model; encoder_weights= "
                "does not apply: pass one of them"
            )
        build_model, architecture, encoder, own = _fine_tune_builder(
            init, task, architecture, encoder
        )
        if chosen is None:
            chosen = own
        elif chosen != own:
            print(
                f"fine-tuning {init} with normalization {chosen} (the model was trained "
                f"with {own})",
                flush=True,
            )
    else:
        architecture, encoder = architecture or "Unet", encoder or "resnet50"

        def build_model() -> keras.Model:
            return create_segmentation_model(
                architecture,
                encoder,
                encoder_weights,
                classes=task.model_classes,
                class_names=task.class_names,
            )

    normalization = chosen or Normalization()
    train_ds, val_ds, count, batch = training_pipelines(
        data,
        crop=crop,
        batch_size=batch_size,
        repeats=repeats,
        seed=seed,
        strategy=strategy,
        deterministic=deterministic,
        normalization=normalization,
    )
    data_json = json.dumps(data.record, sort_keys=True)
    config = {
        "dataset": task.dataset,
        "architecture": architecture,
        "encoder": encoder,
        "encoder_weights": None if encoder_weights is None else str(encoder_weights),
        "init": None if init is None else {"path": str(init), "sha256": _sha256(init)},
        "patience": patience,
        "epochs": epochs,
        "batch_size": batch,
        "samples_per_epoch": count,
        "crop": crop,
        "seed": seed,
        "initial_lr": initial_lr,
        "deterministic": deterministic,
        "mixed_precision": mixed_precision,
        "jit_compile": jit_compile,
        "normalization": str(normalization),
        "class_names": list(task.class_names),
        "labels": task.labels_record(),
        "data_sha256": hashlib.sha256(data_json.encode()).hexdigest(),
        "data": data.record,
    }
    start_run(out_dir, config, strategy=strategy, force=force)

    def build() -> keras.Model:
        model = build_model()
        set_training_labels(model, task.labels_record())
        set_input_normalization(model, normalization)
        return model

    return train_segmentation(
        build,
        train_ds,
        val_ds,
        out_dir=out_dir,
        patience=patience,
        initial_lr=initial_lr,
        max_epochs=100_000 if epochs is None else epochs,
        strategy=strategy,
        seed=seed,
        checkpoint_every=checkpoint_every,
        verbose=verbose,
        deterministic=deterministic,
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
    )


def _sha256(path: Path) -> str:
    from micronet_tf.files import sha256_of

    return sha256_of(path)


def train_on_benchmark(
    dataset: str,
    architecture: str | None = "Unet",
    encoder: str | None = "resnet50",
    *,
    out_dir: str | os.PathLike,
    encoder_weights=None,
    init: str | os.PathLike | None = None,
    patience: int = 30,
    epochs: int | None = None,
    batch_size: int | None = None,
    crop: int = 512,
    strategy: str | tf.distribute.Strategy = "auto",
    seed: int = 0,
    data_dir: str | None = None,
    repeats: int = 1,
    initial_lr: float = 2e-4,
    checkpoint_every: int | str = "5min",
    force: bool = False,
    verbose: int | str = "auto",
    deterministic: bool = False,
    mixed_precision: str | None = None,
    jit_compile: bool = False,
    normalization: str | None = None,
) -> TrainingResult:
    """The paper's recipe on a benchmark set (``micronet_segmentation/super3``, ...) or on a
    dataset folder written by ``micronet-tf dataset``.

    ``batch_size=None`` is the paper's full-batch mode (the whole training set, augmented, each
    epoch); ``epochs=None`` trains until the two-stage schedule stops. ``repeats`` > 1 shows
    each training image that many times (differently augmented) per epoch. A folder that
    holds another run is refused (``force=True`` replaces it); one that holds this run resumes
    (a finished one raises ``RunFinishedError`` unless ``epochs`` extends it).
    ``deterministic``, ``mixed_precision``, ``jit_compile``: as :func:`train_segmentation`
    (``deterministic=True`` also fixes the order of the augmented crops).
    ``normalization``: how raw intensities become [0, 1] (``"dtype"``, the default, or
    ``"percentile"`` / ``"percentile:0.1,99.9"``: :mod:`micronet_tf.intensity`), stored in the
    trained model so that ``predict`` and ``evaluate`` use it too; with ``init``, the init
    model's by default.
    """
    from micronet_tf.training.distribute import (
        gather_from_workers,
        get_strategy,
        is_chief,
        is_multiworker,
    )

    check_training_arguments(
        epochs=epochs,
        batch_size=batch_size,
        crop=crop,
        patience=patience,
        repeats=repeats,
        initial_lr=initial_lr,
        checkpoint_every=checkpoint_every,
        encoder_weights=encoder_weights,
    )
    strategy = get_strategy(strategy)  # before any dataset: a multi-worker one must be first
    if is_multiworker(strategy):  # the chief prepares the TFDS data, then the others read it
        data = tfds_training_data(dataset, data_dir) if is_chief(strategy) else None
        gather_from_workers(strategy, 0.0)
        data = data or tfds_training_data(dataset, data_dir)
    else:
        data = tfds_training_data(dataset, data_dir)
    return train_run(
        data,
        architecture,
        encoder,
        out_dir=out_dir,
        encoder_weights=encoder_weights,
        init=init,
        patience=patience,
        epochs=epochs,
        batch_size=batch_size,
        crop=crop,
        strategy=strategy,
        seed=seed,
        repeats=repeats,
        initial_lr=initial_lr,
        checkpoint_every=checkpoint_every,
        force=force,
        verbose=verbose,
        deterministic=deterministic,
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
        normalization=normalization,
    )


def train_on_folders(
    images: str | os.PathLike,
    masks: str | os.PathLike,
    classes,
    architecture: str | None = "Unet",
    encoder: str | None = "resnet50",
    *,
    out_dir: str | os.PathLike,
    mask_format: str | None = None,
    val_images: str | os.PathLike | None = None,
    val_masks: str | os.PathLike | None = None,
    val_fraction: float | None = None,
    keep_orientation: bool = False,
    encoder_weights=None,
    init: str | os.PathLike | None = None,
    patience: int = 30,
    epochs: int | None = None,
    batch_size: int | None = None,
    crop: int = 512,
    strategy: str | tf.distribute.Strategy = "auto",
    seed: int = 0,
    repeats: int = 1,
    initial_lr: float = 2e-4,
    checkpoint_every: int | str = "5min",
    force: bool = False,
    verbose: int | str = "auto",
    deterministic: bool = False,
    mixed_precision: str | None = None,
    jit_compile: bool = False,
    normalization: str | None = None,
) -> TrainingResult:
    """The paper's recipe on one's own labelled micrographs (one image is enough).

    ``classes``: a :class:`~micronet_tf.data.class_map.ClassMap` or the command line's tokens
    (``["matrix", "secondary:0,0,255"]``; ``mask_format="index"`` for ``["background",
    "oxide"]``). Validation: ``val_images`` / ``val_masks`` folders, or ``val_fraction`` of
    each image held out as a strip of its right-most columns (0.2 by default). The rest as
    :func:`train_on_benchmark`; ``init`` fine-tunes a trained model.
    """
    from micronet_tf.training.distribute import get_strategy

    check_training_arguments(
        epochs=epochs,
        batch_size=batch_size,
        crop=crop,
        patience=patience,
        repeats=repeats,
        initial_lr=initial_lr,
        checkpoint_every=checkpoint_every,
        encoder_weights=encoder_weights,
    )
    strategy = get_strategy(strategy)
    data = folder_training_data(
        images,
        masks,
        classes,
        mask_format=mask_format,
        val_images=val_images,
        val_masks=val_masks,
        val_fraction=val_fraction,
        keep_orientation=keep_orientation,
    )
    validation = data.record["validation"]
    if isinstance(validation, dict) and verbose != 0:
        print(
            f"validation: the right {validation['val_fraction']:.0%} of each training image "
            "(never seen by training crops)",
            flush=True,
        )
    return train_run(
        data,
        architecture,
        encoder,
        out_dir=out_dir,
        encoder_weights=encoder_weights,
        init=init,
        patience=patience,
        epochs=epochs,
        batch_size=batch_size,
        crop=crop,
        strategy=strategy,
        seed=seed,
        repeats=repeats,
        initial_lr=initial_lr,
        checkpoint_every=checkpoint_every,
        force=force,
        verbose=verbose,
        deterministic=deterministic,
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
        normalization=normalization,
    )


def _load_evaluated_model(model) -> tuple[keras.Model, Path | None]:
    """A model, a .keras file or a run folder (its best.keras) -> (model, the run's log)."""
    if isinstance(model, keras.Model):
        return model, None
    path, log = Path(model), None
    if path.is_dir():
        log = path / LOG_FILE
        path = path / BEST_MODEL
    if not path.is_file():
        raise FileNotFoundError(
            f"model {str(path)!r}: expected a run folder holding {BEST_MODEL} or a .keras file"
        )
    from micronet_tf.saving import load_model

    return load_model(path), log


def _evaluate(
    model: keras.Model,
    log: Path | None,
    task: SegmentationTask,
    split_ds: tf.data.Dataset,
    out_dir,
    force: bool,
) -> dict:
    from micronet_tf.data import make_segmentation_pipeline
    from micronet_tf.models import input_normalization

    if model.output_shape[-1] != task.model_classes:
        raise ValueError(
            f"the model predicts {model.output_shape[-1]} channels; "
            f"{task.dataset} needs {task.model_classes} ({task.class_names})"
        )
    names = split_ds.map(lambda element: element["image/filename"])
    filenames = [name.decode() for name in names.as_numpy_iterator()]
    eval_ds = make_segmentation_pipeline(
        split_ds,
        training=False,
        batch_size=1,
        classes=task.targets,
        return_info=True,
        normalization=input_normalization(model),
    )
    skip = [] if task.background_channel is None else [task.background_channel]
    with owned_output_folder(out_dir, "evaluate", force) as out_dir:
        metrics = evaluate_segmentation(
            model,
            eval_ds,
            task.class_names,
            filenames=filenames,
            out_dir=out_dir,
            skip_channels=skip,
        )
        if log is not None and log.is_file():
            plot_training_curves(log, out_dir / "training_curves.png")
    return metrics


def evaluate_on_benchmark(
    model: str | os.PathLike | keras.Model,
    dataset: str,
    *,
    split: str = "test",
    out_dir: str | os.PathLike,
    data_dir: str | None = None,
    force: bool = False,
) -> dict:
    """Per-class IoU (JSON, CSV), accuracy maps, area-fraction errors and — for a run
    folder — its training curves, on a benchmark split (or a ``micronet-tf dataset`` folder's).

    ``out_dir`` may hold only what an earlier evaluation wrote there (its manifest says which
    files), unless ``force``."""
    task = dataset_task(dataset)
    model, log = _load_evaluated_model(model)
    return _evaluate(model, log, task, _load_tfds_split(task, split, data_dir), out_dir, force)


def evaluate_on_folders(
    model: str | os.PathLike | keras.Model,
    images: str | os.PathLike,
    masks: str | os.PathLike,
    *,
    out_dir: str | os.PathLike,
    classes=None,
    mask_format: str | None = None,
    force: bool = False,
) -> dict:
    """:func:`evaluate_on_benchmark` on labelled folders. The class map is the one the model
    was trained with (stored in it); ``classes`` gives it for a model that has none."""
    from micronet_tf.data.class_map import parse_class_map
    from micronet_tf.data.folders import dataset_from_examples, load_folder_pairs
    from micronet_tf.models import training_labels

    model, log = _load_evaluated_model(model)
    record = training_labels(model)
    if classes is not None:
        class_map = parse_class_map(list(classes), mask_format)
        task = SegmentationTask(f"folders:{Path(images)}", class_map)
        if record is not None and record["class_map"]["names"] != list(class_map.names):
            raise ValueError(
                f"classes={list(class_map.names)}, but the model was trained on "
                f"{record['class_map']['names']}: leave classes out to use the "
                "model's class map"
            )
        if record is not None:
            task = SegmentationTask(task.dataset, class_map, channels=tuple(record["channels"]))
    elif record is not None:
        task = SegmentationTask.from_labels_record(record, f"folders:{Path(images)}")
    else:
        raise ValueError(
            "the model records no class map (it was not trained by micronet-tf "
            "train): pass classes= (--classes, and --mask-format index for "
            "index masks)"
        )
    examples = load_folder_pairs(
        images, masks, task.class_map.folder_classes, task.class_map.mask_format
    )
    return _evaluate(model, log, task, dataset_from_examples(examples), out_dir, force)


def run_demo(
    out_dir: str | os.PathLike = "demo_out",
    *,
    dataset: str = "micronet_segmentation/super3",
    architecture: str = "Unet",
    encoder: str = "resnet18",
    encoder_weights="auto",
    epochs: int = 40,
    crop: int = 256,
    batch_size: int = 8,
    repeats: int = 8,
    initial_lr: float = 1e-3,
    seed: int = 0,
    data_dir: str | None = None,
    extra_tests: Sequence[str] = (),
) -> dict:
    """Data -> training -> test IoU -> report folder, small enough for a CPU in minutes.

    Defaults favour a visible result in a few CPU minutes over the paper's recipe: a small
    encoder, 256 crops, 8 augmented crops of Super-3's single training image per step, a
    fixed budget of epochs and a higher learning rate (1e-3).

    ``encoder_weights="auto"``: the zoo's MicroNet weights for ``encoder`` whenever they can be
    had (the cache, a ``$MICRONET_TF_ZOO_URL`` mirror, NASA's URLs; see
    :func:`micronet_tf.demo_weights.resolve_demo_weights`), else random weights; ``None``:
    random; a weights file or zoo name is used as given. One line says which, and
    ``summary.json`` records them.
    """
    from micronet_tf.demo_weights import AUTO, resolve_demo_weights

    check_training_arguments(
        epochs=epochs,
        batch_size=batch_size,
        crop=crop,
        repeats=repeats,
        initial_lr=initial_lr,
        encoder_weights=None if encoder_weights == AUTO else encoder_weights,
    )
    out_dir = Path(out_dir)
    started = time.perf_counter()
    weights = resolve_demo_weights(encoder, encoder_weights)
    weights.announce()
    # A killed demo resumes; a finished one, or one from other encoder weights (say, random
    # ones before MicroNet's could be had), is run again from the start.
    found = latest_checkpoint(out_dir / "run")
    force = found is not None and bool(found[1].get("finished"))
    record = out_dir / "run" / RUN_CONFIG
    if not force and record.is_file():
        try:
            before = json.loads(record.read_text()).get("encoder_weights")
        except ValueError:
            before = weights.weights  # unreadable: train_on_benchmark says so
        if before != weights.weights:
            print(
                f"{out_dir / 'run'} holds a demo run from other encoder weights "
                f"({before or 'random'}): starting it over",
                flush=True,
            )
            force = True
    result = train_on_benchmark(
        dataset,
        architecture,
        encoder,
        out_dir=out_dir / "run",
        encoder_weights=weights.weights,
        patience=max(epochs, 1),
        epochs=epochs,
        batch_size=batch_size,
        crop=crop,
        seed=seed,
        data_dir=data_dir,
        repeats=repeats,
        initial_lr=initial_lr,
        verbose=2,
        force=force,
    )
    trained = time.perf_counter() - started
    # The demo's own report folders (summary.json is written beside the evaluation).
    metrics = evaluate_on_benchmark(
        out_dir / "run",
        dataset,
        split="test",
        out_dir=out_dir / "report",
        data_dir=data_dir,
        force=True,
    )
    for split in extra_tests:
        evaluate_on_benchmark(
            out_dir / "run",
            dataset,
            split=split,
            out_dir=out_dir / f"report_{split}",
            data_dir=data_dir,
            force=True,
        )
    summary = {
        "dataset": dataset,
        "architecture": architecture,
        "encoder": encoder,
        "encoder_weights": weights.record,
        "epochs": result.epochs_run,
        "best_validation_iou": result.best_iou,
        "best_epoch": None if result.best_epoch is None else result.best_epoch + 1,
        "test_mean_iou": metrics["mean_iou"],
        "test_per_class_iou": metrics["per_class_iou"],
        "training_seconds": round(trained, 1),
        "checkpoint_seconds": round(result.checkpoint_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    _write_json(out_dir / "report" / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return summary
