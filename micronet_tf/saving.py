"""Loading saved micronet-tf models with every custom layer, loss and metric registered."""

from __future__ import annotations

import importlib
import os
from typing import Any


def load_model(path: Any, *, compile: bool = True) -> Any:
    """``keras.saving.load_model`` with every micronet-tf layer, loss and metric registered
    (a plain ``keras.saving.load_model`` works too after ``import micronet_tf``; this one adds
    clear messages for missing, truncated or corrupt files)."""
    import zipfile

    import keras

    for module in ("layers", "models", "training"):
        importlib.import_module(f"micronet_tf.{module}")
    if isinstance(path, (str, os.PathLike)) and not str(path).startswith(("hf://", "gs://")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model {os.fspath(path)!r}: no such file")
        if str(path).endswith(".keras") and not zipfile.is_zipfile(path):
            raise ValueError(
                f"model {os.fspath(path)!r} is corrupt or truncated (a .keras file "
                "is a zip archive; this one is not): write it again"
            )
        try:
            return keras.saving.load_model(path, compile=compile)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ValueError(
                f"model {os.fspath(path)!r} is corrupt or truncated ({error})"
            ) from None
    return keras.saving.load_model(path, compile=compile)
