"""Parity of micronet_tf/encoders/xception.py with smp's Xception encoder and with
pretrainedmodels' Xception classifier (unpadded stem), plus the traps of this family: signed
block max pools (also through ONNX), separable convs as two layers, pre-ReLU taps, the stem
padding smp adds, and the head's two checkpoint names (``fc`` / ``last_linear``)."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import onnxruntime
import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from micronet_tf import layers as primitives
from micronet_tf import torch_reference
from micronet_tf.convert import ConversionError, load_torch_weights, rename_keys
from micronet_tf.encoders import encoder_spec, get_classifier, get_encoder
from micronet_tf.encoders import xception as xception_module
from micronet_tf.export import export_onnx
from tests.encoders.parity import (
    RELATIVE_TOLERANCE,
    EncoderFamilyParity,
    assert_features_match,
    random_images,
)

# Block max-pool inputs (ceil(H / 2^k), k = 1..4; block1, block2, block3, block12):
# 64x64: 32, 16, 8, 4 (even); 72x120: 36x60, 18x30, 9x15, 5x8; 65x97: 33x49, 17x25, 9x13, 5x7.
MIXED, ODD = (72, 120), (65, 97)


class TestXceptionParity(EncoderFamilyParity):
    FAMILY = "xception"
    FULL = ("xception",)  # the only variant
    SIZES = (MIXED, ODD)  # VARIANT_SIZE 64x64 covers all-even pool inputs
    CLASSIFIER_SIZE = (224, 224)  # NASA's classifier input (pretrainedmodels' trunk)


def _relative_diff(ours, ref) -> float:
    ours, ref = np.asarray(ours), np.asarray(ref)
    return float(np.abs(ours - ref).max()) / max(1.0, float(np.abs(ref).max()))


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    return torch_reference.build_encoder("xception", seed=7)


def _encoder_like(reference: torch.nn.Module) -> keras.Model:
    model = get_encoder("xception")
    load_torch_weights(model, reference.state_dict())
    return model


def _wrong_block_pool(trap: str, block: str):
    """``max_pool`` as a careless port would write it, in ``block`` only: zero padding, or
    Keras "same" (which pads bottom / right only on even sizes)."""

    def pool(x, pool_size, *, name, strides, padding, nonnegative):
        if not name.startswith(f"{block}."):
            return primitives.max_pool(
                x, pool_size, strides=strides, padding=padding, nonnegative=nonnegative, name=name
            )
        if trap == "zero":
            return primitives.max_pool(
                x, pool_size, strides=strides, padding=padding, nonnegative=True, name=name
            )
        return keras.layers.MaxPooling2D(pool_size, strides, padding="same", name=name)(x)

    return pool


# (trap, block whose pool gets it, input size, first output it reaches). The correct pools
# are checked at the same sizes by TestXceptionParity.
@pytest.mark.parametrize(
    ("trap", "block", "size", "first_wrong"),
    [
        ("zero", "block1", MIXED, 2),  # pool input 36x60
        ("zero", "block3", MIXED, 4),  # 9x15 (PORTING saw 9x9 and 15x15)
        ("same", "block2", MIXED, 3),  # 18x30: even, "same" shifts the windows
    ],
)
def test_block_pools_would_fail_with_zero_or_same_padding(
    reference, monkeypatch, trap: str, block: str, size, first_wrong: int
) -> None:
    """The pool input is a BatchNorm output: signed, so the padding value matters."""
    images = random_images(*size, seed=11)
    expected = torch_reference.run_nhwc(reference, images)
    monkeypatch.setattr(xception_module, "max_pool", _wrong_block_pool(trap, block))
    wrong = [np.asarray(o) for o in _encoder_like(reference)(images, training=False)]
    assert_features_match(wrong[:first_wrong], expected[:first_wrong], "before the trap")
    assert _relative_diff(wrong[first_wrong], expected[first_wrong]) > 100 * RELATIVE_TOLERANCE


def test_separable_convs_are_depthwise_then_pointwise(reference) -> None:
    model = get_encoder("xception")
    layers = {layer.name: layer for layer in model.layers}
    assert not any(isinstance(layer, keras.layers.SeparableConv2D) for layer in model.layers)
    separable = [
        key[: -len(".pointwise.weight")]
        for key in reference.state_dict()
        if key.endswith(".pointwise.weight")
    ]
    assert len(separable) == 34  # 2 + 2 + 2 + 8 x 3 + 2 (blocks) + conv3 + conv4
    for path in separable:
        depthwise, pointwise = layers[f"{path}.conv1"], layers[f"{path}.pointwise"]
        assert type(depthwise) is keras.layers.DepthwiseConv2D, path
        assert depthwise.kernel_size == (3, 3) and depthwise.use_bias is False
        assert type(pointwise) is keras.layers.Conv2D, path
        assert pointwise.kernel_size == (1, 1) and pointwise.use_bias is False


def test_taps_are_pre_relu_block_sums_and_bn4(reference) -> None:
    model = _encoder_like(reference)
    taps = [output._keras_history.operation.name for output in model.outputs]
    assert taps == ["identity", "relu2", "block1.add", "block2.add", "block11.add", "bn4"]
    images = random_images(64, 64, seed=12)
    expected = torch_reference.run_nhwc(reference, images)
    assert_features_match(model(images, training=False), expected, "xception taps")
    for index in (2, 3, 4, 5):  # a ReLU on these taps (or in place in rep[0]) would fail
        assert _relative_diff(np.maximum(expected[index], 0), expected[index]) > 0.1


def test_stem_is_padded_in_the_encoder_and_not_in_the_classifier() -> None:
    """smp pads conv1 / conv2 by 1; NASA's classifier (pretrainedmodels) did not, and at 224
    both reach a 7x7 last map, so only the values tell them apart."""
    with torch.device("meta"):  # attributes only: no memory, no initialisation
        smp_encoder = smp.encoders.get_encoder("xception", weights=None)
    assert smp_encoder.conv1.padding == smp_encoder.conv2.padding == (1, 1)
    reference = torch_reference.build_classifier("xception", classes=54, seed=5)
    assert reference.conv1.padding == reference.conv2.padding == (0, 0)

    classifier = get_classifier("xception", 54, input_shape=(224, 224, 3))
    trunk = ("relu1", "relu2", "block1.add", "block2.add", "block11.add", "bn4")
    assert [classifier.get_layer(n).output.shape[1] for n in trunk] == [111, 109, 55, 28, 14, 7]
    # (The encoder's 112, 56, ... are compared with smp's in TestXceptionParity.)

    images = torch.from_numpy(random_images(224, 224, batch=1, seed=13).transpose(0, 3, 1, 2))
    with torch.no_grad():
        original = reference.features(images)
        reference.conv1.padding = reference.conv2.padding = (1, 1)
        padded = reference.features(images)
    assert original.shape == padded.shape == (1, 2048, 7, 7)
    # What a padded classifier would miss by in the 224x224 parity check of the logits.
    assert _relative_diff(padded.numpy(), original.numpy()) > 100 * RELATIVE_TOLERANCE


@pytest.mark.parametrize("head", ["last_linear", "fc"])
def test_checkpoint_head_may_be_fc_or_last_linear(head: str, tmp_path: Path) -> None:
    """pretrainedmodels' classifier saves ``last_linear``, smp's Xception class ``fc``: a
    classifier loads either as its head, an encoder ignores either."""
    reference = torch_reference.build_classifier("xception", classes=54, seed=6)
    state = {re.sub(r"^last_linear\.", f"{head}.", k): v for k, v in reference.state_dict().items()}
    assert f"{head}.weight" in state
    path = tmp_path / "xception.pth.tar"  # NASA's classifier files: DataParallel keys
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)

    classifier = get_classifier("xception", 54, weights=path)
    images = random_images(33, 47, seed=14)  # adaptive average: any size (224 in the class)
    assert_features_match(
        [classifier(images, training=False)],
        torch_reference.run_nhwc(reference, images),
        f"{head} at 33x47",
    )
    encoder = get_encoder("xception", depth=2, weights=path)
    np.testing.assert_array_equal(
        encoder.get_layer("conv1").kernel.numpy(),
        reference.conv1.weight.detach().numpy().transpose(2, 3, 1, 0),
    )


def test_checkpoint_with_both_head_names_is_refused() -> None:
    state = {"fc.weight": np.zeros((2, 2048)), "last_linear.weight": np.zeros((2, 2048))}
    with pytest.raises(ConversionError, match="both"):
        rename_keys(state, encoder_spec("xception").key_renames)


def test_signed_max_pool_padding_survives_onnx_export(tmp_path: Path) -> None:
    """The lowest-value padding of the block pools, through ``export_onnx`` and onnxruntime:
    a bare signed pool on negative inputs, then the stride-4 encoder cut (block1's pool)."""
    inputs = keras.Input((None, None, 4))
    pool = keras.Model(
        inputs, primitives.max_pool(inputs, 3, strides=2, padding=1, nonnegative=False, name="pool")
    )
    session = onnxruntime.InferenceSession(str(export_onnx(pool, tmp_path / "pool.onnx")))
    rng = np.random.default_rng(15)
    for size in ((9, 9), (16, 15)):
        x = (-2.0 - np.abs(rng.standard_normal((2, *size, 4)))).astype(np.float32)  # all < 0
        produced = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_array_equal(produced, np.asarray(pool(x)))
        torch_pool = F.max_pool2d(torch.from_numpy(x.transpose(0, 3, 1, 2)), 3, 2, 1)
        np.testing.assert_array_equal(produced, torch_pool.numpy().transpose(0, 2, 3, 1))
        assert produced.max() < 0  # zero padding would put zeros on every border window

    reference = torch_reference.build_encoder("xception", depth=2, seed=8)
    checkpoint = torch_reference.save_nasa_checkpoint(reference, tmp_path / "enc.pth")
    encoder = get_encoder("xception", depth=2, weights=checkpoint)
    cut = keras.Model(encoder.input, encoder.outputs[-1])
    session = onnxruntime.InferenceSession(str(export_onnx(cut, tmp_path / "cut.onnx")))
    images = random_images(*MIXED, batch=1, seed=16) - 1.0
    produced = session.run(None, {session.get_inputs()[0].name: images})[0]
    expected = torch_reference.run_nhwc(reference, images)[-1]
    assert_features_match([produced], [expected], "stride-4 cut through ONNX")
    assert_features_match([produced], [np.asarray(cut(images, training=False))], "vs Keras")
    assert expected.min() < 0
