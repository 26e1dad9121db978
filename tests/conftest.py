"""Shared test setup.

The PyTorch references are imported first, on purpose: importing torchvision (and so smp) after
TensorFlow crashes the process. A missing reference package fails the run here, loudly.
"""

import os
from pathlib import Path

import pytest
import segmentation_models_pytorch  # noqa: F401  (before TensorFlow, see above)
import torch
import torchvision  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
torch.set_num_threads(2)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared/data/pmm_benchmark/benchmark_segmentation_data"


@pytest.fixture(autouse=True)
def _release_keras_state():
    """After each test: drop Keras' global state and collect garbage, so the models and traced
    graphs of earlier tests are freed (between tests the suite then sits at ~1.5-2.5 GiB).
    Memory note: one test alone peaks at ~21-23 GiB of this 24 GiB machine: the tf2onnx export
    of UnetPlusPlus-resnet50 in tests/export (16 GiB in a bare process); run nothing heavy
    beside the suite."""
    yield
    import keras

    keras.utils.clear_session(free_memory=True)


@pytest.fixture(scope="session")
def benchmark_data() -> Path:
    """The paper's benchmark data: $MICRONET_TF_DATA, else ../shared (as in CI). Never skipped."""
    path = Path(os.environ.get("MICRONET_TF_DATA") or DEFAULT_DATA)
    assert path.is_dir(), (
        f"benchmark data not found at {path}: set MICRONET_TF_DATA to a copy of "
        "benchmark_segmentation_data"
    )
    return path
