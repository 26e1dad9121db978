"""``pretrain_on_folders``: MicroNet-style classification pre-training on class folders
(``DATA/<class>/*.tif|png|jpg``), the recipe of :func:`~micronet_tf.training.train_classifier`.

The run folder is :func:`train_classifier`'s (resumable, ``encoder.weights.h5`` for
``get_encoder``) plus ``classes.json`` (the class names in label order) and a ``run.json`` that
records every file the run uses: its path below the data folder, class, split and sha256.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from micronet_tf.data.class_folders import list_class_folders, split_validation
from micronet_tf.files import atomic_output_path

logger = logging.getLogger(__name__)

CLASSES_FILE = "classes.json"
ARCHITECTURE = "classifier"
# Beside runs.RUN_IDENTITY: a run folder whose run.json differs in one of these holds another
# run (another validation draw, other files), refused unless force=True.
DATA_IDENTITY = ("val_per_class", "files")

_FLAGS = {"data_dir": "--data", "out_dir": "--out", "initial_lr": "--lr"}


def _given(argument: str, value, cli: bool) -> str:
    """``val_per_class=0`` (Python) or ``--val-per-class 0`` (command line)."""
    if cli:
        return f"{_FLAGS.get(argument, '--' + argument.replace('_', '-'))} {value!r}"
    return f"{argument}={value!r}"


def check_pretraining_arguments(
    *,
    encoder: str = "resnet50",
    val_per_class: int = 50,
    size: int = 224,
    batch_size: int = 32,
    epochs: int | None = None,
    patience: int = 30,
    initial_lr: float = 0.1,
    checkpoint_every: int | str = "5min",
    encoder_weights=None,
    cli: bool = False,
) -> None:
    """Reject bad arguments of :func:`pretrain_on_folders` before any data is read, any folder
    made or TensorFlow started; ``cli`` names the command's flags instead."""
    from micronet_tf.encoders import encoder_spec
    from micronet_tf.training.runs import check_training_arguments

    for argument, value, least in (("val_per_class", val_per_class, 1), ("size", size, 32)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            expected = (
                "a positive whole number"
                if least == 1
                else f"a whole number of pixels, at least {least} (the encoders' stride)"
            )
            raise ValueError(f"{_given(argument, value, cli)}: expected {expected}")
    check_training_arguments(
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        initial_lr=initial_lr,
        checkpoint_every=checkpoint_every,
        encoder_weights=encoder_weights,
        cli=cli,
    )
    try:
        encoder_spec(encoder)
    except ValueError as error:
        raise ValueError(f"{_given('encoder', encoder, cli)}: {error}") from None


def _list_classes(data_dir: Path) -> dict[str, list[Path]]:
    """The class folders, each with at least the 2 images a training / validation split needs."""
    given = _given("data_dir", os.fspath(data_dir), cli=False)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"{given}: not a folder; expected one sub-folder of images per "
            f"class, e.g. {data_dir}/<class>/<image>.tif"
        )
    try:
        classes = list_class_folders(data_dir)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{given}: {error}") from None
    if len(classes) < 2:
        raise ValueError(
            f"{given}: one class folder with images ({', '.join(classes)}); "
            "classification needs at least 2, one sub-folder per class"
        )
    small = {name: len(files) for name, files in classes.items() if len(files) < 2}
    if small:
        listing = ", ".join(f"{name!r} ({count} image)" for name, count in small.items())
        raise ValueError(
            f"{given}: class folder(s) {listing} too small: each class needs at "
            "least 2 images (one for training, one for validation); add images "
            "or move the folder out"
        )
    return classes


def _describe_files(
    data_dir: Path, classes: dict[str, list[Path]], validation: set[Path]
) -> list[dict]:
    """``run.json``'s record of the data: path below ``data_dir``, class, split, sha256."""
    from micronet_tf.files import sha256_of

    paths = [(name, path) for name, files in classes.items() for path in files]
    with ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4)) as pool:
        digests = list(pool.map(sha256_of, [path for _, path in paths]))
    return [
        {
            "path": path.relative_to(data_dir).as_posix(),
            "class": name,
            "split": "validation" if path in validation else "train",
            "sha256": digest,
        }
        for (name, path), digest in zip(paths, digests)
    ]


