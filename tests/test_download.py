"""sha256-verified, atomic downloads, against a local HTTP server (no internet in tests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from micronet_tf.download import DownloadError, fetch
from tests.http_server import serving


@pytest.fixture()
def server(tmp_path: Path):
    with serving(tmp_path / "served") as state:
        yield state.root, state.url


def test_fetch_verifies_and_caches(server, tmp_path: Path) -> None:
    root, url = server
    payload = b"micrograph bytes" * 1000
    (root / "a #1.tif").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    target = tmp_path / "cache" / "a.tif"
    assert fetch(f"{url}/a%20%231.tif", target, digest).read_bytes() == payload
    (root / "a #1.tif").unlink()  # a cache hit must not touch the server
    assert fetch(f"{url}/a%20%231.tif", target, digest) == target


def test_bad_hash_leaves_nothing(server, tmp_path: Path) -> None:
    root, url = server
    (root / "b.tif").write_bytes(b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="does not match"):
        fetch(f"{url}/b.tif", cache / "b.tif", "0" * 64)
    assert list(cache.iterdir()) == []


def test_missing_file_is_a_clear_error(server, tmp_path: Path) -> None:
    _, url = server
    with pytest.raises(DownloadError, match="could not download"):
        fetch(f"{url}/absent.tif", tmp_path / "absent.tif", "0" * 64)
