"""Zoo files in the local cache: verified downloads, offline mode, trust-on-first-use for
NASA's unhashed checkpoints, and on-the-fly conversion when no Keras artifact is published."""

from __future__ import annotations

import os
from pathlib import Path

from micronet_tf import data_paths
from micronet_tf._download import DownloadError, fetch, sha256_of
from micronet_tf._files import atomic_output_path
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
    return Path(cache_dir or data_paths.cache_dir()).expanduser() / "zoo"


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
        from micronet_tf.encoders import list_encoders

        raise ZooError(
            f"{entry.key}: micronet-tf has no Keras architecture for {entry.encoder!r} yet "
            f"(available: {', '.join(list_encoders())}); download(..., kind='source') still "
            "gives NASA's PyTorch checkpoint"
        )


def _converted(manifest, entry, cache_dir, trust, progress) -> Path:
    """NASA's checkpoint converted into the cache (``*.converted.weights.h5`` + its hash)."""
    target = _entry_dir(entry, cache_dir) / f"{entry.name}-{entry.version}.converted.weights.h5"
    recorded = _recorded_hash(target)
    if recorded and target.is_file() and sha256_of(target) == recorded:
        return target
    source = _source(manifest, entry, cache_dir, trust, progress)
    from micronet_tf.convert import convert_checkpoint

    try:
        convert_checkpoint(source, entry.encoder, target, overwrite=True)
    except ImportError as error:
        raise ZooError(
            f"{entry.key}: no Keras weights are published for it, and converting NASA's "
            f"checkpoint on the fly needs torch: pip install 'micronet-tf[torch]' ({error})"
        ) from error
    _write_record(target)
    return target


def _exported_onnx(manifest, entry, cache_dir, trust, progress) -> Path:
    target = _entry_dir(entry, cache_dir) / f"{entry.name}-{entry.version}.converted.onnx"
    recorded = _recorded_hash(target)
    if recorded and target.is_file() and sha256_of(target) == recorded:
        return target
    weights = download(
        entry.key, "keras", cache_dir=cache_dir, trust_unverified=trust, progress=progress
    )
    from micronet_tf.encoders import get_encoder
    from micronet_tf.export import export_onnx

    export_onnx(get_encoder(entry.encoder, weights=weights), target)
    _write_record(target)
    return target


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
    against the manifest's sha256; without one, NASA's checkpoint is converted (or exported)
    into the cache, which needs torch. ``trust_unverified`` (default ``$MICRONET_TF_TRUST_
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
    if kind == "keras":
        return _converted(manifest, entry, cache_dir, trust, progress)
    return _exported_onnx(manifest, entry, cache_dir, trust, progress)
