"""train_segmentation end to end on synthetic data: artifacts, resuming after a crash."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from micronet_tf.models import create_segmentation_model
from micronet_tf.training import train_segmentation
from micronet_tf.training.fitting import batches_per_pass
from tests.training._synthetic import blobs, dataset, small_conv_model


class Crash(keras.callbacks.Callback):
    """Simulates a killed run: dies at the end of epoch ``at`` (after the backup is written)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("simulated kill")


def _epochs_logged(log: Path) -> list[int]:
    with open(log) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_train_writes_artifacts_and_resumes_after_a_crash(tmp_path: Path) -> None:
    images, masks = blobs(4, seed=0)
    train, val = dataset(images, masks, 4), dataset(images[:2], masks[:2], 2)  # full batch

    def build():
        return create_segmentation_model("Unet", "resnet18", decoder_channels=(32, 16, 16, 8, 8))

    with pytest.raises(KeyboardInterrupt):
        train_segmentation(
            build,
            train,
            val,
            out_dir=tmp_path,
            patience=5,
            max_epochs=5,
            seed=0,
            checkpoint_every=1,
            callbacks=[Crash(at=2)],
            verbose=0,
        )
    assert _epochs_logged(tmp_path / "log.csv") == [0, 1, 2]
    result = train_segmentation(
        build,
        train,
        val,
        out_dir=tmp_path,
        patience=5,
        max_epochs=5,
        seed=0,
        checkpoint_every=1,
        verbose=0,
    )
    assert _epochs_logged(result.log) == [0, 1, 2, 3, 4]  # went on from epoch 3
    assert result.epochs_run == 2 and result.resumed_from == 3
    for path in (result.best_model, result.last_model, tmp_path / "best.weights.h5"):
        assert path.is_file(), path
    assert (tmp_path / "tensorboard").is_dir()
    assert 0.0 <= result.best_iou <= 1.0 and result.best_epoch is not None
    best = keras.saving.load_model(result.best_model)
    assert best.output_shape == (None, None, None, 1)
    assert not list(tmp_path.glob(".partial-*"))


def test_training_learns_the_synthetic_task(tmp_path: Path) -> None:
    images, masks = blobs(8, seed=1)
    train, val = dataset(images, masks, 4), dataset(images, masks, 8)
    model = create_segmentation_model("Unet", "resnet18", decoder_channels=(32, 16, 16, 8, 8))
    result = train_segmentation(
        model,
        train,
        val,
        out_dir=tmp_path,
        patience=30,
        max_epochs=12,
        initial_lr=1e-3,
        seed=1,
        tensorboard=False,
        verbose=0,
    )
    losses = result.history["loss"]
    assert losses[-1] < losses[0]
    assert np.isfinite(losses).all()


class _TracedModel(keras.Model):
    """A model that counts how often its training step is traced into a graph."""

    traces = 0

    def train_step(self, data):
        type(self).traces += 1  # Python runs only while tf.function traces
        return super().train_step(data)


def test_training_step_is_traced_once(tmp_path: Path) -> None:
    """Keras creates an unbuilt optimizer's slots while tracing the first step, which makes
    tf.function trace the whole step twice; fit_run builds the optimizer first."""
    images, masks = blobs(4, size=32, seed=2)
    inner = small_conv_model()
    model = _TracedModel(inner.inputs, inner.outputs, name="traced")
    train_segmentation(
        model,
        dataset(images, masks, 2),
        dataset(images[:2], masks[:2], 2),
        out_dir=tmp_path,
        patience=3,
        max_epochs=2,
        seed=0,
        tensorboard=False,
        verbose=0,
    )
    assert _TracedModel.traces == 1


class _FitRecorder(keras.Model):
    """Records what ``fit`` is given."""

    calls: list[tuple] = []

    def fit(self, x=None, **kwargs):
        _FitRecorder.calls.append((x, kwargs))
        return super().fit(x, **kwargs)


def test_one_iterator_serves_the_run_and_each_epoch_is_one_pass(tmp_path: Path) -> None:
    """Freeing an autotuned tf.data iterator waits for its autotuning thread, and Keras frees
    one at every validation and opens two per epoch over a finite dataset (stalls of 2-20 s
    per epoch measured on 2 cores): fit_run turns autotuning off and repeats a training set
    of known length, with its batches as the steps per epoch; each epoch is still one pass."""
    images, masks = blobs(6, size=32, seed=3)
    rng = np.random.default_rng(0)
    seen: list[int] = []
    passes: list[int] = []  # len(seen) when each pass over the source began

    def elements():
        passes.append(len(seen))
        for index in rng.permutation(6):
            seen.append(int(index))
            yield images[index], masks[index]

    spec = tf.TensorSpec((32, 32, 3), tf.float32), tf.TensorSpec((32, 32, 1), tf.float32)
    source = tf.data.Dataset.from_generator(elements, output_signature=spec)
    train = source.apply(tf.data.experimental.assert_cardinality(6)).batch(2).prefetch(2)
    assert batches_per_pass(train, tf.distribute.get_strategy()) == 3
    assert batches_per_pass(train.repeat(), tf.distribute.get_strategy()) is None
    assert batches_per_pass(train.filter(lambda x, y: True), tf.distribute.get_strategy()) is None
    inner = small_conv_model()
    epochs = 3
    result = train_segmentation(
        _FitRecorder(inner.inputs, inner.outputs, name="recorded"),
        train,
        dataset(images[:2], masks[:2], 2),
        out_dir=tmp_path,
        patience=5,
        max_epochs=epochs,
        seed=0,
        tensorboard=False,
        verbose=0,
    )
    (given, options), *_ = _FitRecorder.calls
    assert int(given.cardinality()) == tf.data.INFINITE_CARDINALITY
    assert options["steps_per_epoch"] == 3
    assert not given.options().autotune.enabled  # see data.pipeline.without_autotuning
    assert not options["validation_data"].options().autotune.enabled
    assert result.epochs_run == epochs
    # One pass per epoch (the last may have started ahead), none cut short.
    assert passes[:epochs] == [0, 6, 12] and len(passes) <= epochs + 1
    assert all(sorted(seen[6 * e : 6 * e + 6]) == list(range(6)) for e in range(epochs))
