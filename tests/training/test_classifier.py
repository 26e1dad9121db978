"""train_classifier on a tiny MicroNet-style folder tree built through TFDS ``micronet``: the
recipe's values, a kill and resume, and the hand-off of the trained encoder to get_encoder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
import torch
from micronet_tf.tfds_datasets.micronet import MicronetConfig
from PIL import Image

from micronet_tf import load_model
from micronet_tf.data import make_classification_pipeline
from micronet_tf.encoders import get_encoder
from micronet_tf.training.checkpoints import latest_checkpoint
from micronet_tf.training.classifier import couple_weight_decay, step_decay, train_classifier
from tests.encoders.parity import assert_features_match


def _class_tree(root: Path, per_class: int = 6) -> None:
    """Three 'materials' that differ in texture, grey 8-bit PNGs of varying size."""
    rng = np.random.default_rng(0)
    for index, name in enumerate(("dendrites", "grains", "pores")):
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            size = (40 + 4 * k, 48)
            base = rng.normal(80 + 60 * index, 10 + 20 * index, size).clip(0, 255)
            Image.fromarray(base.astype(np.uint8)).save(folder / f"{k}.png")


def test_exported_lazily() -> None:
    import micronet_tf
    from micronet_tf import training

    assert training.train_classifier is train_classifier
    assert micronet_tf.train_classifier.__doc__  # the top-level wrapper


def test_step_decay_reads_the_paper() -> None:
    schedule = step_decay(0.1, 30, 0.9)
    assert [schedule(e) for e in (0, 29, 30, 59, 60, 90)] == pytest.approx(
        [0.1, 0.1, 0.09, 0.09, 0.081, 0.0729]
    )


@pytest.mark.parametrize("mode", ["pytorch", "decoupled"])
def test_weight_decay_matches_torch_sgd_only_when_coupled(mode: str) -> None:
    """Three SGD steps (momentum 0.9, large weight decay so the modes differ) against
    torch.optim.SGD(weight_decay=...), which adds wd * w to the gradient."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
    kernel, bias = rng.normal(size=(4, 3)).astype("float32"), np.full(3, 0.5, "float32")
    lr, wd = 0.1, 0.05

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.layers[0].set_weights([kernel, bias])
    if mode == "pytorch":
        couple_weight_decay(model, wd)
    model.compile(
        keras.optimizers.SGD(lr, momentum=0.9, weight_decay=wd if mode == "decoupled" else None),
        loss="mse",
    )
    reference = torch.nn.Linear(4, 3)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(kernel.T))
        reference.bias.copy_(torch.from_numpy(bias))
    optimizer = torch.optim.SGD(reference.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    for _ in range(3):
        model.train_on_batch(x, y)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(reference(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimizer.step()
    diff = np.abs(model.layers[0].get_weights()[0] - reference.weight.detach().numpy().T).max()
    if mode == "pytorch":
        assert diff < 1e-6
    else:
        assert diff > 1e-3  # Keras' decoupled decay is a different update


class _Killed(Exception):
    pass


class _KillAfter(keras.callbacks.Callback):
    """Simulates a crash after the given epoch has been logged and backed up."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if epoch == self.epoch:
            raise _Killed


def test_train_kill_resume_and_hand_the_encoder_over(tmp_path: Path) -> None:
    _class_tree(tmp_path / "manual")
    builder = tfds.builder_cls("micronet")(
        config=MicronetConfig(name="tiny", validation_per_class=2, seed=0),
        data_dir=tmp_path / "data",
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / "manual")
    )
    train = make_classification_pipeline(
        builder.as_dataset("train"), True, size=64, batch_size=6, seed=0
    )
    val = make_classification_pipeline(
        builder.as_dataset("validation"), False, size=64, batch_size=6
    )
    assert builder.info.features["label"].num_classes == 3
    images, labels = next(iter(train))
    assert images.shape == (6, 64, 64, 3) and labels.dtype.is_integer

    run = tmp_path / "run"
    options = dict(
        classes=3,
        out_dir=run,
        max_epochs=4,
        initial_lr=0.01,
        decay_every=1,
        seed=0,
        verbose=0,
        tensorboard=False,
        checkpoint_every=1,
    )
    with pytest.raises(_Killed):
        train_classifier("resnet18", train, val, callbacks=[_KillAfter(1)], **options)
    assert (run / "best.weights.h5").is_file() and not (run / "best.keras").exists()
    assert latest_checkpoint(run)[1]["epochs_done"] == 2
    assert not (run / "encoder.weights.h5").exists()
    result = train_classifier("resnet18", train, val, **options)
    assert (result.resumed_from, result.epochs_run) == (2, 2)  # epochs 2, 3 after the kill
    for path in (result.best_model, result.last_model, result.encoder_weights, result.log):
        assert path.is_file(), path
    with open(result.log) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    # lr 0.01 x 0.9 per "decay_every" (1) epochs, continued across the resume.
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx(
        [0.01, 0.009, 0.0081, 0.00729]
    )
    assert all(0.0 <= float(r["val_top1"]) <= float(r["val_top5"]) <= 1.0 for r in rows)
    assert all(float(r["top5"]) == 1.0 for r in rows)  # 3 classes: top-5 covers all
    # The logged loss is cross-entropy + wd/2 * |w|^2 (PyTorch-style decay); ce is the plain one.
    assert all(float(r["loss"]) > float(r["ce"]) > 0 for r in rows)
    val_top1 = [float(r["val_top1"]) for r in rows]
    assert result.best_top1 == pytest.approx(max(val_top1))
    assert result.best_epoch == val_top1.index(max(val_top1))
    assert json.loads((run / "best.json").read_text())["value"] == pytest.approx(max(val_top1))
    state = latest_checkpoint(run)[1]
    assert state["finished"] and state["callbacks"]["ResumableEarlyStopping"]["best"] == (
        pytest.approx(max(val_top1))
    )

    # The encoder inside best.keras == get_encoder(weights=encoder.weights.h5).
    classifier = load_model(result.best_model, compile=False)
    encoder = get_encoder("resnet18", weights=result.encoder_weights)
    trunk = keras.Model(
        classifier.input,
        [classifier.get_layer(n).output for n in ("relu", "layer1.1.relu2", "layer4.1.relu2")],
    )
    batch = images.numpy()
    ours = encoder(batch, training=False)
    reference = [np.asarray(t) for t in trunk(batch, training=False)]
    assert_features_match([ours[1], ours[2], ours[5]], reference, "encoder hand-off")
    if result.best_epoch != 3:  # then the restored best differs from the last epoch's weights
        last = load_model(result.last_model, compile=False)
        assert not np.allclose(
            last.get_layer("conv1").get_weights()[0], classifier.get_layer("conv1").get_weights()[0]
        )
    logits = np.asarray(classifier(batch, training=False))
    assert logits.shape == (6, 3) and np.isfinite(logits).all()
