"""Parity of micronet_tf/encoders/dpn.py with smp's DPN encoders and pretrainedmodels' DPN
classifier, and the traps of the port, each against the wrong construction too."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from micronet_tf import torch_reference
from micronet_tf.convert import load_torch_weights
from micronet_tf.encoders import get_classifier, get_encoder
from micronet_tf.encoders.dpn import BN_EPSILON
from micronet_tf.layers import ChannelSlice, GroupedConv2D
from tests.encoders.parity import EncoderFamilyParity, assert_features_match, random_images


class TestDPNParity(EncoderFamilyParity):
    FAMILY = "dpn"
    # dpn68b (small stem, CatBnAct + c1x1_c1 / c1x1_c2) and the largest, dpn107 (7x7 stem,
    # split c1x1_c): both block kinds through every FULL check; dpn68 is checked per variant.
    FULL = ("dpn68b", "dpn107")
    SIZES = ((96, 160), (65, 97))  # odd sizes: stride-2 1x1 projections and 3x3 convs round up
    DILATED_SIZE = (65, 96)


@dataclass
class Converted:
    """A reference, our model converted from it, an input batch and our outputs on it."""

    reference: torch.nn.Module
    model: keras.Model
    images: np.ndarray
    ours: list[np.ndarray]


@pytest.fixture(scope="module")
def dpn68() -> Converted:
    """dpn68's encoder (the split c1x1_c) and smp's, once for the checks below."""
    reference = torch_reference.build_encoder("dpn68", seed=6)
    model = get_encoder("dpn68")
    load_torch_weights(model, reference.state_dict())
    images = random_images(64, 64)
    ours = [np.asarray(o) for o in model(images, training=False)]
    assert_features_match(ours, torch_reference.run_nhwc(reference, images), "dpn68")
    return Converted(reference, model, images, ours)


@pytest.fixture(scope="module")
def dpn68b_classifier() -> Converted:
    """dpn68b's classifier (CatBnAct c1x1_c) and pretrainedmodels' with test-time pooling."""
    reference = torch_reference.build_classifier("dpn68b", classes=54, seed=7, test_time_pool=True)
    model = get_classifier("dpn68b", classes=54)
    load_torch_weights(model, reference.state_dict())
    images = random_images(224, 224, batch=1)
    return Converted(reference, model, images, [np.asarray(model(images, training=False))])


def _features_with_activated_pairs(encoder: torch.nn.Module, images: np.ndarray) -> list:
    """The trap: smp's forward, except that each stage passes its ReLU'd tap on as the pair."""
    stem = encoder.features[0]
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        x = stem.act(stem.bn(stem.conv(x)))
        features = [x]
        x = stem.pool(x)
        bounds = (1, *encoder._stage_idxs)
        for start, stop in zip(bounds[:3], bounds[1:4]):
            x = encoder.features[start:stop](x)
            features.append(F.relu(torch.cat(x, dim=1)))
            x = tuple(F.relu(part) for part in x)
        features.append(encoder.features[bounds[3] : bounds[4]](x))
    return [f.numpy().transpose(0, 2, 3, 1) for f in features]


def test_taps_are_activated_but_the_next_stage_gets_the_raw_pair(dpn68: Converted) -> None:
    activated = _features_with_activated_pairs(dpn68.reference, dpn68.images)
    # Up to stride 4 the same; every later map differs when the next stage gets the ReLU'd pair.
    assert_features_match(dpn68.ours[1:3], activated[:2], "dpn68, taps up to stride 4")
    for index in (3, 4, 5):
        with pytest.raises(AssertionError, match="exceeds"):
            assert_features_match([dpn68.ours[index]], [activated[index - 1]], "activated pairs")


def test_batch_norm_epsilon_is_1e3(dpn68: Converted) -> None:
    norms = [
        layer for layer in dpn68.model.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 1 + 3 * (3 + 4 + 12 + 3) + 4 + 1  # stem, blocks, projections, conv5
    assert all(
        layer.epsilon == BN_EPSILON == 1e-3 and layer.momentum == pytest.approx(0.9)
        for layer in norms
    )
    torch_default = copy.deepcopy(dpn68.reference)
    for module in torch_default.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 1e-5  # torch's default, which DPN does not use
    with pytest.raises(AssertionError, match="exceeds"):
        assert_features_match(
            dpn68.ours, torch_reference.run_nhwc(torch_default, dpn68.images), "eps 1e-5"
        )


def test_dual_path_splits_and_grouped_convs(dpn68: Converted) -> None:
    """x_s1 / x_s2 and out1 / out2 are registered ChannelSlice layers (no Lambda); the 3x3
    convs run grouped (TensorFlow's native path)."""
    model = dpn68.model
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Lambda)]
    x_s1, x_s2 = (model.get_layer(f"features.conv3_1.{part}") for part in ("x_s1", "x_s2"))
    assert isinstance(x_s1, ChannelSlice) and (x_s1.start, x_s1.stop) == (0, 128)
    assert isinstance(x_s2, ChannelSlice) and (x_s2.start, x_s2.stop) == (128, None)
    assert x_s2.output.shape[-1] == 2 * 32  # 2 * inc
    out1, out2 = (model.get_layer(f"features.conv2_2.{part}") for part in ("out1", "out2"))
    assert isinstance(out2, ChannelSlice)
    assert (out1.start, out1.stop, out2.start, out2.stop) == (0, 64, 64, None)
    assert model.get_layer("features.conv2_2.c1x1_c.conv").filters == 64 + 16
    grouped = model.get_layer("features.conv4_5.c3x3_b.conv")
    assert isinstance(grouped, GroupedConv2D) and grouped.groups == 32


def test_dpn68b_c1x1_c_is_cat_bn_act_then_two_convs(dpn68b_classifier: Converted) -> None:
    model = dpn68b_classifier.model
    names = {layer.name for layer in model.layers}
    assert {"features.conv2_2.c1x1_c.bn", "features.conv2_2.c1x1_c.act"} <= names
    assert not {"features.conv2_2.c1x1_c.conv", "features.conv2_2.out1"} & names
    assert model.get_layer("features.conv2_2.c1x1_c1").filters == 64
    assert model.get_layer("features.conv2_2.c1x1_c2").filters == 16


def test_classifier_head_and_test_time_pooling(dpn68b_classifier: Converted) -> None:
    """Ours is global average -> last_linear (a 1x1 Conv2D with bias) at every size: the
    original's eval test-time pooling at 224x224, its test_time_pool=False path elsewhere."""
    reference, model = dpn68b_classifier.reference, dpn68b_classifier.model
    head = model.get_layer("last_linear")
    assert isinstance(head, keras.layers.Conv2D) and head.kernel.shape == (1, 1, 832, 54)

    def logits(images: np.ndarray, test_time_pool: bool) -> list[np.ndarray]:
        reference.test_time_pool = test_time_pool
        return torch_reference.run_nhwc(reference, images)

    assert_features_match(
        dpn68b_classifier.ours, logits(dpn68b_classifier.images, True), "224x224, test-time pool"
    )
    images = random_images(224, 256, batch=1)
    wider = [model(images, training=False)]
    assert_features_match(wider, logits(images, False), "224x256, global average")
    with pytest.raises(AssertionError, match="exceeds"):  # 7x8 map: the original differs
        assert_features_match(wider, logits(images, True), "224x256, test-time pool")
    with pytest.raises(RuntimeError):  # 2x3 map: the original's eval fails
        logits(random_images(64, 96, batch=1), True)
