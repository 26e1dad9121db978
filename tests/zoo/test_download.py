"""Zoo downloads against a local server: verification, cache hits, corruption, interrupted and
killed transfers, offline mode, and the trust-on-first-use rule for NASA's unhashed files."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from micronet_tf import zoo
from micronet_tf.zoo._cache import RECORD_SUFFIX

KEY = "resnet18.micronet@v1.0"
ROOT = Path(__file__).resolve().parents[2]


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _publish_keras(server, payload: bytes, pinned: bytes | None = None) -> Path:
    """Serve ``payload`` as the entry's Keras artifact and a mirror manifest pinning
    ``pinned`` (default: the payload itself)."""
    manifest = zoo.packaged_manifest()
    entry = manifest.get(KEY)
    digest = hashlib.sha256(payload if pinned is None else pinned).hexdigest()
    keras = replace(entry.files["keras"], sha256=digest, size=len(payload))
    zoo.Manifest([replace(entry, files={**entry.files, "keras": keras})]).write(
        server.root / "manifest.json"
    )
    target = server.root / keras.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    return target


def test_download_verifies_and_then_hits_the_cache(server, zoo_env, monkeypatch) -> None:
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", server.url)
    served = _publish_keras(server, b"keras weights" * 5000)
    path = zoo.download("resnet18.micronet", "keras")
    assert path.read_bytes() == served.read_bytes()
    assert path.is_relative_to(zoo_env / "zoo" / "resnet18.micronet" / "v1.0")
    served.unlink()  # a cache hit must not need the server
    before = [r for r in server.requests if r.endswith(".h5")]
    assert zoo.download(KEY, "keras") == path
    assert [r for r in server.requests if r.endswith(".h5")] == before


def test_corrupted_download_is_an_error_and_caches_nothing(server, zoo_env, monkeypatch) -> None:
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", server.url)
    _publish_keras(server, b"tampered bytes", pinned=b"the real weights")
    with pytest.raises(zoo.ZooError, match="does not match"):
        zoo.download(KEY, "keras")
    assert _files_under(zoo_env / "zoo" / "resnet18.micronet") == []


def test_interrupted_download_is_retried_and_never_cached_half(
    server, zoo_env, monkeypatch
) -> None:
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", server.url)
    served = _publish_keras(server, os.urandom(300_000))
    url_path = "/" + served.relative_to(server.root).as_posix()
    server.faults[url_path] = "truncate"
    with pytest.raises(zoo.ZooError, match="after 4 attempts"):
        zoo.download(KEY, "keras")
    assert server.requests.count(url_path) == 4
    assert _files_under(zoo_env / "zoo" / "resnet18.micronet") == []
    server.faults[url_path] = "truncate_once"  # a flaky connection: the retry succeeds
    assert zoo.download(KEY, "keras").read_bytes() == served.read_bytes()


def test_killed_download_never_passes_as_complete(server, zoo_env, monkeypatch) -> None:
    payload = os.urandom(4 << 20)  # ~3 s at the slow server's pace
    (server.root / "big.bin").write_bytes(payload)
    server.faults["/big.bin"] = "slow"
    digest = hashlib.sha256(payload).hexdigest()
    target = zoo_env / "big.bin"
    code = (
        "import sys; from micronet_tf.download import fetch; "
        "fetch(sys.argv[1], sys.argv[2], sys.argv[3])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, f"{server.url}/big.bin", str(target), digest], cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while not any(
        p.name.startswith(".partial-") and p.stat().st_size for p in _files_under(zoo_env)
    ):
        assert time.monotonic() < deadline and process.poll() is None, "download never began"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not target.exists()  # only the .partial- file is left, under another name
    server.faults.clear()
    from micronet_tf.download import fetch

    assert fetch(f"{server.url}/big.bin", target, digest).read_bytes() == payload


def test_offline_mode_uses_only_the_cache(server, zoo_env, monkeypatch) -> None:
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", server.url)
    _publish_keras(server, b"weights" * 100)
    monkeypatch.setenv("MICRONET_TF_OFFLINE", "1")
    expected = zoo_env / "zoo" / "resnet18.micronet" / "v1.0"
    with pytest.raises(zoo.ZooError, match="offline") as error:
        zoo.download(KEY, "source")
    assert str(expected / "resnet18_pretrained_microscopynet_v1.0.pth.tar") in str(error.value)
    requests = len(server.requests)
    monkeypatch.delenv("MICRONET_TF_OFFLINE")
    path = zoo.download(KEY, "keras")
    monkeypatch.setenv("MICRONET_TF_OFFLINE", "1")
    assert zoo.download(KEY, "keras") == path
    assert len(server.requests) == requests + 2  # the online call only: manifest + file


def test_unverified_sources_need_consent_and_are_pinned_on_first_use(
    server, zoo_env, monkeypatch
) -> None:
    monkeypatch.setenv("MICRONET_TF_ZOO_URL", server.url)
    entry = zoo.packaged_manifest().get("densenet121.micronet@v1.0")
    served = server.root / "sources" / entry.source.filename
    served.parent.mkdir()
    served.write_bytes(b"NASA checkpoint bytes")
    with pytest.raises(zoo.ZooError, match="MICRONET_TF_TRUST_UNVERIFIED=1"):
        zoo.download(entry.key, "source")
    assert _files_under(zoo_env / "zoo" / "densenet121.micronet") == []
    path = zoo.download(entry.key, "source", trust_unverified=True)
    record = path.with_name(path.name + RECORD_SUFFIX)
    assert record.read_text().strip() == hashlib.sha256(b"NASA checkpoint bytes").hexdigest()
    path.write_bytes(b"damaged in the cache")  # re-fetched, checked against the record
    assert zoo.download(entry.key, "source").read_bytes() == b"NASA checkpoint bytes"
    path.unlink()
    served.write_bytes(b"changed upstream")
    with pytest.raises(zoo.ZooError, match="does not match"):
        zoo.download(entry.key, "source")
