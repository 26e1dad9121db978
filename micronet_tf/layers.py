"""Keras layers shared by the encoder families (registered, so ``.keras`` files reload plainly)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="micronet_tf")
class GroupedConv2D(keras.layers.Conv2D):
    """``Conv2D`` with ``groups > 1`` that runs TensorFlow's native grouped convolution.

    Keras 3 routes grouped convolutions through an XLA-compiled function on the TensorFlow
    backend, which is about 10x slower on CPU and recompiles for every input size; TensorFlow's
    own ``conv2d`` accepts the same grouped kernel (``(kh, kw, in // groups, out)``) directly.
    Other backends keep Keras' implementation. Weights and config are those of ``Conv2D``.
    """

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() != "tensorflow" or self.data_format != "channels_last":
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        return tf.nn.conv2d(
            inputs,
            kernel,
            strides=(1, *self.strides, 1),
            padding=self.padding.upper(),
            dilations=(1, *self.dilation_rate, 1),
        )


@keras.saving.register_keras_serializable(package="micronet_tf")
class RawImageNormalization(keras.layers.Layer):
    """Raw 0-255 RGB (any numeric dtype) -> ``(x / 255 - mean) / std`` with ImageNet statistics,
    as constants in the graph (exported models then take 8-bit images directly)."""

    def call(self, inputs):
        from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

        x = keras.ops.cast(inputs, "float32")
        return (x - IMAGENET_MEAN * 255.0) / (IMAGENET_STD * 255.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")
