"""``micronet-tf demo`` starts from the zoo's MicroNet weights when they can be had, and says
which in one line; without them (offline, empty cache) it says how to get them and trains from
random weights. NASA's checkpoint is a seeded NASA-format file served from 127.0.0.1 (the zoo
tests' server and clean environment: an empty cache under tmp_path, no mirror, no trust);
NASA's own URLs are pointed at 127.0.0.1 too, so no test touches the internet."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from micronet_tf import torch_reference, zoo
from micronet_tf.demo_weights import PROBE_TIMEOUT, resolve_demo_weights
from micronet_tf.encoders import get_encoder
from micronet_tf.models import create_segmentation_model
from micronet_tf.training.runs import run_demo
from tests.zoo import conftest as zoo_fixtures

# The zoo tests' fixtures: a local HTTP server, and a clean zoo environment (autouse here too).
server, zoo_env = zoo_fixtures.server, zoo_fixtures.zoo_env

KEY = "resnet18.micronet@v1.0"
FILENAME = "resnet18_pretrained_microscopynet_v1.0.pth.tar"
HOW = (
    "  to use them: micronet-tf zoo download resnet18.micronet --trust-unverified (online), "
    f"or --encoder-weights FILE (NASA's {FILENAME}, or a .weights.h5)"
)


def _nasa_urls(monkeypatch, *urls: str) -> None:
    """The packaged manifest with the entry's NASA URLs (S3, Hugging Face) replaced."""
    manifest = zoo.packaged_manifest()
    entries = [
        replace(e, source=replace(e.source, urls=tuple(urls))) if e.key == KEY else e
        for e in manifest.entries
    ]
    patched = replace(manifest, entries=entries)
    monkeypatch.setattr("micronet_tf.zoo._cache.packaged_manifest", lambda: patched)


