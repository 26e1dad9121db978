"""sha256-verified, atomic downloads, against a local HTTP server (no internet in tests)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from micronet_tf._download import DownloadError, fetch


@pytest.fixture()
def server(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=root, **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


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
