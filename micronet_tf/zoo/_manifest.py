"""The zoo manifest: one entry per artifact (``resnet50.micronet@v1.0``), read from package data
and, with ``MICRONET_TF_ZOO_URL``, merged with a mirror's ``manifest.json``."""

from __future__ import annotations

import importlib.resources
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from micronet_tf.download import DownloadError
from micronet_tf.suggest import did_you_mean

URL_ENV = "MICRONET_TF_ZOO_URL"
OFFLINE_ENV = "MICRONET_TF_OFFLINE"
TRUST_ENV = "MICRONET_TF_TRUST_UNVERIFIED"
PRETRAININGS = ("micronet", "imagenet-micronet")
ARTIFACT_KINDS = ("keras", "onnx")
KINDS = (*ARTIFACT_KINDS, "source")
MANIFEST_NAME = "manifest.json"
SCHEMA = 1


class ZooError(DownloadError):
    """A zoo name that does not resolve, or a file the zoo cannot provide (and why)."""


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class FileRecord:
    """One file of an entry: where it lives and, once someone hashed it, its sha256 and size."""

    filename: str
    urls: tuple[str, ...] = ()
    path: str | None = None  # relative to the artifacts' base URL (converted artifacts)
    sha256: str | None = None
    size: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileRecord:
        return cls(
            filename=data["filename"],
            urls=tuple(data.get("urls") or ()),
            path=data.get("path"),
            sha256=data.get("sha256"),
            size=data.get("size"),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"filename": self.filename}
        if self.path is not None:
            data["path"] = self.path
        data.update(urls=list(self.urls), sha256=self.sha256, size=self.size)
        return data


