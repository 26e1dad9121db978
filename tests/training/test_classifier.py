"""train_classifier on a tiny MicroNet-style folder tree built through TFDS ``micronet``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from micronet_tf.tfds_datasets.micronet import MicronetConfig
from PIL import Image

from micronet_tf.data import make_classification_pipeline
from micronet_tf.encoders import get_encoder
from micronet_tf.training.classifier import step_decay, train_classifier
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


def test_step_decay_reads_the_paper() -> None:
    schedule = step_decay(0.1, 30, 0.9)
    assert [schedule(e) for e in (0, 29, 30, 59, 60)] == pytest.approx(
        [0.1, 0.1, 0.09, 0.09, 0.081]
    )


def test_train_classifier_and_hand_the_encoder_over(tmp_path: Path) -> None:
    _class_tree(tmp_path / "manual")
    builder = tfds.builder_cls("micronet")(
        config=MicronetConfig(name="tiny", validation_per_class=2, seed=0),
        data_dir=tmp_path / "data",
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / "manual"))
    train = make_classification_pipeline(builder.as_dataset("train"), True, size=64,
                                         batch_size=6, seed=0)
    val = make_classification_pipeline(builder.as_dataset("validation"), False, size=64,
                                       batch_size=6)
    images, labels = next(iter(train))
    assert images.shape == (6, 64, 64, 3) and labels.dtype.is_integer

    result = train_classifier("resnet18", train, val, classes=3, out_dir=tmp_path / "run",
                              max_epochs=3, initial_lr=0.01, seed=0, verbose=0)
    assert result.epochs_run == 3
    for path in (result.best_model, result.encoder_weights, tmp_path / "run" / "log.csv"):
        assert path.is_file(), path
    with open(tmp_path / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.01] * 3)
    assert all(0.0 <= float(r["val_top1"]) <= float(r["val_top5"]) <= 1.0 for r in rows)

    # The encoder inside the classifier == get_encoder(weights=encoder.weights.h5).
    from micronet_tf import load_model

    classifier = load_model(result.best_model)
    encoder = get_encoder("resnet18", weights=result.encoder_weights)
    trunk = [classifier.get_layer(n).output for n in ("relu", "layer1.1.relu2",
                                                       "layer4.1.relu2")]
    import keras

    trunk_model = keras.Model(classifier.input, trunk)
    batch = images.numpy()
    ours = encoder(batch, training=False)
    reference = [np.asarray(t) for t in trunk_model(batch, training=False)]
    assert_features_match([ours[1], ours[2], ours[5]], reference, "encoder hand-off")
