"""``weights="micronet"`` when only NASA's PyTorch checkpoint is available: converted on the fly
into the cache, then used by encoders of any depth, classifiers and segmentation models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from micronet_tf import torch_reference, zoo
from micronet_tf.encoders import get_classifier, get_encoder
from micronet_tf.models import create_segmentation_model
from tests.encoders.parity import assert_features_match, first_of_each_family, random_images


def test_source_only_entry_converts_on_the_fly(server, zoo_env, monkeypatch) -> None:
    entry = zoo.packaged_manifest().get("resnet18.imagenet-micronet@v1.0")
    reference = torch_reference.build_encoder("resnet18", seed=5)
    torch_reference.save_nasa_checkpoint(reference, server.root / "sources" / entry.source.filename)
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", server.url)
    monkeypatch.setenv("MICRONET_TF_TRUST_UNVERIFIED", "1")
    model = get_encoder("resnet18", weights="imagenet-micronet")
    images = random_images(64, 64)
    expected = torch_reference.run_nhwc(reference, images)
    assert_features_match(model(images, training=False), expected, "converted on the fly")
    folder = zoo_env / "zoo" / entry.name / entry.version
    converted = folder / f"{entry.name}-{entry.version}.converted.weights.h5"
    assert converted.is_file() and converted.with_name(converted.name + ".sha256").is_file()

    monkeypatch.setenv("MICRONET_TF_OFFLINE", "1")  # everything below comes from the cache
    shallow = get_encoder("resnet18", depth=3, weights="resnet18.imagenet-micronet@v1.0")
    for ours, full in zip(shallow(images), model(images)):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(full))
    classifier = get_classifier("resnet18", 4, weights="imagenet-micronet")
    np.testing.assert_array_equal(
        classifier.get_layer("layer4.1.bn2").get_weights()[0],
        model.get_layer("layer4.1.bn2").get_weights()[0],
    )
    unet = create_segmentation_model(
        "Unet", "resnet18", encoder_weights="imagenet-micronet", classes=3
    )
    for layer in ("conv1", "layer3.0.downsample.0"):
        np.testing.assert_array_equal(
            unet.get_layer("encoder").get_layer(layer).get_weights()[0],
            model.get_layer(layer).get_weights()[0],
        )


@pytest.mark.parametrize("encoder", first_of_each_family())
def test_every_family_loads_by_name(encoder, server, zoo_env, monkeypatch) -> None:
    """NASA's checkpoint for the first encoder of every family, served over HTTP with a
    ``module.`` prefix (DataParallel), converted on first use and loaded by zoo name."""
    entry = zoo.packaged_manifest().get(f"{encoder}.imagenet-micronet@v1.0")
    reference = torch_reference.build_encoder(encoder, seed=6)
    source = server.root / "sources" / entry.source.filename
    source.parent.mkdir(parents=True)
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, source)
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", server.url)
    monkeypatch.setenv("MICRONET_TF_TRUST_UNVERIFIED", "1")
    model = get_encoder(encoder, weights="imagenet-micronet")
    images = random_images(64, 64)
    assert_features_match(
        model(images, training=False),
        torch_reference.run_nhwc(reference, images),
        f"{encoder} by name",
    )
    assert f"/sources/{entry.source.filename}" in server.requests
