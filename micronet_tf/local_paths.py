"""Where things live locally: the cache folder (`MICRONET_TF_HOME`) and the paper's benchmark data
(`MICRONET_TF_DATA` or a checkout beside us)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MICRONET_TF_DATA"
HOME_ENV = "MICRONET_TF_HOME"
# In a source checkout the shared data sits beside the project (as in CI): ../shared/data/...
_CHECKOUT_FALLBACK = Path("shared") / "data" / "pmm_benchmark" / "benchmark_segmentation_data"


def cache_dir() -> Path:
    """micronet-tf's cache folder: ``$MICRONET_TF_HOME`` or ``~/.cache/micronet_tf``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "micronet_tf")


def benchmark_data_dir() -> Path | None:
    """A local ``benchmark_segmentation_data`` folder, or ``None`` when there is none.

    ``$MICRONET_TF_DATA`` wins (an error if it names no folder); otherwise the
    ``../shared/data/pmm_benchmark`` copy beside a source checkout or the working directory.
    """
    configured = os.environ.get(DATA_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"{DATA_ENV}={configured!r} is not a folder; point it at a copy of NASA's "
                "benchmark_segmentation_data (the folder holding Super1 ... EBC3)"
            )
        return path
    checkout = Path(__file__).resolve().parents[1]
    for base in (checkout.parent, Path.cwd().parent):
        candidate = base / _CHECKOUT_FALLBACK
        if candidate.is_dir():
            return candidate
    return None
