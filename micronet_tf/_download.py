"""Downloads that are verified by sha256 before use and never leave a partial file behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from micronet_tf._files import atomic_output_path

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed or its content did not have the expected sha256."""


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, destination: str | os.PathLike, sha256: str, *, timeout: float = 60) -> Path:
    """Return ``destination`` holding ``url``'s bytes, downloading only when not cached.

    A cached file is re-hashed; a fresh download is hashed before it is renamed into place, so a
    wrong or truncated file is never used and never left under ``destination``.
    """
    destination = Path(destination)
    if destination.is_file() and sha256_of(destination) == sha256:
        return destination
    try:
        with atomic_output_path(destination) as temporary:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(
                temporary, "wb"
            ) as handle:
                shutil.copyfileobj(response, handle, _CHUNK)
            actual = sha256_of(temporary)
            if actual != sha256:
                raise DownloadError(
                    f"{url}: sha256 {actual} does not match the expected {sha256}; "
                    "the file was discarded"
                )
    except OSError as error:
        raise DownloadError(f"could not download {url} to {destination}: {error}") from error
    return destination
