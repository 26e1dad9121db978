"""File-system helpers: outputs appear complete or not at all; files' sha256."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20


def sha256_of(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    The temporary name keeps ``target``'s full suffix (``x.weights.h5``), which some writers
    check. On error the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".partial-", suffix=f"-{target.name}", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    temporary.unlink()
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


# Each output folder lists the files micronet-tf commands wrote there (name -> command): only
# those may be replaced without --force, and they are never taken as inputs.
OUTPUT_MANIFEST = "micronet-tf-outputs.json"


def _snapshot(folder: Path) -> dict[str, int]:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file() and p.name != OUTPUT_MANIFEST and not p.name.startswith(".partial-")
    }


def _recorded(folder: Path) -> dict[str, str]:
    try:
        return dict(json.loads((folder / OUTPUT_MANIFEST).read_text()).get("files", {}))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{folder / OUTPUT_MANIFEST}: unreadable ({error}); remove it, or pass --force"
        ) from None


@contextlib.contextmanager
def owned_output_folder(
    folder: str | os.PathLike, command: str, force: bool = False
) -> Iterator[Path]:
    """Refuse ``folder`` when it holds files that an earlier run of ``command`` did not write
    (``force`` allows it); afterwards record the files this run wrote in its manifest."""
    folder = Path(folder)
    recorded = {} if force and not (folder / OUTPUT_MANIFEST).is_file() else _recorded(folder)
    before = _snapshot(folder)
    foreign = sorted(name for name in before if recorded.get(name) != command)
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise FileExistsError(
            f"--out folder {str(folder)!r} holds files that `micronet-tf {command}` did not "
            f"write ({shown}): pass another --out, or --force to write into it"
        )
    yield folder
    after = _snapshot(folder)
    recorded.update({name: command for name, stamp in after.items() if before.get(name) != stamp})
    with atomic_output_path(folder / OUTPUT_MANIFEST) as temporary:
        temporary.write_text(json.dumps({"files": dict(sorted(recorded.items()))}, indent=1))
