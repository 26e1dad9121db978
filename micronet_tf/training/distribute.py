"""Choosing a tf.distribute strategy by name (the TensorFlow-only edge of training)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

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
        raise ValueError(
            f"strategy must be one of {STRATEGIES} or a tf.distribute.Strategy, got {strategy!r}"
        )
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


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (always, but for a non-chief worker)."""
    return bool(strategy.extended.should_checkpoint)


def worker_folder(out_dir: str | os.PathLike, strategy: tf.distribute.Strategy) -> Path:
    """Where this process writes: ``out_dir`` for the chief (or a single process); for another
    worker ``out_dir/workertemp_<task id>``, Keras' multi-worker rule, so that workers given
    the same ``out_dir`` on a shared file system never touch the chief's files."""
    out_dir = Path(out_dir)
    if is_chief(strategy):
        return out_dir
    resolver = getattr(strategy, "cluster_resolver", None)
    task_id = getattr(resolver, "task_id", None)
    return out_dir / f"workertemp_{task_id if task_id is not None else 'x'}"


def is_multiworker(strategy: tf.distribute.Strategy | None) -> bool:
    """A MultiWorkerMirroredStrategy over more than one worker."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return strategy.extended._num_workers > 1


def gather_from_workers(strategy: tf.distribute.Strategy, value: float) -> list[float]:
    """Every replica's ``value`` (one collective; each worker must call it at the same point),
    so that workers take the same decision (when to checkpoint, which checkpoint to resume)."""
    gather = getattr(strategy, "_micronet_gather", None)
    if gather is None:  # one traced function per strategy (eager collectives warn of overhead)
        count = strategy.num_replicas_in_sync

        def spread(value):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            return tf.one_hot(replica, count, dtype=tf.float32) * value

        @tf.function
        def gather(value):
            return strategy.reduce(
                tf.distribute.ReduceOp.SUM, strategy.run(spread, args=(value,)), axis=None
            )

        strategy._micronet_gather = gather
    return [float(v) for v in gather(tf.constant(value, tf.float32)).numpy()]
