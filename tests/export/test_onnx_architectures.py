"""Every segmentation architecture on resnet50, and a U-Net on every encoder family, exports to
ONNX (``export_onnx``, the direct converter; random BatchNorm statistics) with dynamic batch,
height and width: the graph passes ``onnx.checker`` and onnxruntime gives the Keras numbers
(1e-4) at two input sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from micronet_tf.export import export_onnx
from micronet_tf.models import create_segmentation_model, list_architectures
from tests.encoders.parity import first_of_each_family
from tests.onnx_parity import assert_onnx_matches

SIZES = ((1, 128, 128), (2, 160, 224))  # PAN needs at least 128


def _random_batchnorm_statistics(model) -> None:
    rng = np.random.default_rng(1)
    for weight in model.weights:
        if weight.path.endswith("moving_variance"):
            weight.assign(rng.uniform(0.5, 2.0, tuple(weight.shape)).astype("float32"))
        elif weight.path.endswith("moving_mean"):
            weight.assign(0.1 * rng.standard_normal(tuple(weight.shape)).astype("float32"))


def _assert_onnx_parity(model, path: Path, context: str) -> None:
    _random_batchnorm_statistics(model)
    path = export_onnx(model, path, converter="direct")
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path))
    assert [d if isinstance(d, int) else None for d in session.get_inputs()[0].shape] == [
        None,
        None,
        None,
        3,
    ]
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((b, h, w, 3), np.float32) for b, h, w in SIZES]
    assert_onnx_matches(model, path, batches, context, tolerance=1e-4)


@pytest.mark.parametrize("architecture", list_architectures())
def test_resnet50_architecture_onnx_parity(architecture: str, tmp_path: Path) -> None:
    _assert_onnx_parity(
        create_segmentation_model(architecture, "resnet50", classes=3),
        tmp_path / f"{architecture}.onnx",
        architecture,
    )


@pytest.mark.parametrize("encoder", first_of_each_family(exclude=("resnet",)))
def test_every_encoder_family_onnx_parity(encoder: str, tmp_path: Path) -> None:
    """A U-Net on the first encoder of every other family (registry-driven): VGG's centre
    block, DenseNet's concatenations, MobileNetV2's depthwise convolutions, ... export too."""
    _assert_onnx_parity(
        create_segmentation_model("Unet", encoder, classes=3),
        tmp_path / f"Unet-{encoder}.onnx",
        f"Unet/{encoder}",
    )