def _check_readable(data_dir: Path, files: list[dict], known: list[dict]) -> None:
    """Decode every file once (those an earlier start of this run decoded are skipped), so that
    an unreadable one fails now, by name, not in the middle of an epoch."""
    from micronet_tf.data.decode import read_rgb

    checked = {(f.get("path"), f.get("sha256")) for f in known if isinstance(f, dict)}
    todo = [f["path"] for f in files if (f["path"], f["sha256"]) not in checked]

    def failure(relative: str) -> str | None:
        try:
            read_rgb(data_dir / relative)
        except (ValueError, OSError) as error:
            return f"{relative} ({error})"
        return None

    with ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4)) as pool:
        failures = [f for f in pool.map(failure, todo) if f is not None]
    if failures:
        shown = "\n  ".join(failures[:10])
        more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
        raise ValueError(
            f"{_given('data_dir', os.fspath(data_dir), cli=False)}: "
            f"{len(failures)} unreadable image(s); fix or remove them:\n  "
            f"{shown}{more}"
        )


def _previous_files(folder: Path) -> list[dict]:
    try:
        return list(json.loads((folder / "run.json").read_text()).get("files") or [])
    except (OSError, ValueError, AttributeError):
        return []


def _check_same_run(folder: Path, config: dict) -> None:
    """Refuse a run folder whose run.json differs from ``config`` in a key of
    :data:`~micronet_tf.training.runs.RUN_IDENTITY` or :data:`DATA_IDENTITY` (all named)."""
    from micronet_tf.training import runs

    record = folder / runs.RUN_CONFIG
    if not record.is_file():
        return
    try:
        previous = json.loads(record.read_text())
    except ValueError:
        runs.prepare_run_folder(folder, config)  # raises its "unreadable" RunFolderError
        raise
    # data_sha256 (the files' record, hashed) is told by the per-file differences below.
    differences = [
        f"{key}: {previous.get(key)!r} there, {config.get(key)!r} now"
        for key in (*runs.RUN_IDENTITY, *DATA_IDENTITY)
        if key not in ("files", "data_sha256") and previous.get(key) != config.get(key)
    ]
    before = {f.get("path"): f for f in previous.get("files") or [] if isinstance(f, dict)}
    now = {f["path"]: f for f in config["files"]}
    for what, names in (
        ("new", [p for p in now if p not in before]),
        ("gone", [p for p in before if p not in now]),
        ("changed", [p for p in now if p in before and before[p] != now[p]]),
    ):
        if names:
            shown = ", ".join(map(str, names[:3])) + (", ..." if len(names) > 3 else "")
            differences.append(f"{len(names)} file(s) {what} ({shown})")
    if not differences and previous.get("data_sha256") != config["data_sha256"]:
        differences.append(
            f"data_sha256: {previous.get('data_sha256')!r} there, {config['data_sha256']!r} now"
        )
    if differences:
        raise runs.RunFolderError(
            f"run folder {folder} holds a different run ({'; '.join(differences)}). Pass a new "
            "--out, or --force to replace that run"
        )


def _write_json(path: Path, payload) -> None:
    with atomic_output_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2))


