"""``train_classifier``: MicroNet-style pre-training of an encoder as a material classifier."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from micronet_tf._files import atomic_output_path
from micronet_tf.training.callbacks import BEST_MODEL, AtomicCheckpoints
from micronet_tf.training.distribute import get_strategy
from micronet_tf.training.train import BACKUP_DIR, LOG_FILE

ENCODER_WEIGHTS = "encoder.weights.h5"


@dataclass
class ClassifierResult:
    out_dir: Path
    best_model: Path
    encoder_weights: Path
    best_top1: float | None
    epochs_run: int
    history: dict


def step_decay(initial_lr: float = 0.1, every: int = 30, factor: float = 0.9):
    """The paper's schedule: "lr 0.1 decayed 10% every 30 epochs", read as lr x 0.9 per 30
    epochs (epoch counted from 0)."""
    return lambda epoch, lr=None: initial_lr * factor ** (epoch // every)


def export_encoder_weights(classifier: keras.Model, encoder: str,
                           out: str | os.PathLike) -> Path:
    """Write the classifier's trunk as ``get_encoder(encoder)`` weights (layers match by their
    PyTorch-path names), so ``get_encoder(encoder, weights=out)`` loads the pre-trained encoder."""
    from micronet_tf.encoders import get_encoder

    target = get_encoder(encoder)
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(classifier.get_layer(layer.name).get_weights())
    out = Path(out)
    with atomic_output_path(out) as temporary:
        target.save_weights(temporary)
    return out


def train_classifier(
    encoder: str,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    *,
    classes: int,
    out_dir: str | os.PathLike,
    weights=None,
    initial_lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    decay_every: int = 30,
    decay_factor: float = 0.9,
    patience: int = 30,
    max_epochs: int = 100_000,
    strategy: str | tf.distribute.Strategy = "auto",
    seed: int | None = None,
    resume: bool = True,
    verbose: int | str = "auto",
) -> ClassifierResult:
    """SGD (momentum 0.9, weight decay 1e-4) at 0.1 x 0.9 per 30 epochs, top-1 / top-5
    accuracy, early stopping on validation top-1 after ``patience`` epochs (best weights
    restored). ``train_ds`` / ``val_ds``: ``(image, label)`` batches, e.g. from
    :func:`micronet_tf.data.make_classification_pipeline` over TFDS ``micronet``.

    Writes ``best.keras``, ``last.keras``, ``log.csv``, TensorBoard logs, a backup for resuming,
    and ``encoder.weights.h5`` for ``get_encoder(encoder, weights=...)``. Keras' SGD applies
    weight decay decoupled from the gradient (PyTorch's adds it to the gradient); with momentum
    the two differ slightly.
    """
    from micronet_tf.encoders import get_classifier

    if seed is not None:
        keras.utils.set_random_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    strategy = get_strategy(strategy)
    with strategy.scope():
        model = get_classifier(encoder, classes, weights=weights)
        model.compile(
            optimizer=keras.optimizers.SGD(initial_lr, momentum=momentum,
                                           weight_decay=weight_decay),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1"),
                     keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, classes), name="top5")],
        )
    stopper = keras.callbacks.EarlyStopping("val_top1", mode="max", patience=patience,
                                            restore_best_weights=True)
    callbacks = [
        keras.callbacks.LearningRateScheduler(
            step_decay(initial_lr, decay_every, decay_factor)
        ),
        stopper,
        AtomicCheckpoints(out_dir, monitor="val_top1"),
        keras.callbacks.CSVLogger(str(out_dir / LOG_FILE), append=resume),
        keras.callbacks.TensorBoard(str(out_dir / "tensorboard")),
    ]
    if resume:
        callbacks.append(keras.callbacks.BackupAndRestore(str(out_dir / BACKUP_DIR)))
    history = model.fit(train_ds, validation_data=val_ds, epochs=max_epochs,
                        callbacks=callbacks, shuffle=False, verbose=verbose)
    encoder_weights = export_encoder_weights(model, encoder, out_dir / ENCODER_WEIGHTS)
    top1 = history.history.get("val_top1")
    return ClassifierResult(
        out_dir=out_dir, best_model=out_dir / BEST_MODEL, encoder_weights=encoder_weights,
        best_top1=max(top1) if top1 else None, epochs_run=len(history.epoch),
        history=dict(history.history),
    )

