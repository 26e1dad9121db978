"""Intersection over union per class and averaged, thresholded at 0.5 like the original metric."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="micronet_tf")
class SegmentationIoU(keras.metrics.Metric):
    """IoU of ``(probability > threshold)`` against the targets, accumulated over all batches.

    ``class_id=None`` reports the mean over classes (one class: its IoU); an integer reports that
    class. ``activation`` turns model outputs into probabilities: ``"sigmoid"`` for logits (the
    default, as with :class:`DiceBCELoss`), ``"softmax"``, or ``"none"`` for probabilities.
    The original (smp 0.2's ``IoU(threshold=0.5)``) averaged per-batch IoUs of all channels
    pooled together; accumulating intersections and unions per class is steadier and equals it
    for one class and one batch.
    """

    def __init__(
        self,
        num_classes: int = 1,
        class_id: int | None = None,
        threshold: float = 0.5,
        activation: str = "sigmoid",
        name: str | None = None,
        **kwargs,
    ) -> None:
        if name is None:
            name = "iou" if class_id is None else f"iou_{class_id}"
        super().__init__(name=name, **kwargs)
        if class_id is not None and not 0 <= class_id < num_classes:
            raise ValueError(f"class_id {class_id} out of range for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.class_id = class_id
        self.threshold = float(threshold)
        self.activation = activation
        self.intersection = self.add_weight(
            shape=(self.num_classes,), initializer="zeros", name="intersection"
        )
        self.union = self.add_weight(shape=(self.num_classes,), initializer="zeros", name="union")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.activation == "sigmoid":
            y_pred = ops.sigmoid(y_pred)
        elif self.activation == "softmax":
            y_pred = ops.softmax(y_pred, axis=-1)
        predicted = ops.cast(y_pred > self.threshold, "float32")
        truth = ops.cast(y_true, "float32")
        axes = tuple(range(len(y_pred.shape) - 1))
        intersection = ops.sum(predicted * truth, axis=axes)
        union = ops.sum(predicted, axis=axes) + ops.sum(truth, axis=axes) - intersection
        self.intersection.assign_add(intersection)
        self.union.assign_add(union)

    def per_class(self):
        """IoU of each class; a class absent from both prediction and truth counts as 1."""
        return ops.where(self.union > 0, self.intersection / ops.maximum(self.union, 1e-7), 1.0)

    def result(self):
        values = self.per_class()
        return ops.mean(values) if self.class_id is None else values[self.class_id]

    def reset_state(self) -> None:
        self.intersection.assign(ops.zeros_like(self.intersection))
        self.union.assign(ops.zeros_like(self.union))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "class_id": self.class_id,
            "threshold": self.threshold,
            "activation": self.activation,
        }


def iou_metrics(class_names: Sequence[str], activation: str = "sigmoid") -> list[SegmentationIoU]:
    """Mean IoU (``iou``) plus one IoU per class (``iou_<name>``)."""
    count = len(class_names)
    metrics = [SegmentationIoU(count, activation=activation, name="iou")]
    if count > 1:
        metrics += [
            SegmentationIoU(count, i, activation=activation, name=f"iou_{name}")
            for i, name in enumerate(class_names)
        ]
    return metrics
