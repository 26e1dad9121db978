"""What every training run shares (segmentation and classification): the strategy and run
folder first, the seed, then ``fit`` with the crash-proof checkpoint, TensorBoard and the
user's callbacks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from micronet_tf.compute import enable_determinism
from micronet_tf.data.pipeline import without_autotuning
from micronet_tf.training.checkpoints import RunCheckpoint, check_resumable
from micronet_tf.training.distribute import get_strategy, worker_folder


def start_run(
    out_dir: str | os.PathLike,
    strategy: str | tf.distribute.Strategy,
    *,
    max_epochs: int,
    resume: bool,
    seed: int | None,
    deterministic: bool = False,
) -> tuple[tf.distribute.Strategy, Path]:
    """Check ``max_epochs``, make the strategy (first: a multi-worker one must precede all
    else), this worker's run folder (refusing a finished run when resuming), and seed."""
    if max_epochs < 1:
        raise ValueError(f"max_epochs={max_epochs!r}: expected a positive number of epochs")
    strategy = get_strategy(strategy)
    out_dir = worker_folder(out_dir, strategy)
    if resume:
        check_resumable(out_dir, max_epochs)
    if deterministic:
        enable_determinism(seed)
    elif seed is not None:
        keras.utils.set_random_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    return strategy, out_dir


def fit_run(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    *,
    out_dir: Path,
    strategy: tf.distribute.Strategy,
    monitor: str,
    schedule: Sequence[keras.callbacks.Callback],
    stateful: Sequence[keras.callbacks.Callback],
    max_epochs: int,
    resume: bool,
    checkpoint_every: int | str,
    tensorboard: bool,
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: int | str,
) -> tuple[keras.callbacks.History, RunCheckpoint]:
    """``model.fit`` with the run's ``schedule`` callbacks (``stateful`` ones among them have
    their state kept by the checkpoint), the :class:`RunCheckpoint` on ``monitor``, TensorBoard,
    then the user's ``callbacks``."""
    checkpoint = RunCheckpoint(
        out_dir,
        monitor=monitor,
        every=checkpoint_every,
        resume=resume,
        stateful=list(stateful),
        verbose=verbose != 0,
        strategy=strategy,
    )
    with strategy.scope():
        build_optimizer(model)
    built_in = [*schedule, checkpoint]
    if tensorboard:
        built_in.append(keras.callbacks.TensorBoard(str(out_dir / "tensorboard")))
    train_steps = batches_per_pass(train_ds, strategy)
    history = model.fit(
        without_autotuning(train_ds.repeat() if train_steps else train_ds),
        validation_data=without_autotuning(val_ds),
        epochs=max_epochs,
        steps_per_epoch=train_steps,
        callbacks=built_in + list(callbacks),
        shuffle=False,
        verbose=verbose,
    )
    return history, checkpoint


def batches_per_pass(ds: tf.data.Dataset, strategy: tf.distribute.Strategy) -> int | None:
    """The number of batches in one pass over ``ds`` when it is known and finite (and one
    worker reads all of it), else None. ``fit_run`` then repeats ``ds`` and gives ``fit`` this
    many steps per epoch: one iterator serves the whole run (each epoch still sees every
    element once, reshuffled and re-augmented), where Keras would open two per epoch and
    discard one while it is producing batches."""
    if not isinstance(ds, tf.data.Dataset) or strategy.extended._in_multi_worker_mode():
        return None
    batches = int(ds.cardinality())
    return batches if batches > 0 else None


def build_optimizer(model: keras.Model) -> None:
    """Create the optimizer's slots before ``fit``: left to Keras (no distribution strategy),
    they are created while the first step is traced, and ``tf.function`` then traces the whole
    step a second time (4 s of a U-Net resnet18's first epoch on 2 cores)."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
