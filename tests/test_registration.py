"""``import micronet_tf`` then a plain ``keras.saving.load_model`` loads every kind of
``.keras`` file the project writes, in either import order with torchvision, and
``import micronet_tf`` alone imports neither Keras nor TensorFlow. Each case runs in a fresh
process (the registry and the import order are per process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LOAD_ALL = """
import keras, numpy as np
for path in {paths!r}:
    model = keras.saving.load_model(path)
    out = model(np.zeros((1, 64, 64, 3), "float32"))
    print(path.rsplit("/", 1)[-1], tuple(out.shape) if hasattr(out, "shape") else len(out),
          type(model.loss).__name__ if getattr(model, "loss", None) else "-")
"""

ORDERS = {
    "micronet_tf, then torchvision, then keras": "import micronet_tf, sys\n"
    "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    "import torchvision\n",
    "torchvision, then micronet_tf, then keras": "import torchvision\nimport micronet_tf\n",
    "micronet_tf, then keras (no torch)": "import micronet_tf\n",
}


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory) -> list[str]:
    """An encoder, a classifier, a segmentation model, and a compiled one as training saves
    it (DiceBCELoss and the IoU metrics)."""
    import keras

    from micronet_tf.encoders import get_classifier, get_encoder
    from micronet_tf.models import create_segmentation_model
    from micronet_tf.training import DiceBCELoss, iou_metrics

    folder = tmp_path_factory.mktemp("keras_files")
    trained = create_segmentation_model(
        "Unet", "resnet18", classes=3, class_names=["matrix", "secondary", "tertiary"]
    )
    trained.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=DiceBCELoss(),
        metrics=iou_metrics(["matrix", "secondary", "tertiary"]),
    )
    models = {
        "encoder.keras": get_encoder("efficientnet-b0"),
        "classifier.keras": get_classifier("resnet18", 4),
        "segmentation.keras": create_segmentation_model("FPN", "resnet18"),
        "trained.keras": trained,
    }
    paths = []
    for name, model in models.items():
        model.save(folder / name)
        paths.append(str(folder / name))
    return paths


@pytest.mark.parametrize("order", list(ORDERS))
def test_plain_keras_load_model_after_import_micronet_tf(
    order: str, saved_files: list[str]
) -> None:
    script = ORDERS[order] + LOAD_ALL.format(paths=saved_files)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines == [
        "encoder.keras 6 -",
        "classifier.keras (1, 4) -",
        "segmentation.keras (1, 64, 64, 1) -",
        "trained.keras (1, 64, 64, 3) DiceBCELoss",
    ], result.stdout


def test_without_import_micronet_tf_keras_cannot_find_the_classes(saved_files) -> None:
    """The check above can fail: plain Keras alone does not know our classes."""
    script = f"import keras\nkeras.saving.load_model({saved_files[2]!r})\n"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode != 0
    assert "micronet_tf" in result.stderr and "Could not locate class" in result.stderr
