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
    graphs of earlier tests are freed (between tests the suite then sits at ~1.5-2.5 GiB)."""
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


# Tests whose memory is spread over child processes (two TensorFlow workers, fresh
# interpreters): one xdist group (setup.cfg: --dist loadgroup), so
# that two of them never run at the same time, collected first, so that the child-process
# ones (listed first) run while both test processes are still small. Run anywhere in the
# suite, beside a grown test process, they took the sum of the suite's processes past CI's
# 12 GB.
HEAVY_MODULES = (
    "tests/training/test_multiworker_cli.py",
    "tests/training/test_distributed.py",
    "tests/test_registration.py",
    "tests/export/test_savedmodel.py",
    "tests/training/test_kill_and_resume.py",
    "tests/training/test_determinism.py",
)
# The ONNX exports left this group with the direct converter (micronet_tf.onnx_graph): all
# of tests/export/test_onnx_architectures.py (and the ONNX tests beside it) peak at
# 2.5 GB resident, where tf2onnx took UnetPlusPlus-resnet50 to 16 GB.


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        module = Path(item.fspath).relative_to(PROJECT_ROOT).as_posix()
        return HEAVY_MODULES.index(module) if module in HEAVY_MODULES else len(HEAVY_MODULES)

    for item in items:
        if rank(item) < len(HEAVY_MODULES):
            item.add_marker(pytest.mark.xdist_group("heavy"))
    items.sort(key=rank)  # stable: each module's tests keep their order