@dataclass(frozen=True)
class ZooEntry:
    """A named, versioned MicroNet encoder and its files (NASA's source, Keras, ONNX)."""

    name: str  # "<encoder>.<pretraining>"
    version: str
    encoder: str
    pretraining: str
    available: bool  # micronet-tf has the Keras architecture
    default: bool
    source: FileRecord
    files: Mapping[str, FileRecord] = field(default_factory=dict)
    license: str = "MIT"
    accuracy: Mapping[str, Any] = field(default_factory=dict)
    card: str | None = None
    notes: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ZooEntry:
        return cls(
            name=data["name"],
            version=data["version"],
            encoder=data["encoder"],
            pretraining=data["pretraining"],
            available=bool(data["available"]),
            default=bool(data.get("default")),
            source=FileRecord.from_json(data["source"]),
            files={k: FileRecord.from_json(v) for k, v in (data.get("files") or {}).items()},
            license=data.get("license", "MIT"),
            accuracy=dict(data.get("accuracy") or {}),
            card=data.get("card"),
            notes=data.get("notes", ""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "default": self.default,
            "encoder": self.encoder,
            "pretraining": self.pretraining,
            "available": self.available,
            "license": self.license,
            "accuracy": dict(self.accuracy),
            "source": self.source.to_json(),
            "files": {k: v.to_json() for k, v in self.files.items()},
            "card": self.card,
            "notes": self.notes,
        }


@dataclass
class Manifest:
    """All entries, plus the base URL the converted artifacts' ``path`` is relative to."""

    entries: list[ZooEntry]
    artifacts_base_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str = "<manifest>"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], origin: str = "<manifest>") -> Manifest:
        if data.get("schema") != SCHEMA:
            raise ZooError(f"{origin}: schema {data.get('schema')!r}, expected {SCHEMA}")
        extra = {
            k: v for k, v in data.items() if k not in ("schema", "artifacts_base_url", "models")
        }
        return cls(
            [ZooEntry.from_json(e) for e in data["models"]],
            data.get("artifacts_base_url"),
            extra,
            origin,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            **self.extra,
            "artifacts_base_url": self.artifacts_base_url,
            "models": [e.to_json() for e in self.entries],
        }

    def write(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp + rename), sorted keys off: entry order is meaningful."""
        from micronet_tf.files import atomic_output_path

        path = Path(path)
        with atomic_output_path(path) as temporary:
            temporary.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path

    def get(self, key: str) -> ZooEntry | None:
        return next((e for e in self.entries if e.key == key), None)

    def resolve(self, text: str, encoder: str | None = None) -> ZooEntry:
        """``name[@version]``; a bare pre-training (``micronet``) needs ``encoder``."""
        name, _, version = text.partition("@")
        if name in PRETRAININGS:
            if encoder is None:
                raise ZooError(
                    f"{text!r} names a pre-training; say which encoder, e.g. 'resnet50.{name}'"
                )
            name = f"{encoder}.{name}"
        candidates = [e for e in self.entries if e.name == name]
        if not candidates:
            hint = did_you_mean(name, sorted({e.name for e in self.entries}))
            raise ZooError(
                f"no model-zoo entry {name!r}.{hint} See micronet_tf.zoo."
                "list_models() or `micronet-tf zoo list`."
            )
        if version:
            version = version if version.startswith("v") else f"v{version}"
            match = next((e for e in candidates if e.version == version), None)
            if match is None:
                raise ZooError(
                    f"{name!r} has no version {version!r}; versions: "
                    f"{', '.join(e.version for e in candidates)}"
                )
            return match
        return next((e for e in candidates if e.default), candidates[0])

    def artifact_url(self, entry: ZooEntry, kind: str) -> str | None:
        """Where a converted artifact is published: ``$MICRONET_TF_ZOO_URL/<path>``, its own
        URL, or ``artifacts_base_url/<path>``; ``None`` when it is not published."""
        record = entry.files.get(kind)
        if record is None:
            return None
        mirror = os.environ.get(URL_ENV)
        if mirror and record.path:
            return f"{mirror.rstrip('/')}/{record.path}"
        if record.urls:
            return record.urls[0]
        if self.artifacts_base_url and record.path:
            return f"{self.artifacts_base_url.rstrip('/')}/{record.path}"
        return None

    def merged(self, other: Manifest) -> Manifest:
        """This manifest with the pins ``other`` (a mirror's) adds; pins already here must agree."""
        updated = []
        for entry in self.entries:
            theirs = other.get(entry.key)
            if theirs is None:
                updated.append(entry)
                continue
            files = dict(entry.files)
            for kind, record in theirs.files.items():
                ours = files.get(kind)
                if ours is not None and ours.sha256 and record.sha256 != ours.sha256:
                    raise ZooError(
                        f"{other.origin}: {entry.key} {kind} has sha256 {record.sha256}, but "
                        f"micronet-tf pins {ours.sha256}; this mirror serves other files"
                    )
                if ours is None or not ours.sha256:
                    files[kind] = record
            source = entry.source
            if not source.sha256 and theirs.source.sha256:
                source = replace(source, sha256=theirs.source.sha256, size=theirs.source.size)
            updated.append(replace(entry, files=files, source=source))
        return Manifest(updated, self.artifacts_base_url, dict(self.extra), self.origin)


def catalog_dir() -> Any:
    """``zoo/`` of a source checkout, else the installed ``micronet_tf.zoo.catalog`` data."""
    source = Path(__file__).resolve().parents[2] / "zoo"
    if (source.parent / "setup.cfg").is_file() and (source / MANIFEST_NAME).is_file():
        return source
    return importlib.resources.files("micronet_tf.zoo.catalog")


def packaged_manifest() -> Manifest:
    """The manifest shipped with micronet-tf."""
    resource = catalog_dir() / MANIFEST_NAME
    return Manifest.from_json(json.loads(resource.read_text()), origin=str(resource))


def read_manifest(path: str | os.PathLike) -> Manifest:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ZooError(f"manifest {str(path)!r} could not be read: {error}") from error
    return Manifest.from_json(data, origin=str(path))


def is_zoo_name(text: str) -> bool:
    """``micronet``, ``imagenet-micronet``, ``resnet50.micronet``, ``resnet50.micronet@v1.1``."""
    name = text.partition("@")[0]
    return (
        "@" in text or name in PRETRAININGS or name.endswith(tuple(f".{p}" for p in PRETRAININGS))
    )
