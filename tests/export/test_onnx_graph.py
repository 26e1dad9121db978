"""The direct Keras-to-ONNX converter (``micronet_tf.onnx_graph``): every layer type it writes,
in a tiny model with random weights and BatchNorm statistics, gives the Keras numbers in
onnxruntime at two odd sizes (batch 2); unknown layers fall back to tf2onnx ("auto") or are
refused ("direct"); opsets, dynamic dims, output order and external data; and
the largest encoder exports and matches Keras."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
from keras import layers

from micronet_tf import export
from micronet_tf.encoders import get_encoder
from micronet_tf.encoders.efficientnet import DropConnect
from micronet_tf.export import export_onnx
from micronet_tf.layers import (
    AdaptiveAveragePooling2D,
    ChannelSlice,
    GroupedConv2D,
    MaxPoolPadding2D,
    Resize,
)
from micronet_tf.models.layers import InputSizeCheck, RawImageNormalization, SegmentationOutput
from micronet_tf.onnx_graph import MIN_OPSET, unsupported_layers
from tests.onnx_parity import assert_onnx_matches

SIZES = ((13, 11), (8, 17))  # odd, uneven, one below a typical stride-2 pair
CHANNELS = 4
TOLERANCE = 1e-5  # max abs difference relative to max(1, the largest Keras output value)
# The registered encoder with the most parameters (113 M; benchmarks/bench_export.py finds it).
LARGEST_ENCODER = "senet154"


def _randomize(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random weights everywhere, BatchNorm statistics included (variances in 0.5 .. 2)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 4
            weight.assign((rng.standard_normal(shape) / np.sqrt(fan_in)).astype("float32"))
    return model


def _assert_matches(model: keras.Model, path: Path, images: list[np.ndarray], context: str):
    assert_onnx_matches(model, path, images, context, TOLERANCE)


def _images(channels: int = CHANNELS, seed: int = 1, sizes=SIZES) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((2, h, w, channels)).astype("float32") for h, w in sizes]


def _scaled(x, scale: float, offset: float = 0.0):
    return layers.Rescaling(scale, offset=offset)(x)


def _se_block(x):
    gate = layers.GlobalAveragePooling2D(keepdims=True)(x)
    gate = layers.Conv2D(CHANNELS, 1, activation="sigmoid")(gate)
    return layers.Multiply()([x, gate])


def _signed_pool(x):
    x = MaxPoolPadding2D(((1, 2), (2, 1)))(_scaled(x, 1.0, -3.0))  # mostly < 0: -inf-like pads
    return layers.MaxPooling2D(3, strides=2)(x)


def _nested(x):
    inner_input = keras.Input((None, None, CHANNELS))
    inner = keras.Model(inner_input, [layers.ReLU()(inner_input), layers.Conv2D(3, 1)(inner_input)])
    chain = keras.Sequential([layers.Conv2D(2, 3, padding="same"), layers.ReLU()])
    first, second = inner(x)
    return layers.Concatenate()([chain(first), second])


def _dense_head(x):
    x = AdaptiveAveragePooling2D(2)(x)
    x = layers.Permute((3, 1, 2))(x)
    x = layers.Flatten()(x)
    return layers.Dense(5, activation="softmax")(x)


# name -> the layers applied to a (None, None, 4) input
CASES = {
    "conv_same_bias_relu": lambda x: layers.Conv2D(5, 3, padding="same", activation="relu")(x),
    "conv_same_stride2": lambda x: layers.Conv2D(5, 3, strides=2, padding="same")(x),
    "conv_same_even_kernel": lambda x: layers.Conv2D(3, (2, 4), padding="same")(x),
    "conv_same_dilated": lambda x: layers.Conv2D(3, 3, padding="same", dilation_rate=2)(x),
    "conv_valid_stride2_tuple": lambda x: layers.Conv2D(3, (3, 1), strides=2, use_bias=False)(x),
    "grouped_conv": lambda x: GroupedConv2D(6, 3, groups=2, padding="same")(x),
    "grouped_conv_strided": lambda x: GroupedConv2D(4, 3, strides=2, groups=4)(x),
    "depthwise_same": lambda x: layers.DepthwiseConv2D(3, padding="same")(x),
    "depthwise_multiplier_stride2": lambda x: layers.DepthwiseConv2D(
        3, strides=2, depth_multiplier=2, activation="relu6"
    )(x),
    "conv_transpose_valid": lambda x: layers.Conv2DTranspose(3, 3, strides=2)(x),
    "conv_transpose_same": lambda x: layers.Conv2DTranspose(3, 4, strides=2, padding="same")(x),
    "conv_transpose_short_kernel": lambda x: layers.Conv2DTranspose(2, 1, strides=2)(x),
    "batch_norm": lambda x: layers.BatchNormalization(epsilon=1e-5)(x),
    "batch_norm_no_affine": lambda x: layers.BatchNormalization(center=False, scale=False)(x),
    "group_norm": lambda x: layers.GroupNormalization(2, epsilon=1e-5)(x),
    "relu": lambda x: layers.ReLU()(x),
    "relu6": lambda x: layers.ReLU(max_value=6.0)(_scaled(x, 5.0)),
    "leaky_relu_capped": lambda x: layers.ReLU(max_value=1.0, negative_slope=0.1)(x),
    **{
        f"activation_{name}": layers.Activation(name)
        for name in (
            "sigmoid",
            "tanh",
            "silu",
            "softmax",
            "log_softmax",
            "elu",
            "selu",
            "softplus",
            "softsign",
            "exponential",
            "hard_sigmoid",
            "hard_silu",
            "gelu",
            "leaky_relu",
            "mish",
            "linear",
        )
    },
    "concatenate_add_subtract": lambda x: layers.Concatenate()(
        [layers.Add()([x, _scaled(x, 2.0)]), layers.Subtract()([x, layers.ReLU()(x)])]
    ),
    "maximum_minimum_average": lambda x: layers.Average()(
        [layers.Maximum()([x, _scaled(x, -1.0)]), layers.Minimum()([x, _scaled(x, 0.5)]), x]
    ),
    "multiply_broadcast_se_block": _se_block,
    "channel_slice": lambda x: layers.Concatenate()([ChannelSlice(1, 3)(x), ChannelSlice(2)(x)]),
    "global_average_flat": lambda x: layers.GlobalAveragePooling2D()(x),
    "global_max_keepdims": lambda x: layers.GlobalMaxPooling2D(keepdims=True)(x),
    "zero_padding_cropping": lambda x: layers.Cropping2D(((2, 0), (1, 3)))(
        layers.ZeroPadding2D(((0, 1), (2, 1)))(x)
    ),
    "max_pool_valid": lambda x: layers.MaxPooling2D(3, strides=2)(x),
    "max_pool_same": lambda x: layers.MaxPooling2D(2, padding="same")(x),
    "average_pool_valid": lambda x: layers.AveragePooling2D(2)(x),
    "average_pool_same_stride1": lambda x: layers.AveragePooling2D(3, 1, padding="same")(x),
    "average_pool_same_stride2": lambda x: layers.AveragePooling2D(3, 2, padding="same")(x),
    "max_pool_padding_signed": _signed_pool,
    "resize_nearest_scale2": lambda x: Resize(2)(x),
    "resize_nearest_scale3": lambda x: Resize(3)(x),
    "resize_nearest_like": lambda x: Resize()([layers.MaxPooling2D(2)(x), x]),
    "resize_bilinear_like": lambda x: Resize(interpolation="bilinear")(
        [layers.MaxPooling2D(2)(x), x]
    ),
    "resize_bilinear_aligned_like": lambda x: Resize(interpolation="bilinear", align_corners=True)(
        [layers.MaxPooling2D(2)(x), x]
    ),
    "resize_bilinear_aligned_scale4": lambda x: Resize(
        4, interpolation="bilinear", align_corners=True
    )(x),
    "adaptive_average_pool": lambda x: AdaptiveAveragePooling2D(3)(x),
    "adaptive_average_pool_uneven": lambda x: AdaptiveAveragePooling2D((2, 5))(x),
    "keras_adaptive_average_pool": lambda x: layers.AdaptiveAveragePooling2D((3, 2))(x),
    "size_check_and_output": lambda x: SegmentationOutput("softmax")(InputSizeCheck(1)(x)),
    "output_sigmoid_logsoftmax_tanh": lambda x: layers.Concatenate()(
        [SegmentationOutput(a)(x) for a in ("sigmoid", "logsoftmax", "tanh", "identity")]
    ),
    "rescaling": lambda x: layers.Rescaling([0.5, 1.0, 2.0, 3.0], offset=0.25)(
        layers.Rescaling(0.17)(x)
    ),
    "identity_dropouts": lambda x: DropConnect(0.2)(
        layers.SpatialDropout2D(0.3)(layers.Dropout(0.5)(layers.Identity()(x)))
    ),
    "dense_channels_and_flat": _dense_head,
    "dense_on_channels": lambda x: layers.Dense(3, activation="tanh")(x),
    "nested_functional_and_sequential": _nested,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_keras(case: str, tmp_path: Path) -> None:
    inputs = keras.Input((None, None, CHANNELS), name="image")
    model = _randomize(keras.Model(inputs, CASES[case](inputs)))
    assert unsupported_layers(model) == []
    path = export_onnx(model, tmp_path / f"{case}.onnx", converter="direct")
    assert onnx.load(str(path)).producer_name == "micronet-tf"
    _assert_matches(model, path, _images(), case)


def test_raw_uint8_input(tmp_path: Path) -> None:
    """``preprocessing=True``: uint8 input, normalisation (RawImageNormalization) in the graph."""
    inputs = keras.Input((None, None, 3), name="image")
    model = _randomize(keras.Model(inputs, layers.Conv2D(2, 3, strides=2)(inputs)))
    path = export_onnx(model, tmp_path / "raw.onnx", preprocessing=True, converter="direct")
    assert onnxruntime.InferenceSession(str(path)).get_inputs()[0].type == "tensor(uint8)"
    raw = [np.random.default_rng(2).integers(0, 256, (2, h, w, 3), np.uint8) for h, w in SIZES]
    wrapped = keras.Model(inputs, model(RawImageNormalization()(inputs)))
    _assert_matches(export.with_preprocessing(model), path, raw, "uint8")
    _assert_matches(wrapped, path, raw, "uint8 via RawImageNormalization")


def test_raw_uint16_input_with_percentile_normalization(tmp_path: Path) -> None:
    """Per-image percentiles in the graph (TopK, inverted CDF) give Keras' numbers on 12-bit
    data held in uint16, a flat image included (no spread: zeros, as in Keras)."""
    inputs = keras.Input((None, None, 3), dtype="uint16", name="image")
    normalization = {"kind": "percentile", "low": 0.5, "high": 99.5}
    normalized = RawImageNormalization(normalization=normalization, maximum=65535.0)(inputs)
    model = _randomize(keras.Model(inputs, layers.Conv2D(2, 3)(normalized)))
    path = export_onnx(model, tmp_path / "percentile.onnx", converter="direct")
    assert onnxruntime.InferenceSession(str(path)).get_inputs()[0].type == "tensor(uint16)"
    rng = np.random.default_rng(3)
    raw = [rng.integers(0, 4096, (2, h, w, 3)).astype(np.uint16) for h, w in SIZES]
    raw.append(np.full((1, 9, 9, 3), 1000, np.uint16))
    _assert_matches(model, path, raw, "uint16, percentiles")


@keras.saving.register_keras_serializable(package="micronet_tf_tests")
class Doubling(keras.layers.Layer):
    """A custom layer the direct converter does not know."""

    def call(self, inputs):
        return inputs * 2.0


def test_unknown_layer_falls_back_or_is_refused(tmp_path: Path) -> None:
    inputs = keras.Input((None, None, CHANNELS), name="image")
    model = _randomize(keras.Model(inputs, Doubling()(layers.Conv2D(3, 1)(inputs))))
    assert unsupported_layers(model) == ["Doubling"]
    with pytest.raises(ValueError, match="Doubling"):
        export_onnx(model, tmp_path / "direct.onnx", converter="direct")
    assert not (tmp_path / "direct.onnx").exists()
    with pytest.warns(UserWarning, match="Doubling.*tf2onnx"):
        path = export_onnx(model, tmp_path / "auto.onnx")
    assert onnx.load(str(path)).producer_name == "tf2onnx"
    _assert_matches(model, path, _images(), "tf2onnx fallback")


def test_unsupported_configuration_is_named() -> None:
    inputs = keras.Input((None, None, CHANNELS))
    model = keras.Model(inputs, layers.ReLU(threshold=0.5)(layers.Activation("glu")(inputs)))
    assert unsupported_layers(model) == ["Activation(activation='glu')", "ReLU(threshold=0.5)"]
    doubled = keras.Model(inputs, layers.ReLU()(inputs) * 2.0)
    assert unsupported_layers(doubled) == ["Multiply (a keras.ops call, not a layer)"]


def test_opsets(tmp_path: Path) -> None:
    inputs = keras.Input((None, None, CHANNELS), name="image")
    model = _randomize(keras.Model(inputs, Resize(interpolation="bilinear")([inputs, inputs])))
    with pytest.raises(ValueError, match=f"opset=12.*{MIN_OPSET}"):
        export_onnx(model, tmp_path / "old.onnx", opset=MIN_OPSET - 1)
    assert not (tmp_path / "old.onnx").exists()
    default = export_onnx(model, tmp_path / "default.onnx")
    assert [o.version for o in onnx.load(str(default)).opset_import] == [17]
    oldest = export_onnx(model, tmp_path / "oldest.onnx", opset=MIN_OPSET)
    assert [o.version for o in onnx.load(str(oldest)).opset_import] == [MIN_OPSET]
    _assert_matches(model, oldest, _images(), f"opset {MIN_OPSET}")


def test_dynamic_dims_and_output_order(tmp_path: Path) -> None:
    """Batch, height and width are symbols, channels fixed; an encoder's six outputs keep
    Keras' order (strides 1 .. 32) under the names of the layers that make them."""
    encoder = get_encoder("resnet18")
    graph = onnx.load(str(export_onnx(encoder, tmp_path / "encoder.onnx"))).graph
    dims = [(d.dim_param, d.dim_value) for d in graph.input[0].type.tensor_type.shape.dim]
    assert graph.input[0].name == "image"
    assert dims == [("batch", 0), ("height", 0), ("width", 0), ("", 3)]
    assert [o.name for o in graph.output] == encoder.output_names
    for output, tensor in zip(graph.output, encoder.outputs):
        batch, height, width, channels = output.type.tensor_type.shape.dim
        assert batch.dim_param == "batch" and height.dim_param and width.dim_param
        assert channels.dim_value == tensor.shape[-1]
    images = _images(3, sizes=((64, 96),))
    _assert_matches(encoder, tmp_path / "encoder.onnx", images, "encoder outputs in order")


def test_external_data_above_the_protobuf_limit(tmp_path: Path, monkeypatch) -> None:
    """A model above the limit (lowered here) keeps its tensors in ``<name>.onnx.data``."""
    monkeypatch.setattr(export, "_PROTOBUF_LIMIT", 1000)
    inputs = keras.Input((None, None, CHANNELS), name="image")
    model = _randomize(keras.Model(inputs, layers.Conv2D(16, 3)(inputs)))
    path = export_onnx(model, tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").stat().st_size >= 16 * 3 * 3 * CHANNELS * 4
    assert path.stat().st_size < 16 * 3 * 3 * CHANNELS * 4
    _assert_matches(model, path, _images(), "external data")


def test_largest_encoder_exports_directly(tmp_path: Path) -> None:
    """The largest encoder alone, random BatchNorm statistics included (a U-Net on every
    family's first encoder: tests/export/test_onnx_architectures.py)."""
    model = _randomize(get_encoder(LARGEST_ENCODER), seed=3)
    path = export_onnx(model, tmp_path / f"{LARGEST_ENCODER}.onnx", converter="direct")
    _assert_matches(model, path, _images(3, sizes=((64, 64),)), LARGEST_ENCODER)
