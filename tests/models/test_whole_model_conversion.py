"""Whole-model conversion of PyTorch-trained segmentation models (original training format)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import torch

from micronet_tf import torch_reference
from micronet_tf.convert import ConversionError, segmentation_model_from_torch
from micronet_tf.models import class_names, model_info
from tests.encoders.parity import assert_features_match, first_of_each_family, random_images

CLASS_VALUES = {"matrix": [0, 0, 0], "secondary": [0, 0, 255], "tertiary": [255, 0, 0]}


def original_training_checkpoint(
    path: Path,
    reference: torch.nn.Module,
    architecture: str = "Unet",
    encoder: str = "resnet18",
    rename=lambda key: key,
) -> Path:
    """What pretrained-microscopy-models' train_segmentation_model saves: DataParallel keys
    (``rename``d), an Adam state, numpy-float histories and class_values."""
    parallel = torch.nn.DataParallel(reference)
    optimizer = torch.optim.Adam(parallel.parameters(), lr=2e-4)
    parallel.train()
    parallel(torch.randn(2, 3, 64, 64)).mean().backward()
    optimizer.step()
    parallel.eval()
    state = {
        "architecture": architecture,
        "encoder": encoder,
        "train_loss": [np.float64(0.61), np.float64(0.42)],
        "valid_loss": [np.float64(0.55), np.float64(0.47)],
        "train_iou": [np.float64(0.70), np.float64(0.81)],
        "valid_iou": [np.float64(0.68), np.float64(0.79)],
        "max_score": np.float64(0.79),
        "class_values": CLASS_VALUES,
        "epoch": 2,
        "state_dict": {rename(k): v for k, v in parallel.state_dict().items()},
        "optimizer": optimizer.state_dict(),
    }
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    reference = torch_reference.build_segmentation_model("Unet", "resnet18", classes=3, seed=11)
    path = original_training_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "model_best.pth.tar", reference
    )
    return reference, path


def _softmax_channels(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def test_original_training_checkpoint_converts(trained) -> None:
    reference, path = trained
    model = segmentation_model_from_torch(path)
    assert class_names(model) == ["matrix", "secondary", "tertiary"]
    info = model_info(model)
    assert (info["architecture"], info["encoder"], info["classes"]) == ("Unet", "resnet18", 3)
    assert info["epoch"] == 2 and info["max_score"] == pytest.approx(0.79)
    images = random_images(64, 96)
    expected = _softmax_channels(torch_reference.run_nhwc(reference, images)[0])
    assert_features_match([model(images, training=False)], [expected], "softmax output")


def test_bare_state_dict_needs_architecture_and_encoder(trained, tmp_path: Path) -> None:
    reference, _ = trained
    bare = tmp_path / "bare.pth"
    torch.save(reference.state_dict(), bare)
    with pytest.raises(ConversionError, match="architecture and encoder; pass"):
        segmentation_model_from_torch(bare)
    model = segmentation_model_from_torch(bare, "unet", "resnet18", activation=None)
    assert model_info(model)["classes"] == 3  # read from the segmentation head
    images = random_images(64, 64)
    assert_features_match(
        [model(images, training=False)], torch_reference.run_nhwc(reference, images), "bare logits"
    )
    with pytest.raises(ConversionError, match="segmentation_head.0"):
        segmentation_model_from_torch(bare, "Unet", "resnet18", classes=4)


def test_class_values_that_disagree_with_the_head_warn_and_the_head_decides(tmp_path: Path) -> None:
    """An EBC-style binary model (one sigmoid channel) saved with two class_values."""
    reference = torch_reference.build_segmentation_model("Unet", "resnet18", classes=1, seed=3)
    path = tmp_path / "binary.pth.tar"
    torch.save(
        {
            "architecture": "Unet",
            "encoder": "resnet18",
            "class_values": {"background": 0, "oxide": 1},
            "state_dict": reference.state_dict(),
        },
        path,
    )
    with pytest.warns(
        UserWarning,
        match=r"class_values name 2 classes \(background, oxide\) "
        r"but the model has 1 output channel",
    ):
        model = segmentation_model_from_torch(path, activation=None)
    assert model_info(model)["classes"] == 1
    images = random_images(64, 64)
    assert_features_match(
        [model(images, training=False)],
        torch_reference.run_nhwc(reference, images),
        "binary logits",
    )


def test_convert_model_cli_writes_a_plain_keras_file(trained, tmp_path: Path) -> None:
    reference, path = trained
    out = tmp_path / "unet.keras"
    command = [
        sys.executable,
        "-m",
        "micronet_tf.cli",
        "convert-model",
        str(path),
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 classes" in result.stdout
    reloaded = keras.saving.load_model(out)  # no custom_objects needed
    assert class_names(reloaded) == ["matrix", "secondary", "tertiary"]
    images = random_images(64, 64)
    expected = _softmax_channels(torch_reference.run_nhwc(reference, images)[0])
    assert_features_match([reloaded(images, training=False)], [expected], "reloaded .keras")
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.parametrize("encoder", first_of_each_family(exclude=("resnet",)))
def test_training_checkpoint_of_every_encoder_family_converts(encoder: str, tmp_path: Path) -> None:
    """NASA's training checkpoint format on the first encoder of every other family, with
    DenseNet's legacy key names where they apply (smp renames them on load; so do we)."""
    reference = torch_reference.build_segmentation_model("Unet", encoder, classes=3, seed=12)
    renamed = []

    def legacy_names(key: str) -> str:  # torchvision's old "denselayer1.norm.1" style
        old = re.sub(r"(denselayer\d+\.)(norm|conv)([12])\.", r"\1\2.\3.", key)
        if old != key:
            renamed.append(old)
        return old

    path = original_training_checkpoint(
        tmp_path / "model_best.pth.tar", reference, "Unet", encoder, rename=legacy_names
    )
    assert bool(renamed) == encoder.startswith("densenet")
    model = segmentation_model_from_torch(path)
    assert (model_info(model)["encoder"], class_names(model)) == (encoder, list(CLASS_VALUES))
    images = random_images(64, 64)
    expected = _softmax_channels(torch_reference.run_nhwc(reference, images)[0])
    # A whole U-Net on the deepest encoders (DenseNet-121: 120 convolutions before the decoder)
    # rounds more than an encoder alone: 2.02e-5 seen in CI on densenet121; a wrong weight moves
    # these probabilities by 1e-2 or more.
    assert_features_match(
        [model(images, training=False)], [expected], f"Unet/{encoder}", tolerance=5e-5
    )
