"""``train_classifier``: MicroNet-style pre-training of an encoder as a material classifier."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from micronet_tf.files import atomic_output_path
from micronet_tf.training.checkpoints import BEST_MODEL, LAST_MODEL, LOG_FILE
from micronet_tf.training.fitting import fit_run, start_run

ENCODER_WEIGHTS = "encoder.weights.h5"
MONITOR = "val_top1"
WEIGHT_DECAY_MODES = ("pytorch", "decoupled")


@dataclass
class ClassifierResult:
    """Where a pre-training run's artifacts are and how it ended."""

    out_dir: Path
    best_model: Path
    last_model: Path
    encoder_weights: Path
    log: Path
    best_top1: float | None
    best_epoch: int | None
    epochs_run: int
    history: dict
    resumed_from: int | None = None  # epochs done before this call (None: a fresh run)


def step_decay(
    initial_lr: float = 0.1, every: int = 30, factor: float = 0.9
) -> Callable[..., float]:
    """The paper's schedule: "lr 0.1 decayed 10% every 30 epochs", read as lr x 0.9 per 30
    epochs (epoch counted from 0); ``factor=0.1`` gives the ImageNet-style x0.1 reading."""
    return lambda epoch, lr=None: initial_lr * factor ** (epoch // every)


def couple_weight_decay(model: keras.Model, weight_decay: float) -> None:
    """PyTorch's ``SGD(weight_decay=wd)``: add ``wd * w`` to every gradient (before momentum),
    as an L2 term ``wd / 2 * sum(w**2)`` on each trainable variable (not saved with the model)."""
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    for variable in model.trainable_variables:
        variable.regularizer = regularizer


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping whose state (best value and epoch, epochs waited) travels through
    :class:`~micronet_tf.training.checkpoints.RunCheckpoint`, which also keeps and restores the
    best weights (so ``restore_best_weights`` stays off here)."""

    def __init__(self, monitor: str = MONITOR, mode: str = "max", patience: int = 30) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience!r}")
        super().__init__(monitor=monitor, mode=mode, patience=patience)

    def get_state(self) -> dict:
        best = None if self.best is None or abs(self.best) == float("inf") else float(self.best)
        return {"best": best, "best_epoch": self.best_epoch, "wait": self.wait}

    def set_state(self, state: dict) -> None:
        """Called by RunCheckpoint's on_train_begin, after this callback's own (place it first)."""
        if state["best"] is not None:
            self.best, self.best_epoch = state["best"], state["best_epoch"]
            self.wait = state["wait"]


def export_encoder_weights(classifier: keras.Model, encoder: str, out: str | os.PathLike) -> Path:
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
    weight_decay_mode: str = "pytorch",
    decay_every: int = 30,
    decay_factor: float = 0.9,
    patience: int = 30,
    max_epochs: int = 100_000,
    strategy: str | tf.distribute.Strategy = "auto",
    seed: int | None = None,
    resume: bool = True,
    checkpoint_every: int | str = "5min",
    tensorboard: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> ClassifierResult:
    """Pre-train ``get_classifier(encoder, classes)`` like MicroNet: SGD (momentum 0.9, weight
    decay 1e-4) at lr 0.1 x 0.9 every 30 epochs, top-1 / top-5 accuracy, early stopping when
    validation top-1 has not improved for ``patience`` epochs (best weights restored).

    ``train_ds`` / ``val_ds``: ``(image, label)`` batches, e.g. from
    :func:`micronet_tf.data.make_classification_pipeline` over TFDS ``micronet``; the batch size
    is the global one. ``weight_decay_mode="pytorch"`` adds ``wd * w`` to the gradient as
    ``torch.optim.SGD`` does (the logged ``loss`` then includes the L2 term; ``ce`` is the plain
    cross-entropy); ``"decoupled"`` uses Keras' SGD ``weight_decay`` (``w -= lr * wd * w``).

    ``out_dir`` is a run folder as :func:`~micronet_tf.training.train_segmentation` writes
    it (a killed run resumes from its last checkpoint, every ``checkpoint_every``), plus
    ``encoder.weights.h5`` (the best trunk) for ``get_encoder(encoder, weights=...)``.
    """
    from micronet_tf.encoders import get_classifier

    if weight_decay_mode not in WEIGHT_DECAY_MODES:
        raise ValueError(
            f"weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {weight_decay_mode!r}"
        )
    if decay_every < 1:
        raise ValueError(f"decay_every must be >= 1 epoch, got {decay_every!r}")
    strategy, out_dir = start_run(
        out_dir, strategy, max_epochs=max_epochs, resume=resume, seed=seed
    )
    coupled = weight_decay_mode == "pytorch"
    with strategy.scope():
        model = get_classifier(encoder, classes, weights=weights)
        if coupled:
            couple_weight_decay(model, weight_decay)
        model.compile(
            optimizer=keras.optimizers.SGD(
                initial_lr, momentum=momentum, weight_decay=None if coupled else weight_decay
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[
                keras.metrics.SparseCategoricalAccuracy(name="top1"),
                keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, classes), name="top5"),
                keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="ce"),
            ],
        )
    stopper = ResumableEarlyStopping(patience=patience)
    history, checkpoint = fit_run(
        model,
        train_ds,
        val_ds,
        out_dir=out_dir,
        strategy=strategy,
        monitor=MONITOR,
        schedule=[
            keras.callbacks.LearningRateScheduler(
                step_decay(initial_lr, decay_every, decay_factor)
            ),
            stopper,
        ],
        stateful=[stopper],
        max_epochs=max_epochs,
        resume=resume,
        checkpoint_every=checkpoint_every,
        tensorboard=tensorboard,
        callbacks=callbacks,
        verbose=verbose,
    )
    # RunCheckpoint restored the best weights at the end of fit: the trunk is best.keras'.
    encoder_weights = export_encoder_weights(model, encoder, out_dir / ENCODER_WEIGHTS)
    best = stopper.best
    return ClassifierResult(
        out_dir=out_dir,
        best_model=out_dir / BEST_MODEL,
        last_model=out_dir / LAST_MODEL,
        encoder_weights=encoder_weights,
        log=out_dir / LOG_FILE,
        best_top1=float(best) if best is not None else None,
        best_epoch=stopper.best_epoch if best is not None else None,
        epochs_run=len(history.epoch),
        history=dict(history.history),
        resumed_from=checkpoint.resumed_from,
    )
