"""Downloads that are verified by sha256 before use and never leave a partial file behind."""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from micronet_tf.files import atomic_output_path, sha256_of

_CHUNK = 1 << 20
_sleep = time.sleep  # between retries (tests replace it)


class DownloadError(RuntimeError):
    """A download failed or its content did not have the expected sha256."""


class _Truncated(OSError):
    """The server closed the connection before sending Content-Length bytes."""


def _transient(error: BaseException) -> bool:
    """Worth another try: connection trouble, truncation, 5xx / 429; not 404 or a bad hash."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500 or error.code in (408, 429)
    return isinstance(error, OSError | http.client.HTTPException)


def _copy(url: str, temporary: Path, timeout: float, progress: bool | None) -> None:
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        label = url.rsplit("/", 1)[-1][:40]
        # progress=None: a bar only on a terminal (tqdm's own rule); True / False force it.
        with (
            open(temporary, "wb") as handle,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                disable=None if progress is None else not progress,
                leave=False,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                handle.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise _Truncated(f"received {received} of {total} bytes")


def fetch(
    url: str,
    destination: str | os.PathLike,
    sha256: str | None,
    *,
    timeout: float = 60,
    retries: int = 3,
    backoff: float = 1.0,
    progress: bool | None = None,
) -> Path:
    """Return ``destination`` holding ``url``'s bytes, downloading only when not cached.

    A cached file is re-hashed; a fresh download is hashed before it is renamed into place, so a
    wrong or truncated file is never used and never left under ``destination``. Connection
    errors, truncated transfers and server errors are retried ``retries`` times, waiting
    ``backoff * 2**attempt`` seconds. ``sha256=None`` downloads without a pin (the caller
    records ``sha256_of`` the result: trust on first use) and never reuses a cached file.
    """
    destination = Path(destination)
    if sha256 is not None and destination.is_file() and sha256_of(destination) == sha256:
        return destination
    for attempt in range(retries + 1):
        try:
            with atomic_output_path(destination) as temporary:
                _copy(url, temporary, timeout, progress)
                actual = sha256_of(temporary)
                if sha256 is not None and actual != sha256:
                    raise DownloadError(
                        f"{url}: sha256 {actual} does not match the expected {sha256}; "
                        "the file was discarded"
                    )
            return destination
        except (OSError, http.client.HTTPException) as error:
            if attempt < retries and _transient(error):
                _sleep(backoff * 2**attempt)
                continue
            tries = f" after {attempt + 1} attempts" if attempt else ""
            raise DownloadError(
                f"could not download {url} to {destination}{tries}: {type(error).__name__}: {error}"
            ) from error
    raise AssertionError("unreachable")