def _checkpoint(path: Path):
    reference = torch_reference.build_encoder("resnet18", seed=3)
    return reference, torch_reference.save_nasa_checkpoint(reference, path)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory) -> str:
    """One TFDS build of Super-3 for both short demos."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture()
def silent_port():
    """127.0.0.1:PORT that accepts connections and never answers (a black-holed host)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield listener.getsockname()[1]
    listener.close()


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def _weighted(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def test_demo_weights_come_from_nasas_url_then_from_the_cache(
    server, zoo_env, tmp_path, monkeypatch
) -> None:
    """No mirror, no trust switch: NASA's (local) URL is used, the checkpoint's sha256 printed
    and recorded, and the encoder holds exactly the checkpoint's converted weights."""
    url = f"{server.url}/nasa/{FILENAME}"
    _nasa_urls(monkeypatch, f"{server.url}/nowhere/{FILENAME}", url)  # S3 404s, "HF" serves
    reference, served = _checkpoint(server.root / "nasa" / FILENAME)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    weights = resolve_demo_weights("resnet18")
    assert weights.lines == (
        f"encoder weights: MicroNet resnet18 (zoo {KEY}, sha256 {digest} unpinned, from {url})",
    )
    folder = zoo_env / "zoo" / "resnet18.micronet" / "v1.0"
    assert weights.record == {
        "name": KEY,
        "source": url,
        "sha256": digest,
        "sha256_of": "NASA's checkpoint",
        "pinned": False,
        "path": weights.weights,
    }
    assert Path(weights.weights).is_relative_to(folder)
    assert (folder / f"{FILENAME}.sha256").read_text().strip() == digest  # trust on first use

    unet = create_segmentation_model("Unet", "resnet18", encoder_weights=weights.weights, classes=3)
    ours = _weighted(unet.get_layer("encoder"))
    _checkpoint(tmp_path / "own" / FILENAME)  # the same seed, converted apart from the zoo
    expected = _weighted(get_encoder("resnet18", weights=tmp_path / "own" / FILENAME))
    assert ours.keys() == expected.keys() and len(ours) > 20
    for name, values in expected.items():
        for got, want in zip(ours[name], values):
            np.testing.assert_array_equal(got, want, err_msg=name)
    kernel = reference.state_dict()["layer4.1.conv2.weight"].numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(ours["layer4.1.conv2"][0], kernel)  # OIHW -> HWIO

    served.unlink()  # the second time: from the cache, without a request
    gets = list(server.requests)
    again = resolve_demo_weights("resnet18")
    assert again.lines == (
        f"encoder weights: MicroNet resnet18 (zoo {KEY}, sha256 {digest} "
        f"unpinned, from the cache {folder})",
    )
    assert again.weights == weights.weights and server.requests == gets


def test_short_demo_trains_from_the_mirrors_weights(
    server, zoo_env, tmp_path, benchmark_data, tfds_dir, silent_port, monkeypatch, capsys
) -> None:
    """The demo itself (1 epoch, 64 crops): the mirror's checkpoint is loaded (NASA's URLs
    never answer), the line printed, and summary.json / run.json record it."""
    _nasa_urls(monkeypatch, f"http://127.0.0.1:{silent_port}/{FILENAME}")
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", server.url)
    monkeypatch.setenv("MICRONET_TF_DATA", str(benchmark_data))
    reference, served = _checkpoint(server.root / "sources" / FILENAME)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    out = tmp_path / "demo"
    summary = run_demo(out, epochs=1, crop=64, data_dir=tfds_dir)
    url = f"{server.url}/sources/{FILENAME}"
    line = f"encoder weights: MicroNet resnet18 (zoo {KEY}, sha256 {digest} unpinned, from {url})"
    assert line in capsys.readouterr().out.splitlines()
    saved = json.loads((out / "report" / "summary.json").read_text())
    assert saved["encoder_weights"] == summary["encoder_weights"]
    assert {k: saved["encoder_weights"][k] for k in ("name", "source", "sha256")} == {
        "name": KEY,
        "source": url,
        "sha256": digest,
    }
    path = saved["encoder_weights"]["path"]
    assert json.loads((out / "run" / "run.json").read_text())["encoder_weights"] == path
    assert saved["epochs"] == 1 and 0.0 <= saved["test_mean_iou"] <= 1.0

    # One Adam step (8 crops, batch 8) moves each weight by about the learning rate (1e-3): the
    # trained encoder is still the checkpoint's, unlike a randomly initialised one.
    trained = keras.saving.load_model(out / "run" / "last.keras").get_layer("encoder")
    kernel = reference.state_dict()["layer3.0.conv1.weight"].numpy().transpose(2, 3, 1, 0)
    got = trained.get_layer("layer3.0.conv1").get_weights()[0]
    assert np.abs(got - kernel).max() < 3e-3
    assert (
        np.abs(get_encoder("resnet18").get_layer("layer3.0.conv1").get_weights()[0] - kernel).max()
        > 0.05
    )


def test_demo_without_weights_says_how_and_trains_from_random(
    zoo_env, tmp_path, benchmark_data, tfds_dir, silent_port, monkeypatch, capsys
) -> None:
    """Offline (a mirror that refuses, NASA's URLs black-holed) and an empty cache: the demo
    waits at most PROBE_TIMEOUT, says so in one line plus the command, and trains anyway."""
    mirror = f"http://127.0.0.1:{_closed_port()}"
    silent = f"http://127.0.0.1:{silent_port}/{FILENAME}"
    _nasa_urls(monkeypatch, silent)
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", mirror)
    monkeypatch.setenv("MICRONET_TF_DATA", str(benchmark_data))
    started = time.monotonic()
    weights = resolve_demo_weights("resnet18")
    assert time.monotonic() - started < PROBE_TIMEOUT + 10  # the downloader would take minutes
    folder = zoo_env / "zoo" / "resnet18.micronet" / "v1.0"
    assert weights.weights is None and weights.record == "random"
    assert weights.lines[0].startswith(
        "encoder weights: random; no MicroNet weights for resnet18 could be had (none in the "
        f"cache {folder}, and offline? 127.0.0.1:"
    )
    assert "cannot be reached" in weights.lines[0] and weights.lines[1:] == (HOW,)

    _nasa_urls(monkeypatch, f"http://127.0.0.1:{_closed_port()}/{FILENAME}")  # (no 2nd wait)
    out = tmp_path / "demo"
    summary = run_demo(out, epochs=1, crop=64, data_dir=tfds_dir)
    printed = capsys.readouterr().out.splitlines()
    said = [line for line in printed if line.startswith("encoder weights: ")]
    assert len(said) == 1 and said[0].startswith(weights.lines[0].split(", and offline?")[0])
    assert printed[printed.index(said[0]) + 1] == HOW
    assert summary["encoder_weights"] == "random" and summary["epochs"] == 1
    assert json.loads((out / "report" / "summary.json").read_text())["encoder_weights"] == (
        "random"
    )
    assert json.loads((out / "run" / "run.json").read_text())["encoder_weights"] is None
    assert (out / "run" / "best.keras").is_file()
    assert not [p for p in (zoo_env / "zoo").rglob("*") if p.is_file()]  # nothing downloaded


def test_demo_flag_none_forces_random_and_a_file_is_named(zoo_env, tmp_path, monkeypatch) -> None:
    from micronet_tf import cli

    given = []
    monkeypatch.setattr(
        "micronet_tf.training.runs.run_demo",
        lambda out, **kwargs: given.append(kwargs["encoder_weights"]),
    )
    assert cli.main(["demo", "--epochs", "1"]) == 0
    assert cli.main(["demo", "--encoder-weights", "none"]) == 0
    assert given == ["auto", None]
    assert resolve_demo_weights("resnet18", None).lines == (
        "encoder weights: random (--encoder-weights none)",
    )
    _, checkpoint = _checkpoint(tmp_path / "mine.pth.tar")
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    mine = resolve_demo_weights("resnet18", checkpoint)
    assert mine.weights == str(checkpoint.resolve())
    assert mine.record == {
        "name": "mine.pth.tar",
        "source": str(checkpoint.resolve()),
        "sha256": digest,
    }
    assert mine.lines == (
        f"encoder weights: mine.pth.tar (sha256 {digest}, from {checkpoint.resolve()})",
    )
