"""The PyTorch-exact primitives of micronet_tf/encoders/primitives.py, each against the torch op it
mirrors, on inputs chosen so that the usual porting mistakes (Keras "same", zero padding of
signed max pools, floor instead of ceil pooling) would fail."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from micronet_tf import layers as primitives
from micronet_tf.convert import assign_torch_weights, rename_keys
from micronet_tf.encoders import encoder_spec
from micronet_tf.layers import ChannelSlice, MaxPoolPadding2D
from tests.encoders.parity import assert_features_match


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _run(block, x: np.ndarray, state: dict | None = None) -> np.ndarray:
    inputs = keras.Input((None, None, x.shape[-1]))
    model = keras.Model(inputs, block(inputs))
    if state:
        assign_torch_weights(model, {k: v.numpy() for k, v in state.items()})
    return np.asarray(model(x))


def _signed(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Mostly negative values: a zero-padded max pool would let the padding win."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, height, width, channels)) - 2.0).astype(np.float32)


@pytest.mark.parametrize("size", [(9, 9), (15, 16), (16, 16)])
def test_signed_max_pool_pads_with_lowest_value(size) -> None:
    x = _signed(*size)
    expected = _nhwc(F.max_pool2d(_nchw(x), 3, 2, 1))
    ours = _run(
        lambda t: primitives.max_pool(t, 3, strides=2, padding=1, nonnegative=False, name="pool"), x
    )
    assert_features_match([ours], [expected], f"signed max pool {size}")
    zero_padded = _run(
        lambda t: primitives.max_pool(t, 3, strides=2, padding=1, nonnegative=True, name="pool"), x
    )
    assert np.abs(zero_padded - expected).max() > 0.5  # the trap the lowest-value padding avoids


@pytest.mark.parametrize("size", [(8, 8), (9, 9), (15, 16), (17, 12)])
def test_ceil_mode_max_pool(size) -> None:
    x = _signed(*size, seed=1)
    expected = _nhwc(F.max_pool2d(_nchw(x), 3, 2, 0, ceil_mode=True))
    ours = _run(
        lambda t: primitives.max_pool(
            t, 3, strides=2, ceil_mode=True, nonnegative=False, name="pool"
        ),
        x,
    )
    assert_features_match([ours], [expected], f"ceil-mode max pool {size}")
    # The traps: floor mode loses the last window on even sizes, Keras "same" (ceil mode on
    # even sizes) adds one on odd sizes.
    keras_padding = "valid" if size[0] % 2 == 0 else "same"
    trap = _run(lambda t: keras.layers.MaxPooling2D(3, 2, padding=keras_padding)(t), x)
    assert trap.shape != expected.shape


@pytest.mark.parametrize(
    ("kernel", "strides", "padding", "torch_pad"),
    [
        (3, 2, ((0, 1), (0, 1)), (0, 1, 0, 1)),  # asymmetric (EfficientNet's static "same")
        (5, 2, ((1, 2), (1, 2)), (1, 2, 1, 2)),
        ((1, 7), 1, (0, 3), (3, 3, 0, 0)),  # tuple kernels (Inception)
        ((7, 1), 1, (3, 0), (0, 0, 3, 3)),
        (3, 2, 1, (1, 1, 1, 1)),  # symmetric, strided: Keras "same" would shift the windows
    ],
)
def test_conv2d_padding_and_kernels(kernel, strides, padding, torch_pad) -> None:
    x = _signed(10, 12, seed=2)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    weight = torch.randn(4, 3, kh, kw, generator=torch.Generator().manual_seed(0))
    expected = _nhwc(F.conv2d(F.pad(_nchw(x), torch_pad), weight, stride=strides))
    ours = _run(
        lambda t: primitives.conv2d(t, 4, kernel, strides=strides, padding=padding, name="conv"),
        x,
        {"conv.weight": weight},
    )
    assert_features_match([ours], [expected], f"conv {kernel} {padding}")


def test_depthwise_conv2d_strided() -> None:
    x = _signed(11, 10, channels=6, seed=3)
    weight = torch.randn(6, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    expected = _nhwc(F.conv2d(_nchw(x), weight, stride=2, padding=1, groups=6))
    ours = _run(
        lambda t: primitives.depthwise_conv2d(t, 3, strides=2, padding=1, name="dw"),
        x,
        {"dw.weight": weight},
    )
    assert_features_match([ours], [expected], "depthwise")


def test_average_pool_excluding_padding() -> None:
    x = _signed(7, 9, seed=4)
    expected = _nhwc(F.avg_pool2d(_nchw(x), 3, 1, 1, count_include_pad=False))
    ours = _run(
        lambda t: primitives.avg_pool(
            t, 3, strides=1, padding=1, count_include_pad=False, name="pool"
        ),
        x,
    )
    assert_features_match([ours], [expected], "avg pool, padding excluded")
    with pytest.raises(NotImplementedError):
        _run(lambda t: primitives.avg_pool(t, 3, strides=1, padding=1, name="pool"), x)


def test_batch_norm_takes_pytorch_momentum() -> None:
    inputs = keras.Input((4, 4, 2))
    layer_output = primitives.batch_norm(inputs, epsilon=1e-3, momentum=0.01, name="bn")
    layer = keras.Model(inputs, layer_output).get_layer("bn")
    assert layer.epsilon == 1e-3 and layer.momentum == pytest.approx(0.99)


def test_dilated_stage_follows_smp_and_unmarked_stages_fail() -> None:
    inputs = keras.Input((None, None, 3))
    with primitives.dilation_plan({32: 2}):
        with primitives.encoder_stage(32):
            out = primitives.conv2d(inputs, 4, 3, strides=2, padding=1, name="c")
    model = keras.Model(inputs, out)
    conv = model.get_layer("c")
    assert conv.strides == (1, 1) and conv.dilation_rate == (2, 2)
    assert model(np.zeros((1, 8, 8, 3), "float32")).shape == (1, 8, 8, 4)
    with pytest.raises(RuntimeError, match="never marked stage"):
        with primitives.dilation_plan({16: 2}):
            primitives.conv2d(inputs, 4, 3, padding=1, name="d")


def test_weightless_layers_round_trip(tmp_path: Path) -> None:
    inputs = keras.Input((None, None, 6))
    padded = MaxPoolPadding2D(((0, 1), (1, 2)))(inputs)
    model = keras.Model(inputs, [ChannelSlice(2, 5)(padded), ChannelSlice(1)(inputs)])
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    x = _signed(3, 4, channels=6)
    for a, b in zip(model(x), reloaded(x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    sliced, rest = (np.asarray(o) for o in model(x))
    assert sliced.shape == (2, 4, 7, 3) and rest.shape == (2, 3, 4, 5)
    assert sliced[0, 3, 0, 0] == np.finfo(np.float32).min


def test_encoder_options_are_checked() -> None:
    with pytest.raises(ValueError, match="has no option \\['padding'\\]; its options: none"):
        encoder_spec("resnet18").resolve_options({"padding": "smp"})
    assert encoder_spec("resnet18").resolve_options(None) == {}


def test_legacy_key_renames() -> None:
    renames = encoder_spec("densenet121").key_renames
    state = {
        "features.denseblock1.denselayer1.norm.1.weight": np.zeros(1),
        "features.denseblock1.denselayer1.conv.2.weight": np.zeros(1),
        "features.norm5.weight": np.zeros(1),
    }
    assert sorted(rename_keys(state, renames)) == [
        "features.denseblock1.denselayer1.conv2.weight",
        "features.denseblock1.denselayer1.norm1.weight",
        "features.norm5.weight",
    ]
    vgg = rename_keys({"features.module.0.weight": np.zeros(1)}, encoder_spec("vgg11").key_renames)
    assert list(vgg) == ["features.0.weight"]
