"""A local HTTP server (127.0.0.1) that can truncate or slow down chosen files, and a clean zoo
environment (empty cache, no mirror, no trust, online) for every test."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ZOO_ENV = ("MICRONET_TF_ZOO_URL", "MICRONET_TF_OFFLINE", "MICRONET_TF_TRUST_UNVERIFIED")


@dataclass
class Server:
    root: Path
    url: str
    faults: dict[str, str] = field(default_factory=dict)  # "/path": truncate|truncate_once|slow
    requests: list[str] = field(default_factory=list)


def _handler(server: Server):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(server.root), **kwargs)

        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def do_GET(self) -> None:
            server.requests.append(self.path)
            super().do_GET()

        def copyfile(self, source, outputfile) -> None:
            fault = server.faults.get(self.path)
            if fault == "truncate_once":
                server.faults.pop(self.path)
            if fault in ("truncate", "truncate_once"):
                data = source.read()
                outputfile.write(data[: len(data) // 2])  # Content-Length promised all of it
                self.close_connection = True
            elif fault == "slow":
                while chunk := source.read(1 << 16):
                    outputfile.write(chunk)
                    outputfile.flush()
                    time.sleep(0.05)
            else:
                super().copyfile(source, outputfile)

    return Handler


@pytest.fixture()
def server(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    state = Server(root, "")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def zoo_env(tmp_path: Path, monkeypatch) -> Path:
    """An empty cache under tmp_path and none of the zoo's environment switches set."""
    for name in ZOO_ENV:
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MICRONET_TF_HOME", str(cache))
    monkeypatch.setattr("micronet_tf._download._sleep", lambda seconds: None)
    return cache
