"""Segmentation models export to ONNX with dynamic height and width (the Resize and adaptive
pooling layers must stay exportable) and give the Keras numbers in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from micronet_tf.export import export_onnx
from micronet_tf.models import create_segmentation_model
from tests.encoders.parity import assert_features_match, random_images


@pytest.mark.parametrize("architecture", ["Unet", "PSPNet", "DeepLabV3Plus"])
def test_onnx_export_dynamic_size(architecture: str, tmp_path: Path) -> None:
    model = create_segmentation_model(architecture, "resnet18", classes=3)
    path = export_onnx(model, tmp_path / f"{architecture}.onnx")
    session = onnxruntime.InferenceSession(path)
    name = session.get_inputs()[0].name
    for height, width in ((64, 64), (96, 160)):
        images = random_images(height, width, batch=2)
        assert_features_match(
            session.run(None, {name: images}),
            [np.asarray(model(images))],
            f"{architecture} ONNX at {height}x{width}",
        )
