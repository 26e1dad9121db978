"""tools/convert_zoo.py + tools/publish_zoo.py end to end on NASA-format checkpoints served from
127.0.0.1, then the published encoder loaded by name (and exported) through the mirror URL."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnxruntime

from micronet_tf import cli, torch_reference, zoo
from micronet_tf.encoders import get_encoder
from micronet_tf.files import sha256_of
from micronet_tf.preprocessing import normalize
from tests.encoders.parity import assert_features_match, random_images

ROOT = Path(__file__).resolve().parents[2]
GOOD, BROKEN = "resnet18.micronet@v1.0", "resnet18.imagenet-micronet@v1.0"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convert_publish_and_load_by_name(server, zoo_env, monkeypatch, tmp_path, capsys) -> None:
    manifest = zoo.packaged_manifest()
    good, broken = manifest.get(GOOD), manifest.get(BROKEN)
    reference = torch_reference.build_encoder("resnet18", seed=3)
    sources = server.root / "nasa" / "sources"
    checkpoint = torch_reference.save_nasa_checkpoint(reference, sources / good.source.filename)
    (sources / broken.source.filename).write_bytes(b"not a checkpoint")
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", f"{server.url}/nasa")

    convert, build = _tool("convert_zoo"), tmp_path / "build"
    args = [
        "--out",
        str(build),
        "--only",
        "resnet18.micronet",
        "resnet18.imagenet-micronet",
        "--trust-unverified",
    ]
    assert convert.main(args) == 1  # one entry failed, the other was still converted
    report = capsys.readouterr().out
    assert f"{BROKEN:<42} FAILED" in report and f"{GOOD:<42} converted" in report
    built = zoo.read_manifest(build / "manifest.json").get(GOOD)
    assert built.source.sha256 == sha256_of(checkpoint)  # NASA's file pinned on conversion
    for kind in ("keras", "onnx"):
        record = built.files[kind]
        assert record.sha256 == sha256_of(build / record.path)
        assert record.size == (build / record.path).stat().st_size
    state = json.loads((build / good.name / good.version / "conversion.json").read_text())
    assert state["parity_keras_vs_pytorch"] <= 2e-5 and state["parity_onnx_vs_keras"] <= 2e-5
    assert "## Conversion check" in (build / built.card).read_text()
    assert not zoo.read_manifest(build / "manifest.json").get(BROKEN).files["keras"].sha256

    assert convert.main(args) == 1  # resumable: the converted entry is skipped
    assert f"{GOOD:<42} up to date" in capsys.readouterr().out

    publish, release = _tool("publish_zoo"), server.root / "release"
    common = [str(build), "--base-url", f"{server.url}/release"]
    assert publish.main([*common, "--to", str(release), "--dry-run"]) == 0
    assert not release.exists()
    assert publish.main([*common, "--to", str(release)]) == 0
    published = zoo.read_manifest(release / "manifest.json")
    keras = published.get(GOOD).files["keras"]
    assert keras.urls == (f"{server.url}/release/{keras.path}",)
    assert sha256_of(release / keras.path) == keras.sha256
    assert publish.main([*common, "--to", str(release)]) == 0
    assert "0 file(s), 3 already there" in capsys.readouterr().out.splitlines()[-1]

    import fsspec

    memory = fsspec.filesystem("memory")
    try:
        assert publish.main([*common, "--to", "memory://zoo-test"]) == 0
        assert memory.cat_file(f"/zoo-test/{keras.path}") == (release / keras.path).read_bytes()
    finally:
        memory.rm("/zoo-test", recursive=True)

    # A user: fresh cache, the release as mirror, the encoder by name; no conversion involved.
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", f"{server.url}/release")
    monkeypatch.setenv("MICRONET_TF_HOME", str(tmp_path / "user"))
    model = get_encoder("resnet18", weights="micronet")
    images = random_images(64, 96)
    expected = torch_reference.run_nhwc(reference, images)
    assert_features_match(model(images, training=False), expected, "published resnet18.micronet")
    cached = {p.name for p in (tmp_path / "user").rglob("*") if p.is_file()}
    assert keras.filename in cached and not any("converted" in name for name in cached)

    out = tmp_path / "encoder.onnx"
    assert (
        cli.main(
            [
                "export",
                "resnet18",
                "--weights",
                "micronet",
                "--format",
                "onnx",
                "--with-preprocessing",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    raw = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    session = onnxruntime.InferenceSession(str(out))
    produced = session.run(None, {session.get_inputs()[0].name: raw})
    expected = [np.asarray(f) for f in model(normalize(raw[0])[None], training=False)]
    assert_features_match(
        sorted(produced, key=np.size), sorted(expected, key=np.size), "exported zoo encoder"
    )
