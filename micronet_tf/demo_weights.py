"""The demo's encoder weights: the zoo's MicroNet weights whenever they can be had (the local
cache, a ``$MICRONET_TF_ZOO_URL`` mirror, NASA's URLs), else random weights; either way said in
one line and recorded for ``summary.json``.

NASA publishes no hashes, so a first download of its checkpoint is trusted on first use (its
sha256 is recorded in the cache and printed). That risks wrong numbers, never code: checkpoints
are only ever read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from micronet_tf.download import DownloadError
from micronet_tf.files import sha256_of

AUTO = "auto"  # run_demo's default: MicroNet weights when they can be had, else random
# Seconds the demo waits for its sources to answer, all of them together: offline, the demo goes
# on after this instead of sitting through the downloader's retries.
PROBE_TIMEOUT = 5.0
# What a failed attempt may raise: download and zoo errors, a missing torch, a bad checkpoint.
_FAILURES = (DownloadError, ImportError, OSError, ValueError)


@dataclass(frozen=True)
class DemoWeights:
    """``weights``: what the demo's model is built with (``None``: random); ``record``: what
    ``summary.json`` says (``"random"``, or name, source, sha256, ...); ``lines``: what the
    demo prints."""

    weights: str | None
    record: dict | str
    lines: tuple[str, ...]

    def announce(self) -> None:
        for line in self.lines:
            print(line, flush=True)


@contextlib.contextmanager
def _environment(values: dict[str, str | None]):
    """``os.environ`` with ``values`` set (``None``: unset) inside the block, restored after."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _probe(
    urls: list[str], timeout: float, enough: Sequence[str] = ()
) -> dict[str, tuple[str, str]]:
    """HEAD every URL at once; each -> ``("ok", "")``, ``("http", "HTTP 404")`` (the host is up)
    or ``("unreachable", why)``. Returns after ``timeout`` seconds at most (a DNS lookup is
    not bound by urlopen's timeout, hence the threads), or as soon as a URL in ``enough``
    answers and every URL before it has (later ones are then not waited for)."""
    results: dict[str, tuple[str, str]] = {}

    def probe(url: str) -> None:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, method="HEAD"), timeout=timeout
            ):
                results[url] = ("ok", "")
        except urllib.error.HTTPError as error:
            # 405: the server takes no HEAD, which says nothing against a GET
            results[url] = ("ok", "") if error.code == 405 else ("http", f"HTTP {error.code}")
        except (OSError, ValueError) as error:
            results[url] = ("unreachable", str(getattr(error, "reason", error)))

    threads = [
        threading.Thread(target=probe, args=(url,), daemon=True) for url in dict.fromkeys(urls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for url, thread in zip(dict.fromkeys(urls), threads):
        thread.join(max(0.0, deadline - time.monotonic()))
        if url in enough and results.get(url) == ("ok", ""):
            break
    silent = ("unreachable", f"no answer within {timeout:g} s")  # or not waited for
    return {url: results.get(url, silent) for url in urls}


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _why_not_online(candidates: list[str], results: dict[str, tuple[str, str]]) -> str:
    """One clause: which hosts cannot be reached, which do not have the file."""
    down = list(dict.fromkeys(_host(u) for u in candidates if results[u][0] == "unreachable"))
    missing = [f"{u} ({results[u][1]})" for u in candidates if results[u][0] == "http"]
    parts = []
    if down:
        first = next(results[u][1] for u in candidates if results[u][0] == "unreachable")
        parts.append(f"offline? {', '.join(down)} cannot be reached ({first})")
    if missing:
        parts.append("not found at " + ", ".join(missing))
    return "; ".join(parts)


def _file_weights(path: Path) -> DemoWeights:
    path = path.resolve()
    digest = sha256_of(path)
    record = {"name": path.name, "source": str(path), "sha256": digest}
    return DemoWeights(
        str(path), record, (f"encoder weights: {path.name} (sha256 {digest}, from {path})",)
    )


def _random(encoder: str, name: str, why: str, how: str) -> DemoWeights:
    return DemoWeights(
        None,
        "random",
        (
            f"encoder weights: random; no {name} weights for {encoder} could be had ({why})",
            f"  to use them: {how}",
        ),
    )


def resolve_demo_weights(
    encoder: str, requested=AUTO, *, cache_dir=None, timeout: float = PROBE_TIMEOUT
) -> DemoWeights:
    """The demo's encoder weights for ``encoder``.

    ``requested``: ``"auto"`` (the zoo's ``<encoder>.micronet`` when it can be had, else
    random), ``None`` (random), a weights file, or a zoo name (an error when it cannot be had).
    A zoo entry is looked for, in this order: converted weights (or NASA's checkpoint) in the
    cache (``cache_dir``, else ``$MICRONET_TF_HOME``), then — unless ``$MICRONET_TF_OFFLINE``
    — the first source that answers within ``timeout`` seconds: a published Keras artifact,
    the ``$MICRONET_TF_ZOO_URL`` mirror's copy of NASA's checkpoint, NASA's S3 and Hugging
    Face URLs. NASA's unhashed checkpoint is downloaded without asking (trust on first use).
    """
    if requested is None:
        return DemoWeights(None, "random", ("encoder weights: random (--encoder-weights none)",))
    text = os.fspath(requested)
    if text != AUTO and Path(text).is_file():
        return _file_weights(Path(text))
    from micronet_tf.weights import check_weights_argument

    if text != AUTO:
        check_weights_argument(requested, "encoder_weights")  # not a file: a zoo name
    return _from_zoo(
        encoder,
        "micronet" if text == AUTO else text,
        required=text != AUTO,
        cache_dir=cache_dir,
        timeout=timeout,
    )


def _from_zoo(encoder: str, name: str, *, required: bool, cache_dir, timeout: float) -> DemoWeights:
    from micronet_tf import zoo
    from micronet_tf.encoders import zoo_encoder
    from micronet_tf.weights import zoo_weights_file
    from micronet_tf.zoo import OFFLINE_ENV, URL_ENV, env_flag

    label = {"micronet": "MicroNet", "imagenet-micronet": "ImageNet + MicroNet"}
    flag_how = "--encoder-weights FILE (a .weights.h5, or NASA's checkpoint)"
    try:
        with _environment({OFFLINE_ENV: "1"}):  # the packaged pins and a cached mirror's
            manifest = zoo.current_manifest(cache_dir)
        entry = manifest.resolve(name, encoder)
        if entry.encoder != encoder:
            raise zoo.ZooError(
                f"{name!r} holds {entry.encoder} weights; the demo's encoder "
                f"is {encoder}: use '{encoder}.{entry.pretraining}'"
            )
        if not entry.available:
            raise zoo.ZooError(f"{entry.key}: micronet-tf has no Keras {entry.encoder} yet")
    except zoo.ZooError as error:
        if required:
            raise
        return _random(encoder, "MicroNet", str(error), flag_how)
    what = label.get(entry.pretraining, entry.pretraining)
    folder = zoo.zoo_cache_dir(cache_dir) / entry.name / entry.version
    needs_torch = importlib.util.find_spec("torch") is None
    how = (
        f"micronet-tf zoo download {entry.name} --trust-unverified (online"
        + (
            "; converting NASA's checkpoint needs torch: pip install 'micronet-tf[torch]'"
            if needs_torch
            else ""
        )
        + f"), or --encoder-weights FILE (NASA's {entry.source.filename}, or a .weights.h5)"
    )

    def give_up(why: str, error: BaseException | None = None) -> DemoWeights:
        if required:
            raise zoo.ZooError(f"{entry.key}: {why}") from error
        return _random(encoder, what, why, how)

    # 1. The cache: converted weights, a published artifact, or NASA's checkpoint to convert.
    try:
        with _environment({OFFLINE_ENV: "1"}):
            path = zoo_weights_file(entry.key, zoo_encoder, cache_dir=cache_dir, progress=False)
        return _found(encoder, what, entry.key, path, f"the cache {folder}", cache_dir)
    except _FAILURES as error:
        if needs_torch and (folder / entry.source.filename).is_file():
            return give_up(
                f"NASA's checkpoint is in the cache {folder}, but converting it needs torch", error
            )
        if not isinstance(error, zoo.ZooError):  # not "not in the cache": a damaged file
            return give_up(f"the cache {folder}: {type(error).__name__}: {error}", error)
    not_cached = f"none in the cache {folder}"
    if env_flag(OFFLINE_ENV):
        return give_up(f"{not_cached}, and {OFFLINE_ENV}=1")

    # 2. The first source that answers, in the zoo's own order of trying them.
    mirror = (os.environ.get(URL_ENV) or "").rstrip("/")
    keras_url = manifest.artifact_url(entry, "keras")  # on the mirror, pinned or not (yet)
    sources = [f"{mirror}/sources/{entry.source.filename}"] if mirror else []
    sources += list(entry.source.urls)
    candidates = ([keras_url] if keras_url else []) + sources
    results = _probe(candidates, timeout, enough=sources)
    answering = [url for url in candidates if results[url][0] == "ok"]
    if not answering:
        return give_up(f"{not_cached}, and {_why_not_online(candidates, results)}")
    if answering[0] != keras_url and needs_torch:
        return give_up(
            f"{not_cached}; NASA's checkpoint answers at {answering[0]}, but "
            "converting it needs torch"
        )
    mirror_down = mirror and all(
        results[u][0] == "unreachable" for u in candidates if u.startswith(mirror + "/")
    )
    try:
        # An unreachable mirror is left out, so that the download does not retry it.
        with _environment({URL_ENV: None} if mirror_down else {}):
            path = zoo_weights_file(
                entry.key, zoo_encoder, cache_dir=cache_dir, trust_unverified=True
            )
    except _FAILURES as error:
        return give_up(
            f"{not_cached}, and the download failed: {str(error).splitlines()[0]}", error
        )
    keras_file = entry.files.get("keras")
    is_published = keras_file is not None and path.name == keras_file.filename
    source = (
        keras_url
        if is_published
        else next((u for u in answering if u in sources), " or ".join(sources))
    )
    return _found(encoder, what, entry.key, path, source, cache_dir)


def _found(encoder: str, what: str, key: str, path: Path, source: str, cache_dir) -> DemoWeights:
    """The line and record of zoo weights at ``path``: the sha256 of what was downloaded (a
    published Keras artifact, or NASA's checkpoint the weights were converted from)."""
    from micronet_tf import zoo
    from micronet_tf.zoo import OFFLINE_ENV, RECORD_SUFFIX

    with _environment({OFFLINE_ENV: "1"}):
        entry = zoo.current_manifest(cache_dir).get(key)
    keras_file = entry.files.get("keras")
    if keras_file is not None and path.name == keras_file.filename:
        digest, pinned, of = keras_file.sha256 or sha256_of(path), True, "keras weights"
    else:
        checkpoint = path.parent / entry.source.filename
        record = checkpoint.with_name(checkpoint.name + RECORD_SUFFIX)
        pinned = bool(entry.source.sha256)
        recorded = record.read_text().strip() if record.is_file() else None
        digest, of = entry.source.sha256 or recorded, "NASA's checkpoint"
        if digest is None:  # the checkpoint's record is gone: the converted file's own hash
            digest, of = sha256_of(path), "converted weights"
    record = {
        "name": key,
        "source": source,
        "sha256": digest,
        "sha256_of": of,
        "pinned": pinned,
        "path": str(path),
    }
    return DemoWeights(
        str(path),
        record,
        (
            f"encoder weights: {what} {encoder} (zoo {key}, sha256 {digest}"
            f"{'' if pinned else ' unpinned'}, from {source})",
        ),
    )
