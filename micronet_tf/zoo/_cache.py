"""Zoo files in the local cache: verified downloads, offline mode and trust-on-first-use for
NASA's unhashed checkpoints. Converting a checkpoint when no Keras artifact is published is
:mod:`micronet_tf.weights`' job; the zoo knows nothing of encoders, conversion or export."""

from __future__ import annotations

import os
from pathlib import Path

from micronet_tf import local_paths
from micronet_tf.download import DownloadError, fetch
from micronet_tf.files import atomic_output_path, sha256_of
from micronet_tf.zoo._manifest import (
    KINDS,
    MANIFEST_NAME,
    OFFLINE_ENV,
    TRUST_ENV,
    URL_ENV,
    FileRecord,
    Manifest,
    ZooEntry,
    ZooError,
    env_flag,
    packaged_manifest,
    read_manifest,
)

RECORD_SUFFIX = ".sha256"  # beside a file downloaded without a published pin: its hash on arrival


def zoo_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache>/zoo``: ``cache_dir``, else ``$MICRONET_TF_HOME``, else ``~/.cache/micronet_tf``."""
    return Path(cache_dir or local_paths.cache_dir()).expanduser() / "zoo"


def current_manifest(cache_dir: str | os.PathLike | None = None) -> Manifest:
    """The packaged manifest, plus what the ``$MICRONET_TF_ZOO_URL`` mirror's manifest pins.

    A mirror may add hashes for files the packaged manifest leaves unpinned, never change one
    it pins. A mirror without a manifest is a plain copy of the files: that is fine too.
    """
    manifest = packaged_manifest()
    mirror = os.environ.get(URL_ENV)
    if not mirror:
        return manifest
    url = f"{mirror.rstrip('/')}/{MANIFEST_NAME}"
    safe = "".join(c if c.isalnum() else "_" for c in mirror)[-80:]
    local = zoo_cache_dir(cache_dir) / "mirrors" / f"{safe}.json"
    if not env_flag(OFFLINE_ENV):
        try:
            fetch(url, local, None, retries=1, backoff=0.2, progress=False)
        except DownloadError:
            pass  # no manifest on the mirror (or unreachable): the packaged pins apply
    if local.is_file():
        manifest = manifest.merged(read_manifest(local))
    return manifest


def _record_path(target: Path) -> Path:
    return target.with_name(target.name + RECORD_SUFFIX)


def _write_record(target: Path) -> None:
    with atomic_output_path(_record_path(target)) as temporary:
        temporary.write_text(sha256_of(target) + "\n")


def _recorded_hash(target: Path) -> str | None:
    record = _record_path(target)
    return record.read_text().strip() if record.is_file() else None


def _obtain(
    what: str,
    urls: list[str],
    target: Path,
    sha256: str | None,
    *,
    trust_unverified: bool,
    progress: bool | None,
) -> Path:
    """``target`` verified against ``sha256`` (or the hash recorded on first download),
    downloading from the first of ``urls`` that works."""
    pinned = sha256 or _recorded_hash(target)
    if pinned and target.is_file() and sha256_of(target) == pinned:
        return target
    if env_flag(OFFLINE_ENV):
        raise ZooError(
            f"{what}: offline ({OFFLINE_ENV}=1) and {target} is not in the cache"
            + (" (or does not match its sha256)" if target.is_file() else "")
            + f". Download it elsewhere from {' or '.join(urls) or '(no URL)'} and put it "
            "there, or unset the variable"
        )
    if not urls:
        raise ZooError(f"{what}: no URL to download {target.name} from")
    if not pinned and not trust_unverified:
        raise ZooError(
            f"{what}: {target.name} has no published sha256 yet (NASA does not publish "
            "hashes and micronet-tf has not pinned this file), so it is not downloaded by "
            f"default. Pass trust_unverified=True (`--trust-unverified`) or set {TRUST_ENV}=1 "
            f"to download it from {urls[0]} and record its sha256 on first use "
            f"({_record_path(target).name}; later uses are checked against it)"
        )
    failures = []
    for url in urls:
        try:
            fetch(url, target, pinned, progress=progress)
        except DownloadError as error:
            failures.append(str(error))
            continue
        if not pinned:
            _write_record(target)
        return target
    raise ZooError(f"{what}: every source failed:\n  " + "\n  ".join(failures))


def _entry_dir(entry: ZooEntry, cache_dir: str | os.PathLike | None) -> Path:
    return zoo_cache_dir(cache_dir) / entry.name / entry.version


def _source(manifest: Manifest, entry: ZooEntry, cache_dir, trust, progress) -> Path:
    urls = list(entry.source.urls)
    mirror = os.environ.get(URL_ENV)
    if mirror:
        urls.insert(0, f"{mirror.rstrip('/')}/sources/{entry.source.filename}")
    target = _entry_dir(entry, cache_dir) / entry.source.filename
    return _obtain(
        f"{entry.key} source (NASA's PyTorch checkpoint)",
        urls,
        target,
        entry.source.sha256,
        trust_unverified=trust,
        progress=progress,
    )


def _published(manifest: Manifest, entry: ZooEntry, kind: str, cache_dir, progress) -> Path | None:
    record: FileRecord | None = entry.files.get(kind)
    url = manifest.artifact_url(entry, kind)
    if record is None or url is None or not record.sha256:
        return None
    target = _entry_dir(entry, cache_dir) / record.filename
    return _obtain(
        f"{entry.key} {kind}",
        [url],
        target,
        record.sha256,
        trust_unverified=False,
        progress=progress,
    )


def _require_available(entry: ZooEntry) -> None:
    if not entry.available:
        raise ZooError(
            f"{entry.key}: micronet-tf has no Keras architecture for {entry.encoder!r} yet "
            "(micronet_tf.encoders.list_encoders() lists those it has); download(..., "
            "kind='source') still gives NASA's PyTorch checkpoint"
        )


def entry_cache_dir(entry: ZooEntry, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the cache keeps ``entry``'s files: ``<cache>/zoo/<name>/<version>``."""
    return _entry_dir(entry, cache_dir)


