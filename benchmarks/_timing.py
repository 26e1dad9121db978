"""Shared helpers of the benchmark scripts (run as scripts, so this folder is on sys.path):
timing, equal thread counts for both frameworks, the local benchmark data."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path


def median_seconds(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def same_threads(threads: int) -> None:
    """Give PyTorch and TensorFlow the same intra-op thread count (TensorFlow: one inter-op
    thread, as PyTorch runs one op at a time). Call after importing torch, then TensorFlow."""
    import tensorflow as tf
    import torch

    torch.set_num_threads(threads)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def benchmark_root() -> Path:
    """The local copy of NASA's benchmark_segmentation_data, or exit saying how to name it."""
    from micronet_tf import local_paths

    root = local_paths.benchmark_data_dir()
    if root is None:
        raise SystemExit(f"no local benchmark data: set {local_paths.DATA_ENV}")
    return root
