"""The paper's loss and metric against the original PyTorch formulas."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from micronet_tf.training import DiceBCELoss, SegmentationIoU, iou_metrics


def original_dice_bce(logits: np.ndarray, targets: np.ndarray, weight: float = 0.7) -> float:
    """NASA's losses.DiceBCELoss.forward (smooth=1), on NCHW tensors."""
    inputs = torch.sigmoid(torch.from_numpy(logits)).reshape(-1)
    flat = torch.from_numpy(targets).reshape(-1)
    intersection = (inputs * flat).sum()
    dice = 1 - (2.0 * intersection + 1) / (inputs.sum() + flat.sum() + 1)
    bce = F.binary_cross_entropy(inputs, flat, reduction="mean")
    return float(weight * bce + (1 - weight) * dice)


@pytest.mark.parametrize("classes", [1, 3])
def test_dice_bce_matches_the_original(classes: int) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3, size=(2, 16, 24, classes)).astype("float32")
    targets = (rng.random((2, 16, 24, classes)) > 0.6).astype("float32")
    ours = float(DiceBCELoss()(targets, logits))
    expected = original_dice_bce(logits.transpose(0, 3, 1, 2), targets.transpose(0, 3, 1, 2))
    assert ours == pytest.approx(expected, rel=1e-5)
    probabilities = 1 / (1 + np.exp(-logits))
    assert float(DiceBCELoss(activation="none")(targets, probabilities)) == pytest.approx(
        expected, rel=1e-4
    )


def test_softmax_variant_and_bad_arguments() -> None:
    logits = np.zeros((1, 4, 4, 3), "float32")
    targets = np.zeros((1, 4, 4, 3), "float32")
    targets[..., 0] = 1
    # Uniform softmax: BCE = -(1/3 log 1/3 + 2/3 log 2/3), Dice = 1 - (2*16/3 + 1)/(16 + 16 + 1)
    bce = -(np.log(1 / 3) / 3 + 2 / 3 * np.log(2 / 3))
    dice = 1 - (2 * 16 / 3 + 1) / 33
    loss = float(DiceBCELoss(activation="softmax")(targets, logits))
    assert loss == pytest.approx(0.7 * bce + 0.3 * dice, rel=1e-5)
    with pytest.raises(ValueError, match="activation must be one of"):
        DiceBCELoss(activation="relu")


def test_iou_per_class_and_mean() -> None:
    truth = np.zeros((1, 2, 2, 2), "float32")
    truth[0, :, :, 0] = [[1, 1], [0, 0]]
    truth[0, :, :, 1] = [[0, 0], [1, 1]]
    probabilities = np.zeros_like(truth)
    probabilities[0, :, :, 0] = [[0.9, 0.2], [0.0, 0.0]]  # 1 of 2 -> IoU 0.5
    probabilities[0, :, :, 1] = [[0.0, 0.0], [0.7, 0.8]]  # 2 of 2 -> IoU 1
    mean, first, second = iou_metrics(["a", "b"], activation="none")
    for metric in (mean, first, second):
        metric.update_state(truth, probabilities)
    assert float(first.result()) == pytest.approx(0.5)
    assert float(second.result()) == pytest.approx(1.0)
    assert float(mean.result()) == pytest.approx(0.75)
    assert first.name == "iou_a"
    logits_metric = SegmentationIoU(2)
    logits_metric.update_state(truth, np.where(probabilities > 0.5, 5.0, -5.0))
    assert float(logits_metric.result()) == pytest.approx(0.75)


def test_loss_and_metric_serialize() -> None:
    loss = keras.losses.deserialize(keras.losses.serialize(DiceBCELoss(0.5, "softmax")))
    assert (loss.bce_weight, loss.activation) == (0.5, "softmax")
    metric = keras.metrics.deserialize(keras.metrics.serialize(SegmentationIoU(3, 1)))
    assert (metric.num_classes, metric.class_id) == (3, 1)