def verified_by_record(target: Path) -> bool:
    """Whether ``target`` exists and matches the sha256 recorded beside it
    (:func:`write_hash_record`), e.g. a file converted into the cache."""
    recorded = _recorded_hash(target)
    return bool(recorded) and target.is_file() and sha256_of(target) == recorded


def write_hash_record(target: Path) -> None:
    """Record ``target``'s sha256 beside it (``<name>.sha256``): later uses check against it."""
    _write_record(target)


def published_file(
    name: str,
    kind: str = "keras",
    *,
    cache_dir: str | os.PathLike | None = None,
    trust_unverified: bool | None = None,
    progress: bool | None = None,
    encoder: str | None = None,
) -> Path | None:
    """The published ``kind`` artifact of entry ``name``, verified in the cache; None where
    nothing is published for it (``trust_unverified`` is for the interface's symmetry: published
    files always carry a sha256)."""
    if kind not in ("keras", "onnx"):
        raise ValueError(f"kind={kind!r}; published artifacts are 'keras' or 'onnx'")
    manifest = current_manifest(cache_dir)
    entry = manifest.resolve(name, encoder)
    _require_available(entry)
    return _published(manifest, entry, kind, cache_dir, progress)


def download(
    name: str,
    kind: str = "keras",
    *,
    cache_dir: str | os.PathLike | None = None,
    trust_unverified: bool | None = None,
    progress: bool | None = None,
    encoder: str | None = None,
) -> Path:
    """A verified local copy of zoo entry ``name`` (``resnet50.micronet``, ``...@v1.1``).

    ``kind``: ``"keras"`` (encoder ``.weights.h5``), ``"onnx"`` (encoder features graph) or
    ``"source"`` (NASA's PyTorch checkpoint). Published artifacts are downloaded and checked
    against the manifest's sha256; an entry without a published artifact of that kind is an
    error naming what converts one (:func:`micronet_tf.weights.zoo_weights_file`,
    :func:`micronet_tf.export.zoo_onnx_file`). ``trust_unverified`` (default ``$MICRONET_TF_TRUST_
    UNVERIFIED``) allows downloading a source that has no pinned hash yet.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {', '.join(KINDS)}")
    trust = env_flag(TRUST_ENV) if trust_unverified is None else bool(trust_unverified)
    manifest = current_manifest(cache_dir)
    entry = manifest.resolve(name, encoder)
    if kind == "source":
        return _source(manifest, entry, cache_dir, trust, progress)
    _require_available(entry)
    published = _published(manifest, entry, kind, cache_dir, progress)
    if published is not None:
        return published
    what = "encoder weights" if kind == "keras" else "ONNX encoder"
    how = (
        "micronet_tf.weights.zoo_weights_file(name) (or weights=name) converts NASA's "
        "checkpoint into the cache"
        if kind == "keras"
        else "micronet_tf.export.zoo_onnx_file(name) exports one into the cache"
    )
    raise ZooError(
        f"{entry.key}: no {what} ({kind}) are published for it yet; {how}, and "
        f"`micronet-tf zoo download {entry.key} --kind {kind}` does either"
    )
