"""Intersection over union per class and averaged, thresholded at 0.5 like the original metric."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="micronet_tf")
class SegmentationIoU(keras.metrics.Metric):
    """IoU of ``(probability > threshold)`` against the targets, accumulated over all batches.

    ``class_id=None`` reports the mean over classes (one class: its IoU); an integer reports that
    class. ``class_names`` (with ``class_id=None``) makes one metric report the mean as
    ``name`` and every class as ``<name>_<class>``, all from one pass over the batch: the cost of
    one metric instead of one per class. ``activation`` says how model outputs become
    probabilities: ``"sigmoid"`` for logits (the default, as with :class:`DiceBCELoss`; the
    threshold is applied to the logits, ``logit > log(t / (1 - t))``, which is the same test
    without a sigmoid per pixel), ``"softmax"``, or ``"none"`` for probabilities. The original
    (smp 0.2's ``IoU(threshold=0.5)``) averaged per-batch IoUs of all channels pooled together;
    accumulating intersections and unions per class is steadier and equals it for one class
    and one batch.
    """

    def __init__(
        self,
        num_classes: int = 1,
        class_id: int | None = None,
        threshold: float = 0.5,
        activation: str = "sigmoid",
        name: str | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        if name is None:
            name = "iou" if class_id is None else f"iou_{class_id}"
        super().__init__(name=name, **kwargs)
        if class_id is not None and not 0 <= class_id < num_classes:
            raise ValueError(f"class_id {class_id} out of range for {num_classes} classes")
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(class_names) != num_classes or class_id is not None:
                raise ValueError(
                    f"class_names={class_names!r}: expected {num_classes} names and class_id=None"
                )
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold={threshold!r}: expected a probability in (0, 1)")
        self.num_classes = int(num_classes)
        self.class_id = class_id
        self.class_names = class_names
        self.threshold = float(threshold)
        self.activation = activation
        self.intersection = self.add_weight(
            shape=(self.num_classes,), initializer="zeros", name="intersection"
        )
        self.union = self.add_weight(shape=(self.num_classes,), initializer="zeros", name="union")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.activation == "sigmoid":
            positive = y_pred > math.log(self.threshold / (1.0 - self.threshold))
        elif self.activation == "softmax":
            positive = ops.softmax(y_pred, axis=-1) > self.threshold
        else:
            positive = y_pred > self.threshold
        predicted = ops.cast(positive, "float32")
        truth = ops.cast(y_true, "float32")
        # One reduction over (pixels, 3 statistics) instead of three over pixels.
        stacked = ops.stack([predicted * truth, predicted, truth], axis=-1)
        sums = ops.sum(ops.reshape(stacked, (-1, self.num_classes, 3)), axis=0)
        intersection = sums[:, 0]
        union = sums[:, 1] + sums[:, 2] - intersection
        self.intersection.assign_add(intersection)
        self.union.assign_add(union)

    def per_class(self):
        """IoU of each class; a class absent from both prediction and truth counts as 1."""
        return ops.where(self.union > 0, self.intersection / ops.maximum(self.union, 1e-7), 1.0)

    def result(self):
        values = self.per_class()
        if self.class_id is not None:
            return values[self.class_id]
        if self.class_names is None:
            return ops.mean(values)
        per_class = {f"{self.name}_{c}": values[i] for i, c in enumerate(self.class_names)}
        return {self.name: ops.mean(values), **per_class}

    def reset_state(self) -> None:
        self.intersection.assign(ops.zeros_like(self.intersection))
        self.union.assign(ops.zeros_like(self.union))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "class_id": self.class_id,
            "class_names": self.class_names,
            "threshold": self.threshold,
            "activation": self.activation,
        }


def iou_metrics(class_names: Sequence[str], activation: str = "sigmoid") -> list[SegmentationIoU]:
    """Mean IoU (``iou``) plus, for several classes, one IoU per class (``iou_<name>``), all
    from one metric (one pass over each batch)."""
    names = list(class_names)
    return [
        SegmentationIoU(
            len(names),
            activation=activation,
            name="iou",
            class_names=names if len(names) > 1 else None,
        )
    ]