def _image_dataset(
    data_dir: Path,
    files: list[dict],
    labels: dict[str, int],
    *,
    training: bool,
    size: int,
    batch_size: int,
    seed: int,
):
    """Batches of :func:`~micronet_tf.data.make_classification_pipeline` from the files (the
    training order reshuffled each epoch over the whole list, before decoding)."""
    import numpy as np
    import tensorflow as tf

    from micronet_tf.data import make_classification_pipeline
    from micronet_tf.data.decode import read_rgb

    paths = [os.fspath(data_dir / f["path"]) for f in files]
    ds = tf.data.Dataset.from_tensor_slices(
        (paths, np.array([labels[f["class"]] for f in files], np.int64))
    )
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def load(path, label):
        image = tf.numpy_function(lambda p: read_rgb(p.decode()), [path], tf.uint8, stateful=False)
        image.set_shape((None, None, 3))
        # As TFDS ``micronet`` elements: make_classification_pipeline's ``_as_pair`` takes one
        # argument, which a dataset of (image, label) tuples would give it as two.
        return {"image": image, "label": label}

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    # The file list is shuffled already: no second buffer of decoded images (shuffle_buffer=1).
    ds = make_classification_pipeline(
        ds, training, size=size, batch_size=batch_size, seed=seed, shuffle_buffer=1
    )
    # Under MultiWorkerMirroredStrategy: training batches are split by element (the files are
    # listed in memory, not read from shards; AUTO would warn and do the same); every worker
    # validates on all images (as train_run does), which gives the same top-1 / top-5.
    policy = tf.data.experimental.AutoShardPolicy
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.DATA if training else policy.OFF
    return ds.with_options(options)


