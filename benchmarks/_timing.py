"""Shared helpers of the benchmark scripts (run as scripts, so this folder is on sys.path):
timing, equal thread counts for both frameworks, the local benchmark data."""

from __future__ import annotations

import os
import platform
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
    thread, as PyTorch runs one op at a time) and print the machine the ratios belong to.
    Call after importing torch, then TensorFlow."""
    import tensorflow as tf
    import torch

    torch.set_num_threads(threads)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    print(f"# machine: {machine_description()}; {threads} threads each", flush=True)


def machine_description() -> str:
    """CPU model, core count and whether TensorFlow's oneDNN kernels are on: the ratios
    depend on all three (TensorFlow leaves oneDNN off on CPUs without AVX-512 VNNI/AMX)."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line]
    model = names[0] if names else platform.processor() or "unknown CPU"
    flags = {"avx512f": "AVX-512", "avx2": "AVX2"}
    widest = next((label for flag, label in flags.items() if f" {flag}" in text), "no AVX2")
    from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own oneDNN switch

    onednn = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    return f"{model} ({widest}), {os.cpu_count()} cores, TensorFlow oneDNN kernels {onednn}"


def benchmark_root() -> Path:
    """The local copy of NASA's benchmark_segmentation_data, or exit saying how to name it."""
    from micronet_tf import local_paths

    root = local_paths.benchmark_data_dir()
    if root is None:
        raise SystemExit(f"no local benchmark data: set {local_paths.DATA_ENV}")
    return root
