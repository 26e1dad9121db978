"""Run by test_distributed.py in a fresh process: train the small model under a strategy and
write the per-epoch losses and final weights to an .npz file.

    python -m tests.training._distributed_run STRATEGY OUT_DIR RESULT.npz [LOGICAL_CPUS]
"""

from __future__ import annotations

import sys

import keras
import numpy as np
import tensorflow as tf


def main() -> None:
    strategy_name, out_dir, result = sys.argv[1:4]
    cpus = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    if cpus > 1:
        physical = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            physical, [tf.config.LogicalDeviceConfiguration()] * cpus
        )
    from micronet_tf.training import DiceBCELoss, get_strategy, train_segmentation
    from tests.training._synthetic import blobs, dataset, small_conv_model

    if strategy_name == "mirrored":
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpus)])
    else:
        strategy = get_strategy(strategy_name)
    images, masks = blobs(8, size=32, seed=1)
    train = dataset(images, masks, batch=4)
    val = dataset(images[:4], masks[:4], batch=4)

    def build():
        keras.utils.set_random_seed(3)
        return small_conv_model()

    outcome = train_segmentation(
        build,
        train,
        val,
        out_dir=out_dir,
        patience=50,
        max_epochs=4,
        strategy=strategy,
        loss=DiceBCELoss(bce_weight=1.0),
        tensorboard=False,
        resume=False,
        verbose=0,
        seed=3,
    )
    model = keras.saving.load_model(outcome.last_model)
    np.savez(
        result,
        loss=np.array(outcome.history["loss"]),
        **{f"w{i}": w for i, w in enumerate(model.get_weights())},
    )


if __name__ == "__main__":
    main()
