"""``train_segmentation``: the paper's recipe on one device, several, or several machines."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from micronet_tf.compute import loss_scaled, with_precision
from micronet_tf.training.callbacks import TwoStageSchedule
from micronet_tf.training.checkpoints import BEST_MODEL, LAST_MODEL, LOG_FILE
from micronet_tf.training.fitting import fit_run, start_run
from micronet_tf.training.losses import DiceBCELoss
from micronet_tf.training.metrics import iou_metrics
from micronet_tf.training.optimizers import TorchAdam

ModelOrBuilder = keras.Model | Callable[[], keras.Model]


@dataclass
class TrainingResult:
    """Where a run's artifacts are and how it ended."""

    out_dir: Path
    best_model: Path
    last_model: Path
    log: Path
    best_iou: float | None
    best_epoch: int | None
    epochs_run: int
    history: dict
    resumed_from: int | None = None  # epochs done before this call (None: a fresh run)
    checkpoint_seconds: float = 0.0  # time spent writing checkpoints and best weights


def _class_names(model: keras.Model, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None:
        return list(class_names)
    try:
        from micronet_tf.models import class_names as stored

        names = stored(model)
    except ValueError:
        names = None
    return list(names) if names else [f"class{i}" for i in range(model.output_shape[-1])]


def output_activation(model: keras.Model) -> str:
    """How the metrics and the default loss must read the model's output."""
    try:
        layer = model.get_layer("activation")
    except ValueError:
        return "sigmoid"  # not one of ours: assume logits
    return "sigmoid" if getattr(layer, "activation", "identity") == "identity" else "none"


def _build(model: ModelOrBuilder, strategy: tf.distribute.Strategy) -> keras.Model:
    """Build (a builder) in the strategy's scope, or check that a built model was."""
    is_default = strategy is tf.distribute.get_strategy()  # called outside any scope
    with strategy.scope():
        built = model() if callable(model) and not isinstance(model, keras.Model) else model
    if isinstance(model, keras.Model) and not is_default:
        variable = built.weights[0].value
        if not isinstance(variable, tf.distribute.DistributedValues) and not (
            strategy.extended.variable_created_in_scope(variable)
        ):
            raise ValueError(
                f"the model was built outside the {type(strategy).__name__}'s scope: pass a "
                "function that builds it (it is called inside the scope), or build it under "
                "strategy.scope()"
            )
    return built


def train_segmentation(
    model: ModelOrBuilder,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    *,
    out_dir: str | os.PathLike,
    patience: int = 30,
    initial_lr: float = 2e-4,
    final_lr: float = 1e-5,
    max_epochs: int = 100_000,
    loss: keras.losses.Loss | None = None,
    class_names: Sequence[str] | None = None,
    strategy: str | tf.distribute.Strategy = "auto",
    seed: int | None = None,
    resume: bool = True,
    checkpoint_every: int | str = "5min",
    tensorboard: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    deterministic: bool = False,
    mixed_precision: str | None = None,
    jit_compile: bool = False,
) -> TrainingResult:
    """Train with Adam as PyTorch computes it (:class:`~micronet_tf.training.TorchAdam`) and the
    two-stage schedule on validation IoU (see :class:`TwoStageSchedule`).

    ``train_ds`` / ``val_ds`` yield ``(image, target)`` batches (see
    :func:`micronet_tf.data.make_segmentation_pipeline`); one pass over ``train_ds`` is one
    epoch, so a single batch holding the whole training set is the paper's full-batch mode.
    ``model`` is a model or, for several replicas, a function building it (called in the
    strategy's scope). ``out_dir`` gets ``best.weights.h5`` at every improvement, ``log.csv``,
    TensorBoard logs, the resumable state every ``checkpoint_every`` (epochs, or ``"10min"``)
    and at the end, then ``best.keras`` and ``last.keras`` (see
    :mod:`micronet_tf.training.checkpoints`). With ``resume=True`` a killed run continues from
    its last checkpoint, and a finished one raises :class:`RunFinishedError` unless
    ``max_epochs`` extends it; ``resume=False`` starts afresh. ``callbacks`` run after the
    built-in ones (schedule, checkpoints).

    ``deterministic=True`` (needs ``seed``) makes TensorFlow's ops deterministic, so that two
    runs on one machine give the same log and weights when ``train_ds`` is deterministic too
    (:func:`~micronet_tf.data.make_segmentation_pipeline` with ``seed`` and
    ``deterministic=True``). ``mixed_precision`` (``"float16"`` / ``"bfloat16"``) computes in
    that type with float32 weights and output (float16: with dynamic loss scaling);
    ``jit_compile=True`` compiles the training step with XLA.
    """
    strategy, out_dir = start_run(
        out_dir,
        strategy,
        max_epochs=max_epochs,
        resume=resume,
        seed=seed,
        deterministic=deterministic,
    )
    built = _build(model, strategy)
    with strategy.scope():
        built = with_precision(built, mixed_precision)
        names = _class_names(built, class_names)
        activation = output_activation(built)
        built.compile(
            optimizer=loss_scaled(TorchAdam(initial_lr), built),
            loss=loss if loss is not None else DiceBCELoss(activation=activation),
            metrics=iou_metrics(names, activation=activation),
            jit_compile=jit_compile,
        )
    schedule = TwoStageSchedule(
        patience, initial_lr, final_lr, out_dir=out_dir, restore_on_end=False
    )
    history, checkpoint = fit_run(
        built,
        train_ds,
        val_ds,
        out_dir=out_dir,
        strategy=strategy,
        monitor=schedule.monitor,
        schedule=[schedule],
        stateful=[schedule],
        max_epochs=max_epochs,
        resume=resume,
        checkpoint_every=checkpoint_every,
        tensorboard=tensorboard,
        callbacks=callbacks,
        verbose=verbose,
    )
    return TrainingResult(
        out_dir=out_dir,
        best_model=out_dir / BEST_MODEL,
        last_model=out_dir / LAST_MODEL,
        log=out_dir / LOG_FILE,
        best_iou=schedule.best,
        best_epoch=schedule.best_epoch,
        epochs_run=len(history.epoch),
        history=dict(history.history),
        resumed_from=checkpoint.resumed_from,
        checkpoint_seconds=checkpoint.seconds,
    )
