"""A small training run that SIGKILLs itself at a chosen point (for test_kill_and_resume).

    python -m tests.training._killable_run OUT_DIR KILL [CHECKPOINT_EVERY]

KILL: ``none``; ``batch:E`` (inside epoch E); ``logged:E`` (just after epoch E's log row);
``checkpoint:E`` (while epoch E's checkpoint folder is being written); ``best:E`` (while epoch
E's weights, counted as an improvement whatever its score, are being written as the best, half
written: a kill that must not hang on whether this seed's run still improves at epoch E).
"""

from __future__ import annotations

import os
import signal
import sys

import keras

from micronet_tf.training import checkpoints, train_segmentation
from tests.training._synthetic import blobs, dataset, small_conv_model

EPOCHS = 6


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(keras.callbacks.Callback):
    def __init__(self, kind: str, epoch: int) -> None:
        super().__init__()
        self.kind, self.at, self.epoch = kind, epoch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.kind == "batch" and self.epoch == self.at and batch == 1:
            die()

    def on_epoch_end(self, epoch, logs=None):
        if self.kind == "logged" and epoch == self.at:
            die()


def main(out_dir: str, kill: str, every: str = "1") -> None:
    kind, _, at = kill.partition(":")
    killer = KillAt(kind, int(at or -1))
    if kind == "checkpoint":  # die once the folder's state file is written, before its rename
        original = checkpoints.sha256_of

        def hashing(path):
            if killer.epoch == killer.at:
                die()
            return original(path)

        checkpoints.sha256_of = hashing
    if kind == "best":  # die with the new best weights half written
        original_save = checkpoints.save_model_weights
        original_improved = checkpoints.RunCheckpoint._improved

        def improved(self, value):
            return killer.epoch >= killer.at or original_improved(self, value)

        checkpoints.RunCheckpoint._improved = improved

        def saving(model, path):
            original_save(model, path)
            if killer.epoch >= killer.at:
                with open(path, "r+b") as handle:
                    handle.truncate(os.path.getsize(path) // 2)
                die()

        checkpoints.save_model_weights = saving
    images, masks = blobs(8, size=32, seed=0)
    train, val = dataset(images, masks, 2), dataset(images[:4], masks[:4], 4)
    result = train_segmentation(
        small_conv_model(),
        train,
        val,
        out_dir=out_dir,
        patience=20,
        max_epochs=EPOCHS,
        initial_lr=1e-2,
        seed=0,
        tensorboard=False,
        checkpoint_every=every,
        callbacks=[killer],
        verbose=0,
    )
    print(f"finished resumed_from={result.resumed_from} epochs_run={result.epochs_run}")


if __name__ == "__main__":
    main(*sys.argv[1:])
