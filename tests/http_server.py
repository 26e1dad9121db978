"""The tests' one local HTTP server (127.0.0.1, no internet in tests): serves a folder, records
the paths asked for, and can truncate or slow down chosen files."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Server:
    root: Path
    url: str = ""
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


@contextlib.contextmanager
def serving(root: Path) -> Iterator[Server]:
    """Serve ``root`` (created if missing) at ``Server.url`` until the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    state = Server(root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_port}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
