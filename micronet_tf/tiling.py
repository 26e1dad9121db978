"""Tiled prediction: segment micrographs of any size with bounded memory.

The image is padded by reflection, cut into overlapping tiles that the model can take, run in
batches of tiles, and stitched back with weights that fall to zero towards each tile's edge,
so neither seams nor context-starved tile borders show. Memory is bounded by ``batch_size``
tiles, not by the image (the stitched output is H x W x classes float32).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from micronet_tf.preprocessing import normalize

ENGINES = ("keras", "onnx")


def _starts(length: int, tile: int, step: int) -> list[int]:
    starts = list(range(0, max(length - tile, 0) + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """tile x tile weights: 0 within ``overlap / 2`` of an edge (where the model lacks
    context), rising linearly to 1 at ``overlap`` from the edge. Tiles are laid out so that every
    pixel is at least ``overlap`` from some tile's edge, so every pixel has weight."""
    if overlap == 0:
        return np.ones((tile, tile, 1), np.float32)
    distance = np.minimum(np.arange(tile) + 0.5, tile - np.arange(tile) - 0.5)
    half = overlap / 2
    ramp = np.clip((distance - half) / half, 0.0, 1.0).astype(np.float32)
    return np.outer(ramp, ramp)[..., None]


def _runner(model, engine: str, activation: str) -> Callable[[np.ndarray], np.ndarray]:
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: expected one of {ENGINES}")
    if engine == "onnx":
        import onnxruntime

        session = (model if isinstance(model, onnxruntime.InferenceSession)
                   else onnxruntime.InferenceSession(os.fspath(model)))
        name = session.get_inputs()[0].name

        def run(batch):
            return session.run(None, {name: batch})[0]
    else:
        if isinstance(model, (str, os.PathLike)):
            from micronet_tf import load_model

            model = load_model(model, compile=False)

        def run(batch):
            return np.asarray(model(batch, training=False))

        if activation == "auto":
            from micronet_tf.training.train import output_activation

            activation = output_activation(model)
    if activation == "auto":
        activation = "none"
    if activation not in ("sigmoid", "none"):
        raise ValueError(f"activation={activation!r}: expected 'auto', 'sigmoid' or 'none'")
    if activation == "sigmoid":
        return lambda batch: 1.0 / (1.0 + np.exp(-run(batch)))
    return run


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def predict(model, image: np.ndarray, *, tile: int = 512, overlap: int = 64,
            batch_size: int = 4, engine: str = "keras", activation: str = "auto",
            normalization: bool = True, progress: bool = False) -> np.ndarray:
    """Per-pixel probabilities (H x W x classes, float32) for a micrograph of any size.

    ``model``: a Keras model or ``.keras`` path (``engine="keras"``), or an ``.onnx`` path /
    onnxruntime session (``engine="onnx"``). ``image``: HxW, HxWx1/3/4, 8- or 16-bit (or float
    in [0, 1]); normalised with ImageNet mean / std unless ``normalization=False``. ``tile`` must
    suit the model (a multiple of 32 for stride-32 encoders). ``activation="auto"`` applies a
    sigmoid to a Keras model that returns logits; ONNX outputs are taken as they are unless
    ``activation="sigmoid"``.
    """
    if tile <= 0 or tile % 32:
        raise ValueError(f"tile={tile}: expected a positive multiple of 32")
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"overlap={overlap}: expected 0 <= overlap < tile / 2 ({tile // 2})")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected >= 1")
    run = _runner(model, engine, activation)
    x = normalize(image) if normalization else np.asarray(image, np.float32)
    height, width = x.shape[:2]
    # Reflect-pad by the overlap on every side (edges get context), and up to one tile.
    pad_h = (overlap, max(tile - height - overlap, 0) + overlap)
    pad_w = (overlap, max(tile - width - overlap, 0) + overlap)
    padded = np.pad(x, (pad_h, pad_w, (0, 0)), mode="symmetric")
    step = tile - 2 * overlap if overlap else tile
    positions = [(r, c) for r in _starts(padded.shape[0], tile, step)
                 for c in _starts(padded.shape[1], tile, step)]
    window = blend_window(tile, overlap)
    total = weights = None
    iterator = _batches(positions, batch_size)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=-(-len(positions) // batch_size), unit="batch",
                        desc=f"{len(positions)} tiles")
    for group in iterator:
        batch = np.stack([padded[r:r + tile, c:c + tile] for r, c in group])
        outputs = run(batch)
        if total is None:
            total = np.zeros((*padded.shape[:2], outputs.shape[-1]), np.float32)
            weights = np.zeros((*padded.shape[:2], 1), np.float32)
        for (r, c), out in zip(group, outputs):
            total[r:r + tile, c:c + tile] += out * window
            weights[r:r + tile, c:c + tile] += window
    # Only the padding outside the image can have no weight; it is cut away.
    region = np.s_[overlap:overlap + height, overlap:overlap + width]
    return total[region] / weights[region]


def to_index_mask(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """One channel: ``probability > threshold`` as 0/1; several: the argmax class (uint8)."""
    if probabilities.shape[-1] == 1:
        return (probabilities[..., 0] > threshold).astype(np.uint8)
    return np.argmax(probabilities, axis=-1).astype(np.uint8)