def _for_workers(strategy, train_ds, val_ds, batch_size: int, count: int):
    """Under several workers every step must give each replica at least one image: whole
    training batches only (the order changes each epoch, so no image is always left out) and,
    for validation, one copy of each image per replica (the same top-1 / top-5)."""
    import tensorflow as tf

    from micronet_tf.training.distribute import is_multiworker

    if not is_multiworker(strategy):
        return train_ds, val_ds
    copies = strategy.num_replicas_in_sync
    if batch_size < copies or count < batch_size:
        raise ValueError(
            f"batch_size={batch_size}: with {copies} replicas over several "
            f"workers a batch needs at least {copies} images and at most the "
            f"{count} training images"
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    train_ds = train_ds.unbatch().batch(batch_size, drop_remainder=True)
    val_ds = (
        val_ds.unbatch()
        .flat_map(lambda x, y: tf.data.Dataset.from_tensors((x, y)).repeat(copies))
        .batch(copies)
    )
    return train_ds, val_ds.with_options(options)


def pretrain_on_folders(
    data_dir: str | os.PathLike,
    encoder: str,
    *,
    out_dir: str | os.PathLike,
    val_per_class: int = 50,
    size: int = 224,
    batch_size: int = 32,
    epochs: int | None = None,
    patience: int = 30,
    initial_lr: float = 0.1,
    encoder_weights=None,
    strategy="auto",
    seed: int = 0,
    checkpoint_every: int | str = "5min",
    force: bool = False,
    verbose: int | str = "auto",
):
    """Pre-train ``encoder`` as a classifier of the class folders in ``data_dir``, MicroNet's way.

    ``val_per_class`` images of each class (drawn with ``seed``, the same on every run and
    machine) form the validation set; a class with fewer than twice that many gives half its
    images instead, with a warning; every class needs at least 2. Images may be grey, RGB or
    RGBA, 8 or 16 bit, TIFF / PNG / JPEG, of any size (random resized ``size`` crops for
    training, a centre crop for validation). ``epochs=None`` trains until early stopping
    (``patience`` epochs without a better validation top-1); ``encoder_weights`` starts the
    trunk from a checkpoint (NASA's, a zoo name or a ``.weights.h5``).

    Calling it again with the same arguments resumes the run in ``out_dir``; a finished run
    raises :class:`~micronet_tf.training.RunFinishedError` unless ``epochs`` extends it; a
    folder holding another run (other arguments or other files) is refused unless ``force``,
    which replaces it. Pass a ``tf.distribute.Strategy`` created at program start for
    MultiWorkerMirroredStrategy. Returns :class:`~micronet_tf.training.classifier.ClassifierResult`.
    """
    check_pretraining_arguments(
        encoder=encoder,
        val_per_class=val_per_class,
        size=size,
        batch_size=batch_size,
        epochs=epochs,
        patience=patience,
        initial_lr=initial_lr,
        checkpoint_every=checkpoint_every,
        encoder_weights=encoder_weights,
    )
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    classes = _list_classes(data_dir)
    if out_dir.resolve().is_relative_to(data_dir.resolve()):
        raise ValueError(
            f"out_dir={os.fspath(out_dir)!r} lies inside data_dir="
            f"{os.fspath(data_dir)!r}: the run folder would be read as a class; "
            "put the run folder outside the data folder"
        )
    train, validation = split_validation(classes, val_per_class, seed)

    from micronet_tf.training.distribute import get_strategy, worker_folder

    strategy = get_strategy(strategy)  # before TensorFlow is otherwise used (multi-worker)
    from micronet_tf.training.checkpoints import check_resumable
    from micronet_tf.training.classifier import ENCODER_WEIGHTS, train_classifier
    from micronet_tf.training.runs import start_run

    names = sorted(classes)  # split_validation's labels: the sorted class names
    files = _describe_files(data_dir, classes, {path for path, _ in validation})
    max_epochs = 100_000 if epochs is None else epochs
    config = {
        "task": "pretrain",
        "dataset": os.fspath(data_dir.resolve()),
        "architecture": ARCHITECTURE,
        "encoder": encoder,
        "encoder_weights": None if encoder_weights is None else os.fspath(encoder_weights),
        "class_names": names,
        "crop": size,
        "size": size,
        "batch_size": batch_size,
        "samples_per_epoch": len(train),
        "validation_samples": len(validation),
        "val_per_class": val_per_class,
        "seed": seed,
        "initial_lr": initial_lr,
        "patience": patience,
        "epochs": epochs,
        "init": None,
        # Pre-training reads 8-bit RGB and scales by the dtype's range (no other choice yet).
        "normalization": "dtype",
        "data_sha256": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest(),
        "files": files,
    }
    folder = worker_folder(out_dir, strategy)
    known = []
    if not force:
        _check_same_run(folder, config)
        check_resumable(folder, max_epochs)
        known = _previous_files(folder)
    _check_readable(data_dir, files, known)
    folder = start_run(out_dir, config, strategy=strategy, force=force)
    if force:  # train_classifier's own outputs, beside runs.RUN_FILES
        for name in (ENCODER_WEIGHTS, CLASSES_FILE):
            (folder / name).unlink(missing_ok=True)
    _write_json(folder / CLASSES_FILE, names)
    if verbose != 0:
        print(
            f"{data_dir}: {len(names)} classes ({', '.join(names)}), {len(train)} training "
            f"and {len(validation)} validation images",
            flush=True,
        )

    labels = {name: label for label, name in enumerate(names)}
    options = dict(size=size, batch_size=batch_size, seed=seed)
    train_ds = _image_dataset(
        data_dir, [f for f in files if f["split"] == "train"], labels, training=True, **options
    )
    val_ds = _image_dataset(
        data_dir,
        [f for f in files if f["split"] == "validation"],
        labels,
        training=False,
        **options,
    )
    train_ds, val_ds = _for_workers(strategy, train_ds, val_ds, batch_size, len(train))
    return train_classifier(
        encoder,
        train_ds,
        val_ds,
        classes=len(names),
        out_dir=out_dir,
        weights=encoder_weights,
        initial_lr=initial_lr,
        patience=patience,
        max_epochs=max_epochs,
        strategy=strategy,
        seed=seed,
        resume=True,
        checkpoint_every=checkpoint_every,
        verbose=verbose,
    )


def validation_scores(result) -> dict:
    """``{"epoch", "val_top1", "val_top5"}`` of the run's best epoch (1-based ``epoch``), read
    from its ``log.csv`` (which spans resumed runs too); empty when there is no best epoch."""
    if result.best_epoch is None or not Path(result.log).is_file():
        return {}
    with open(result.log, newline="") as handle:
        for row in csv.DictReader(handle):
            if int(row["epoch"]) == result.best_epoch:
                return {
                    "epoch": result.best_epoch + 1,
                    "val_top1": float(row["val_top1"]),
                    "val_top5": float(row["val_top5"]),
                }
    return {}
