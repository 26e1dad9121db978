"""The MicroNet model zoo: named, versioned, hash-verified encoder weights (Keras, ONNX) and
NASA's PyTorch sources, cached locally.

The zoo finds and verifies files; ``get_encoder("resnet50", weights="micronet")`` puts them
on a model through :mod:`micronet_tf.weights` (converting NASA's checkpoint where no Keras
file is published). Environment:
``MICRONET_TF_HOME`` (cache root), ``MICRONET_TF_OFFLINE=1`` (cache only),
``MICRONET_TF_ZOO_URL`` (a mirror holding the published artifacts and optionally its
``manifest.json``), ``MICRONET_TF_TRUST_UNVERIFIED=1`` (allow NASA files nobody has hashed yet).
"""

from __future__ import annotations

from typing import Any

from micronet_tf.zoo._cache import (
    RECORD_SUFFIX,
    current_manifest,
    download,
    entry_cache_dir,
    published_file,
    verified_by_record,
    write_hash_record,
    zoo_cache_dir,
)
from micronet_tf.zoo._cards import render_card
from micronet_tf.zoo._manifest import (
    KINDS,
    OFFLINE_ENV,
    PRETRAININGS,
    URL_ENV,
    FileRecord,
    Manifest,
    ZooEntry,
    ZooError,
    env_flag,
    is_zoo_name,
    packaged_manifest,
    read_manifest,
)

__all__ = [
    "KINDS",
    "OFFLINE_ENV",
    "RECORD_SUFFIX",
    "URL_ENV",
    "PRETRAININGS",
    "FileRecord",
    "Manifest",
    "ZooEntry",
    "ZooError",
    "current_manifest",
    "download",
    "env_flag",
    "entry_cache_dir",
    "is_zoo_name",
    "list_models",
    "model_info",
    "packaged_manifest",
    "published_file",
    "read_manifest",
    "render_card",
    "verified_by_record",
    "write_hash_record",
    "zoo_cache_dir",
]


def list_models(*, available: bool | None = None, pretraining: str | None = None) -> list[str]:
    """Zoo entries as ``name@version``; ``available=True`` keeps those micronet-tf can build."""
    return [
        e.key
        for e in current_manifest().entries
        if (available is None or e.available == available)
        and (pretraining is None or e.pretraining == pretraining)
    ]


def model_info(name: str) -> dict[str, Any]:
    """An entry's manifest record (encoder, pre-training, files, hashes, accuracy, licence)."""
    manifest = current_manifest()
    entry = manifest.resolve(name)
    info = {"key": entry.key, **entry.to_json()}
    for kind in entry.files:
        info["files"][kind]["resolved_url"] = manifest.artifact_url(entry, kind)
    return info
