"""The MicroNet model zoo: named, versioned, hash-verified encoder weights (Keras, ONNX) and
NASA's PyTorch sources, cached locally.

``get_encoder("resnet50", weights="micronet")`` resolves through here. Environment:
``MICRONET_TF_HOME`` (cache root), ``MICRONET_TF_OFFLINE=1`` (cache only),
``MICRONET_TF_ZOO_URL`` (a mirror holding the published artifacts and optionally its
``manifest.json``), ``MICRONET_TF_TRUST_UNVERIFIED=1`` (allow NASA files nobody has hashed yet).
"""

from __future__ import annotations

from typing import Any

from micronet_tf.zoo._cache import current_manifest, download, zoo_cache_dir
from micronet_tf.zoo._load import is_zoo_name, load_zoo_weights
from micronet_tf.zoo._manifest import (
    KINDS,
    PRETRAININGS,
    FileRecord,
    Manifest,
    ZooEntry,
    ZooError,
    packaged_manifest,
    read_manifest,
)

__all__ = [
    "KINDS",
    "PRETRAININGS",
    "FileRecord",
    "Manifest",
    "ZooEntry",
    "ZooError",
    "current_manifest",
    "download",
    "is_zoo_name",
    "list_models",
    "load_zoo_weights",
    "model_info",
    "packaged_manifest",
    "read_manifest",
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
