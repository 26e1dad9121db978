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
    (metric,) = iou_metrics(["a", "b"], activation="none")
    metric.update_state(truth, probabilities)
    result = {k: float(v) for k, v in metric.result().items()}
    assert result == pytest.approx({"iou": 0.75, "iou_a": 0.5, "iou_b": 1.0})
    for class_id, expected in ((0, 0.5), (1, 1.0)):
        single = SegmentationIoU(2, class_id, activation="none")
        single.update_state(truth, probabilities)
        assert float(single.result()) == pytest.approx(expected)
    logits_metric = SegmentationIoU(2)
    logits_metric.update_state(truth, np.where(probabilities > 0.5, 5.0, -5.0))
    assert float(logits_metric.result()) == pytest.approx(0.75)
    (one_class,) = iou_metrics(["only"])
    assert one_class.class_names is None  # one class: the mean is its IoU


def test_logit_threshold_equals_sigmoid_threshold() -> None:
    """Thresholding logits at log(t / (1 - t)) is the sigmoid test, without the sigmoid."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 16, 16, 3)).astype("float32") * 3
    truth = np.eye(3, dtype="float32")[rng.integers(0, 3, (2, 16, 16))]
    for threshold in (0.3, 0.5, 0.8):
        on_logits = SegmentationIoU(3, threshold=threshold, class_names=["a", "b", "c"])
        on_probabilities = SegmentationIoU(3, threshold=threshold, activation="none")
        on_logits.update_state(truth, logits)
        on_probabilities.update_state(truth, 1 / (1 + np.exp(-logits)))
        np.testing.assert_allclose(on_logits.per_class(), on_probabilities.per_class(), atol=1e-6)
    with pytest.raises(ValueError, match="expected 3 names"):
        SegmentationIoU(3, class_names=["a", "b"])


def test_fit_logs_mean_and_per_class_iou_from_one_metric() -> None:
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    model.compile("adam", DiceBCELoss(), metrics=iou_metrics(["a", "b", "c"]))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 8, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, (4, 8, 8))]
    history = model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0).history
    assert {"iou", "iou_a", "iou_b", "iou_c", "val_iou", "val_iou_c"} <= set(history)
    per_class = [history[f"val_iou_{c}"][0] for c in "abc"]
    assert history["val_iou"][0] == pytest.approx(np.mean(per_class), rel=1e-5)


def test_loss_and_metric_serialize() -> None:
    loss = keras.losses.deserialize(keras.losses.serialize(DiceBCELoss(0.5, "softmax")))
    assert (loss.bce_weight, loss.activation) == (0.5, "softmax")
    metric = keras.metrics.deserialize(keras.metrics.serialize(SegmentationIoU(3, 1)))
    assert (metric.num_classes, metric.class_id) == (3, 1)
    merged = keras.metrics.deserialize(keras.metrics.serialize(iou_metrics(["a", "b"])[0]))
    assert merged.class_names == ["a", "b"]
