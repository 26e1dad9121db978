"""Choosing a tf.distribute strategy by name (the TensorFlow-only edge of training)."""

from __future__ import annotations

import functools

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multiworker", "one_device")


def get_strategy(strategy: str | tf.distribute.Strategy = "auto") -> tf.distribute.Strategy:
    """``auto``: MirroredStrategy over all local GPUs when there are several, else TensorFlow's
    default placement (a model built anywhere works);
    ``mirrored``: all local GPUs (or CPUs); ``multiworker``: MultiWorkerMirroredStrategy (reads
    ``TF_CONFIG``); ``one_device``: the first GPU, else the CPU. A Strategy passes through."""
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES} or a tf.distribute.Strategy, "
                         f"got {strategy!r}")
    if strategy == "multiworker":
        # Before anything initialises TensorFlow's runtime: collectives are set up at startup.
        return _reduce_nests(tf.distribute.MultiWorkerMirroredStrategy())
    gpus = tf.config.list_logical_devices("GPU")
    if strategy == "mirrored" or (strategy == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if strategy == "auto":
        return tf.distribute.get_strategy()
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def _reduce_nests(strategy: tf.distribute.Strategy) -> tf.distribute.Strategy:
    """Make MultiWorkerMirroredStrategy's ``reduce`` take what Keras 3.15's ``fit`` gives it.

    With several workers, Keras (1) reduces a whole ``(x, y)`` batch in one call, which the
    strategy refuses (TensorFlow's "TODO: support `value` being a nest"), and (2) averages
    scalar metric values "along axis 0", which has no axis 0. Reducing leaf by leaf, and
    scalars across replicas only, is what those calls mean.
    """
    reduce = strategy.reduce

    @functools.wraps(reduce)
    def reduce_each(reduce_op, value, axis=None):
        # Only plain Python containers: tf.nest would also open the DistributedValues.
        if isinstance(value, (list, tuple)):
            return type(value)(reduce_each(reduce_op, v, axis) for v in value)
        if isinstance(value, dict):
            return {k: reduce_each(reduce_op, v, axis) for k, v in value.items()}
        if axis is not None and strategy.experimental_local_results(value)[0].shape.rank == 0:
            axis = None
        return reduce(reduce_op, value, axis=axis)

    strategy.reduce = reduce_each
    return strategy
