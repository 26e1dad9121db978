"""NASA's original PyTorch training path, reduced to what the benchmarks compare against:
``pmm.io.Dataset`` (OpenCV decoding, albumentations, ImageNet normalisation), the original
``DiceBCELoss`` and smp 0.2's ``IoU(threshold=0.5)`` metric. Import after torch, before
TensorFlow (the benchmark scripts import torch first)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

# NASA's class values for the Super masks, in OpenCV's BGR order (blue = secondary).
CLASS_VALUES = {"matrix": [0, 0, 0], "secondary": [255, 0, 0], "tertiary": [0, 0, 255]}


class OriginalStyleDataset(Dataset):
    """pretrained_microscopy_models.io.Dataset for the Super masks: one-hot targets, matrix =
    everything that is neither secondary nor tertiary; ``repeats`` > 1 lists every image that
    many times (each draw augmented anew)."""

    def __init__(self, images: list[Path], masks: list[Path], augmentation, repeats: int = 1):
        self.images, self.masks, self.augmentation = images, masks, augmentation
        self.repeats = repeats

    def __getitem__(self, i):
        i %= len(self.images)
        image = cv2.cvtColor(cv2.imread(str(self.images[i])), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(self.masks[i]), 1)
        masks = [np.all(mask == v, axis=-1) for v in CLASS_VALUES.values()]
        masks[0] = ~np.any(masks[1:], axis=0)
        mask = np.stack(masks, axis=-1).astype("float")
        sample = self.augmentation(image=image, mask=mask)
        image = (sample["image"] / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return (
            image.transpose(2, 0, 1).astype("float32"),
            sample["mask"].transpose(2, 0, 1).astype("float32"),
        )

    def __len__(self):
        return len(self.images) * self.repeats


def dice_bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, weight: float = 0.7, smooth: float = 1.0
) -> torch.Tensor:
    """NASA's ``losses.DiceBCELoss(weight=0.7)``: sigmoid on every channel, everything
    flattened, ``weight * BCE + (1 - weight) * Dice``."""
    inputs = torch.sigmoid(logits).reshape(-1)
    targets = targets.reshape(-1)
    intersection = (inputs * targets).sum()
    dice = 1 - (2.0 * intersection + smooth) / (inputs.sum() + targets.sum() + smooth)
    bce = F.binary_cross_entropy(inputs, targets, reduction="mean")
    return weight * bce + (1 - weight) * dice


def iou_score(
    probabilities: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5, eps: float = 1e-7
) -> float:
    """smp 0.2's ``utils.metrics.IoU(threshold=0.5)``: all channels pooled together."""
    predicted = (probabilities > threshold).float()
    intersection = (predicted * targets).sum()
    union = predicted.sum() + targets.sum() - intersection + eps
    return float((intersection + eps) / union)
