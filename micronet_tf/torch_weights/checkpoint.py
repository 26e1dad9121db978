"""Read PyTorch checkpoints safely (``torch.load(weights_only=True)``) into numpy state dicts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from micronet_tf.torch_weights.errors import ConversionError

StateDict = dict[str, np.ndarray]
# Where training scripts nest the weights inside a larger checkpoint dict.
_WRAPPER_KEYS = ("state_dict", "model_state_dict")
_DATA_PARALLEL_PREFIX = "module."


@dataclass
class TorchCheckpoint:
    """A checkpoint's tensors (numpy, ``module.`` prefix removed) and its other entries."""

    state_dict: StateDict
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "<state dict>"


def _to_numpy(key: str, value: Any, source: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    raise ConversionError(
        f"{source}: entry {key!r} is a {type(value).__name__}, expected a tensor. "
        "Is this a state dict of model weights?"
    )


def _numpy_scalar_globals() -> list:
    """What unpickling a numpy scalar needs: data-only reconstructors, no code execution.

    Listed under numpy 1's module names too, for checkpoints written with numpy < 2.
    """
    scalar = np._core.multiarray.scalar
    dtypes = [
        getattr(np.dtypes, f"{kind}DType")
        for kind in ("Float64", "Float32", "Float16", "Int64", "Int32", "UInt8", "Bool")
    ]
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtypes]


def _torch_load(path: Path) -> Any:
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading the PyTorch checkpoint {str(path)!r} needs torch: "
            "pip install 'micronet-tf[torch]'"
        ) from error
    try:
        # weights_only=True: never run the pickle's code, only rebuild tensors and containers
        # (plus numpy scalars, which training scripts store in their loss / IoU histories).
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConversionError(
            f"{str(path)!r} could not be read as a PyTorch checkpoint with weights_only=True "
            f"({type(error).__name__}: {error}). Expected a file written by torch.save() holding "
            "a state dict (NASA's .pth.tar files are)."
        ) from error


def read_torch_checkpoint(source: str | os.PathLike | Mapping[str, Any]) -> TorchCheckpoint:
    """Read NASA's checkpoint format or a training checkpoint that wraps one.

    Accepts a path or an in-memory mapping: a plain state dict, or a dict with the weights under
    ``state_dict`` / ``model_state_dict`` (its other entries land in ``metadata``); a
    ``module.`` prefix from ``DataParallel`` is removed.
    """
    if isinstance(source, Mapping):
        name, raw = "<state dict>", source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r}: no such file")
        name, raw = str(path), _torch_load(path)
        if not isinstance(raw, Mapping):
            raise ConversionError(
                f"{name} holds a {type(raw).__name__}, expected a state dict (a mapping of "
                "parameter names to tensors)."
            )
    metadata: dict[str, Any] = {}
    for wrapper in _WRAPPER_KEYS:
        if isinstance(raw.get(wrapper), Mapping):
            metadata = {k: v for k, v in raw.items() if k != wrapper}
            raw = raw[wrapper]
            break
    keys = list(raw)
    strip = bool(keys) and all(k.startswith(_DATA_PARALLEL_PREFIX) for k in keys)
    state_dict = {
        (k[len(_DATA_PARALLEL_PREFIX) :] if strip else k): _to_numpy(k, v, name)
        for k, v in raw.items()
    }
    if not state_dict:
        raise ConversionError(f"{name} holds no tensors")
    return TorchCheckpoint(state_dict=state_dict, metadata=metadata, source=name)
