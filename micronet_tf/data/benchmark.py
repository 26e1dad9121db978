"""The paper's benchmark sets: folder layout, class encodings, pinned URLs, local copies."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from micronet_tf import local_paths

# nasa/pretrained-microscopy-models at the commit whose files checksums.tsv pins.
PINNED_COMMIT = "63ef39f50220db4c4baad8777fbf1f80d6689442"
RAW_BASE = (
    "https://raw.githubusercontent.com/nasa/pretrained-microscopy-models/"
    f"{PINNED_COMMIT}/benchmark_segmentation_data/"
)
HOMEPAGE = "https://github.com/nasa/pretrained-microscopy-models"

SUPER_CLASSES = ("matrix", "secondary", "tertiary")
EBC_CLASSES = ("background", "oxide", "crack")
# Super masks: RGB(A) with the micrograph showing through; pure blue = secondary, pure red =
# tertiary, every other colour = matrix (None). (NASA's code lists them in OpenCV's BGR order.)
SUPER_COLOURS: tuple[tuple[int, int, int] | None, ...] = (None, (0, 0, 255), (255, 0, 0))

# TFDS split name -> folder name; the masks sit in "<folder>_annot".
SPLIT_FOLDERS = {"train": "train", "validation": "val", "test": "test"}
OOD_SPLIT = ("test_ood", "different_test")


@dataclass(frozen=True)
class BenchmarkSet:
    """One of the seven published folders and what its masks mean."""

    name: str  # TFDS config name, e.g. "super1"
    folder: str  # upstream folder, e.g. "Super1"
    description: str

    @property
    def is_super(self) -> bool:
        return self.folder.startswith("Super")

    @property
    def class_names(self) -> tuple[str, ...]:
        return SUPER_CLASSES if self.is_super else EBC_CLASSES

    @property
    def splits(self) -> dict[str, str]:
        """TFDS split name -> upstream folder."""
        splits = dict(SPLIT_FOLDERS)
        if self.folder in ("Super2", "Super3"):
            splits[OOD_SPLIT[0]] = OOD_SPLIT[1]
        return splits


BENCHMARK_SETS = {
    s.name: s
    for s in (
        BenchmarkSet("super1", "Super1", "Ni-superalloy, full training set (10 images)."),
        BenchmarkSet(
            "super2",
            "Super2",
            "Ni-superalloy, few-shot (4 training images); test_ood = 5 out-of-distribution images.",
        ),
        BenchmarkSet(
            "super3",
            "Super3",
            "Ni-superalloy, one-shot (1 training image); test_ood = 5 out-of-distribution images.",
        ),
        BenchmarkSet(
            "super4",
            "Super4",
            "Ni-superalloy, Super2's training set; test = the 5 out-of-distribution images.",
        ),
        BenchmarkSet("ebc1", "EBC1", "Environmental barrier coating, full training set."),
        BenchmarkSet("ebc2", "EBC2", "Environmental barrier coating, few-shot (4 images)."),
        BenchmarkSet(
            "ebc3",
            "EBC3",
            "Environmental barrier coating, specimen-held-out split "
            "(test images all from specimen 050317#3); not the paper's one-shot EBC-3.",
        ),
    )
}

# Upstream training images our reference copy lacks, so checksums.tsv cannot pin them; their
# masks are pinned. They are fetched unverified and reported by name when they cannot be had.
UNPINNED_UPSTREAM = {
    ("EBC1", "train"): ("120718#4-B1_50cyc_14260025.tif", "122018#3_100cyc-1426C0017.tif"),
    ("EBC3", "train"): ("120718#4-B1_50cyc_14260025.tif", "122018#3_100cyc-1426C0017.tif"),
}

_POINTER_MAX_BYTES = 1024


def raw_url(relative_path: str, base: str | None = None) -> str:
    """The raw-file URL of ``Set/split/file`` (``#``, spaces and parentheses percent-encoded)."""
    return (base or RAW_BASE) + urllib.parse.quote(relative_path, safe="/")


def relative_path_of(url: str, base: str | None = None) -> str | None:
    """Inverse of :func:`raw_url`; ``None`` for a URL outside ``base``."""
    base = base or RAW_BASE
    return urllib.parse.unquote(url[len(base) :]) if url.startswith(base) else None


def upstream_files(urls: Iterable[str], folder: str) -> dict[str, list[str]]:
    """``{split folder: [file names]}`` of one set, from pinned URLs plus the unpinned images."""
    files: dict[str, set[str]] = {}
    for url in urls:
        relative = relative_path_of(url)
        if relative is None:
            continue
        parts = relative.split("/")
        if len(parts) == 3 and parts[0] == folder:
            files.setdefault(parts[1], set()).add(parts[2])
    for (set_folder, split_folder), names in UNPINNED_UPSTREAM.items():
        if set_folder == folder:
            files.setdefault(split_folder, set()).update(names)
    return {split: sorted(names) for split, names in files.items()}


def resolve_pointer(path: Path, _depth: int = 0) -> Path:
    """Follow a symbolic link, or a tiny text file holding a relative path (a de-duplicated copy
    whose links were checked out as plain files), to the real file."""
    path = Path(path).resolve()
    if _depth > 8 or not path.is_file() or path.stat().st_size > _POINTER_MAX_BYTES:
        return path
    try:
        target_text = path.read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError:
        return path
    if not target_text or "\n" in target_text or target_text.startswith(("II", "MM")):
        return path
    target = path.parent / target_text
    return resolve_pointer(target, _depth + 1) if target.is_file() else path


def find_local_root(candidate: str | Path | None, folder: str) -> Path | None:
    """``candidate`` or ``candidate/benchmark_segmentation_data`` when it holds ``folder``."""
    if candidate is None:
        return None
    candidate = Path(candidate).expanduser()
    for root in (candidate, candidate / "benchmark_segmentation_data"):
        if (root / folder).is_dir():
            return root
    return None


def local_root(manual_dir: str | Path | None, folder: str) -> Path | None:
    """Where to read set ``folder`` from: ``manual_dir`` when it holds it, else
    ``$MICRONET_TF_DATA`` (an error if it lacks the set) or ``../shared``; ``None``: download."""
    root = find_local_root(manual_dir, folder)
    if root is not None:
        return root
    configured = local_paths.benchmark_data_dir()
    root = find_local_root(configured, folder)
    if root is None and configured is not None and os.environ.get(local_paths.DATA_ENV):
        raise FileNotFoundError(
            f"{local_paths.DATA_ENV}={configured} has no {folder}/ folder; "
            "point it at a copy of benchmark_segmentation_data"
        )
    return root


class BenchmarkDataUnavailable(ConnectionError):
    """No local copy of the benchmark data, and its download server cannot be reached."""


def check_reachable(url: str, dataset: str, timeout: float = 8.0) -> None:
    """Fail fast, in one message, when ``url``'s host cannot be reached: before TFDS' retries
    (minutes of them) and without partial files. HTTP errors mean the host is up: no error."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise BenchmarkDataUnavailable(
            f"{dataset}: no local copy of the benchmark data, and {url} cannot be reached "
            f"({reason}). Set {local_paths.DATA_ENV} to a copy of NASA's "
            "benchmark_segmentation_data folder, or pass it as TFDS' manual_dir "
            "(tfds.download.DownloadConfig(manual_dir=...)); or connect to the internet"
        ) from None
