"""The paper's segmentation loss: 0.7 x binary cross-entropy + 0.3 x Dice."""

from __future__ import annotations

import keras
from keras import ops

_ACTIVATIONS = ("sigmoid", "softmax", "none")


@keras.saving.register_keras_serializable(package="micronet_tf")
class DiceBCELoss(keras.losses.Loss):
    """``bce_weight * BCE + (1 - bce_weight) * Dice`` over all pixels and channels, as NASA's
    ``losses.DiceBCELoss(weight=0.7)`` with smoothing 1.

    ``activation`` says how to turn the model output into probabilities:
    - ``"sigmoid"`` (default): a sigmoid on every channel, also for several classes — exactly what
      the original loss does (it applies ``F.sigmoid`` to whatever the model returns). Feed logits
      (a model made with ``activation=None``).
    - ``"softmax"``: a softmax over the channels (mutually exclusive classes; feed logits).
    - ``"none"``: the model already outputs probabilities (``activation="auto"``/sigmoid/softmax).
    Note: the original models also applied their own sigmoid / softmax before this loss, so the
    original trained on ``sigmoid(softmax(logits))``; ``"sigmoid"`` on logits is the intended
    behaviour and the one we recommend.

    Targets: one channel of 0/1 for one class, one-hot channels for several.
    """

    def __init__(
        self,
        bce_weight: float = 0.7,
        activation: str = "sigmoid",
        smooth: float = 1.0,
        name: str = "dice_bce",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        if not 0.0 <= bce_weight <= 1.0:
            raise ValueError(f"bce_weight must be in [0, 1], got {bce_weight!r}")
        self.bce_weight = float(bce_weight)
        self.activation = activation
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.activation == "sigmoid":
            probabilities = ops.sigmoid(y_pred)
            bce_map = ops.relu(y_pred) - y_pred * y_true + ops.log1p(ops.exp(-ops.abs(y_pred)))
        else:
            probabilities = ops.softmax(y_pred, axis=-1) if self.activation == "softmax" else y_pred
            clipped = ops.clip(probabilities, keras.config.epsilon(), 1 - keras.config.epsilon())
            bce_map = -(y_true * ops.log(clipped) + (1 - y_true) * ops.log(1 - clipped))
        # BCE per sample (their mean is the batch mean); Dice over the whole batch at once, as
        # the original flattens it (under a distribution strategy: over each replica's share),
        # given to every sample so that Keras' per-sample reduction and replica scaling apply.
        bce = ops.mean(ops.reshape(bce_map, (ops.shape(bce_map)[0], -1)), axis=1)
        intersection = ops.sum(probabilities * y_true)
        total = ops.sum(probabilities) + ops.sum(y_true)
        dice = 1.0 - (2.0 * intersection + self.smooth) / (total + self.smooth)
        return self.bce_weight * bce + (1.0 - self.bce_weight) * dice

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "bce_weight": self.bce_weight,
            "activation": self.activation,
            "smooth": self.smooth,
        }
