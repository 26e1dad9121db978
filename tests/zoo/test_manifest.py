"""The packaged manifest: every NASA encoder listed, names resolve, cards exist, numbers are
NASA's, mirrors can add pins but never change one."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from micronet_tf import zoo
from micronet_tf.encoders import list_encoders
from micronet_tf.zoo._manifest import catalog_dir

NASA_ENCODERS = {
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "se_resnet50",
    "se_resnet101",
    "se_resnet152",
    "se_resnext50_32x4d",
    "se_resnext101_32x4d",
    "senet154",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "dpn68",
    "dpn68b",
    "dpn92",
    "dpn98",
    "dpn107",
    "dpn131",
    *(f"efficientnet-b{i}" for i in range(8)),
    "inceptionv4",
    "inceptionresnetv2",
    "xception",
    "mobilenet_v2",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16_bn",
}


def test_every_published_encoder_is_listed() -> None:
    manifest = zoo.packaged_manifest()
    assert {e.encoder for e in manifest.entries} == NASA_ENCODERS
    assert len(manifest.entries) == 77  # 36 MicroNet + 40 ImageNet->MicroNet + resnet50 v1.1
    available = zoo.list_models(available=True)
    assert len(available) == 77  # every entry: all 40 encoders are built
    assert {zoo.model_info(k)["encoder"] for k in available} == set(list_encoders())
    keys = [e.key for e in manifest.entries]
    assert len(keys) == len(set(keys))
    for entry in manifest.entries:
        assert (catalog_dir() / entry.card).is_file(), entry.card
        assert entry.source.urls[0].startswith("https://nasa-public-data.s3.amazonaws.com/")
        assert entry.source.sha256 is None  # nobody could hash NASA's files yet: unverified
        assert sum(e.default for e in manifest.entries if e.name == entry.name) == 1


def test_numbers_and_names_are_nasas() -> None:
    info = zoo.model_info("resnet50.imagenet-micronet")
    assert (info["accuracy"]["top1"], info["accuracy"]["top5"]) == (90.259, 99)
    assert info["source"]["filename"] == "resnet50_pretrained_imagenet-microscopynet_v1.0.pth.tar"
    assert zoo.model_info("resnext101_32x8d.micronet")["source"]["filename"] == (
        "resnext101_pretrained_microscopynet_v1.0.pth.tar"
    )
    assert (
        "microscopy-resnet18-micronet" in zoo.model_info("resnet18.micronet")["source"]["urls"][1]
    )
    assert zoo.list_models(pretraining="micronet").count("efficientnet-b7.micronet@v1.0") == 0


def test_names_resolve() -> None:
    manifest = zoo.packaged_manifest()
    assert manifest.resolve("resnet50.micronet").key == "resnet50.micronet@v1.0"
    assert manifest.resolve("resnet50.micronet@v1.1").key == "resnet50.micronet@v1.1"
    assert manifest.resolve("resnet50.micronet@1.1").key == "resnet50.micronet@v1.1"
    assert manifest.resolve("micronet", "resnet34").key == "resnet34.micronet@v1.0"
    assert manifest.resolve("imagenet-micronet", "resnet34").key == (
        "resnet34.imagenet-micronet@v1.0"
    )
    with pytest.raises(zoo.ZooError, match="Did you mean 'resnet50.micronet'"):
        manifest.resolve("resnet50.micronett")
    with pytest.raises(zoo.ZooError, match="versions: v1.0, v1.1"):
        manifest.resolve("resnet50.micronet@v2")
    with pytest.raises(zoo.ZooError, match="say which encoder"):
        manifest.resolve("micronet")
    assert zoo.is_zoo_name("micronet") and zoo.is_zoo_name("resnet50.imagenet-micronet@v1.0")
    assert not zoo.is_zoo_name("weights.pth")


def test_unavailable_encoder_and_wrong_encoder_are_clear(monkeypatch) -> None:
    from micronet_tf.encoders import get_encoder
    from micronet_tf.zoo import _cache

    base = zoo.packaged_manifest()  # as it read before DenseNet was ported
    unported = replace(
        base, entries=[replace(e, available=e.encoder != "densenet121") for e in base.entries]
    )
    monkeypatch.setattr(_cache, "packaged_manifest", lambda: unported)
    with pytest.raises(zoo.ZooError, match="no Keras architecture for 'densenet121'"):
        zoo.download("densenet121.micronet", "keras")
    with pytest.raises(zoo.ZooError, match="holds resnet50 weights; this model is a resnet18"):
        get_encoder("resnet18", weights="resnet50.micronet")


def test_a_mirror_adds_pins_but_cannot_change_them(tmp_path) -> None:
    base = zoo.packaged_manifest()
    entry = base.get("resnet18.micronet@v1.0")
    keras = replace(entry.files["keras"], sha256="a" * 64, size=10)
    mirror = zoo.Manifest([replace(entry, files={**entry.files, "keras": keras})])
    merged = base.merged(mirror)
    assert merged.get(entry.key).files["keras"].sha256 == "a" * 64
    other = zoo.Manifest(
        [replace(entry, files={**entry.files, "keras": replace(keras, sha256="b" * 64)})]
    )
    with pytest.raises(zoo.ZooError, match="micronet-tf pins"):
        merged.merged(other)
    path = merged.write(tmp_path / "m.json")
    assert json.loads(path.read_text())["schema"] == 1
    assert zoo.read_manifest(path).get(entry.key).files["keras"].size == 10


def test_zoo_cli(capsys) -> None:
    from micronet_tf import cli

    assert cli.main(["zoo", "list", "--available"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 77 and lines[0].split()[:3] == [
        "resnet18.micronet@v1.0",
        "available",
        "top-1",
    ]
    assert cli.main(["zoo", "info", "resnet50.micronet@v1.1"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "v1.1"
    assert cli.main(["zoo", "download", "resnet18.micronet"]) == 2  # unverified: refused
    error = capsys.readouterr().err.strip()
    assert error.startswith("micronet-tf zoo: error:") and "--trust-unverified" in error
    assert "MICRONET_TF_TRUST_UNVERIFIED=1" in error and "\n" not in error
