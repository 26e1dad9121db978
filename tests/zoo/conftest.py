"""The local HTTP server (tests/http_server.py: can truncate or slow down chosen files), and a
clean zoo environment (empty cache, no mirror, no trust, online) for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.http_server import serving

ZOO_ENV = ("MICRONET_TF_ZOO_URL", "MICRONET_TF_OFFLINE", "MICRONET_TF_TRUST_UNVERIFIED")


@pytest.fixture()
def server(tmp_path: Path):
    with serving(tmp_path / "served") as state:
        yield state


@pytest.fixture(autouse=True)
def zoo_env(tmp_path: Path, monkeypatch) -> Path:
    """An empty cache under tmp_path and none of the zoo's environment switches set."""
    for name in ZOO_ENV:
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MICRONET_TF_HOME", str(cache))
    monkeypatch.setattr("micronet_tf.download._sleep", lambda seconds: None)
    return cache
