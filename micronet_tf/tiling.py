"""Tiled prediction: segment micrographs of any size with bounded memory.

The raw image is padded by reflection, cut into overlapping tiles that the model can take,
normalised and run one batch of tiles at a time, and stitched back with weights that fall to
zero towards each tile's edge, so neither seams nor context-starved tile borders show. Memory is
bounded by ``batch_size`` tiles plus the image itself and the H x W x classes float32 result; no
whole-image activations or whole-image normalised copy are ever built.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np
from scipy import special

from micronet_tf.preprocessing import normalize, to_float_rgb

ENGINES = ("keras", "onnx")
ACTIVATIONS = ("auto", "sigmoid", "softmax", "exp", "none")
# Without a model-specific rule (ONNX, models not built by micronet-tf): stride-32 encoders.
DEFAULT_MULTIPLE = 32
# Show a progress bar (progress=None) from this many tile batches on.
_PROGRESS_FROM = 8


def _starts(length: int, tile: int, step: int) -> list[int]:
    starts = list(range(0, max(length - tile, 0) + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """tile x tile weights: 0 within ``overlap / 2`` of an edge (where the model lacks
    context), rising linearly to 1 at ``overlap`` from the edge. Tiles are laid out so that every
    pixel is at least ``overlap`` from some tile's edge, so every pixel has weight."""
    ramp = _ramp(tile, overlap)
    return np.outer(ramp, ramp)[..., None]


def _ramp(tile: int, overlap: int) -> np.ndarray:
    if overlap == 0:
        return np.ones(tile, np.float32)
    distance = np.minimum(np.arange(tile) + 0.5, tile - np.arange(tile) - 0.5)
    half = overlap / 2
    return np.clip((distance - half) / half, 0.0, 1.0).astype(np.float32)


def _walk_layers(model) -> Iterator:
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _walk_layers(layer)


def input_rule(model) -> tuple[int, int]:
    """``(multiple, minimum)`` that a Keras model's input height and width must satisfy: read
    from the ``InputSizeCheck`` layer of micronet-tf segmentation models (e.g. 8 for
    ``encoder_depth=3``, minimum 128 for PAN); ``(32, 0)`` for other models."""
    from micronet_tf.models import InputSizeCheck

    for layer in _walk_layers(model):
        if isinstance(layer, InputSizeCheck):
            return layer.multiple, layer.minimum
    return DEFAULT_MULTIPLE, 0


def _keras_activation(model, activation: str) -> str:
    if activation != "auto":
        return activation
    from micronet_tf.models import SegmentationOutput

    layer = next((x for x in _walk_layers(model) if isinstance(x, SegmentationOutput)), None)
    if layer is None:  # not one of ours: taken as logits, like micronet_tf.training does
        return "logits"
    return {"identity": "logits", "logsoftmax": "exp"}.get(layer.activation, "none")


def _runner(
    model,
    engine: str,
    activation: str,
    mixed_precision: str | None = None,
    jit_compile: bool = False,
) -> tuple[Callable[[np.ndarray], np.ndarray], bool, tuple[int, int]]:
    """(run batch -> output, whether the model takes raw uint8 RGB, its input rule)."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: expected one of {ENGINES}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r}: expected one of {ACTIVATIONS}")
    if engine == "onnx":
        import onnxruntime

        if mixed_precision is not None or jit_compile:
            raise ValueError(
                "mixed_precision= and jit_compile= apply to engine='keras'; an ONNX model "
                "computes as onnxruntime's providers do"
            )
        if isinstance(model, (str, os.PathLike)):
            if not os.path.isfile(model):
                raise FileNotFoundError(f"model {os.fspath(model)!r}: no such .onnx file")
            model = onnxruntime.InferenceSession(os.fspath(model))
        elif not isinstance(model, onnxruntime.InferenceSession):
            raise ValueError(
                f"engine='onnx' takes an .onnx path or an onnxruntime."
                f"InferenceSession, got {type(model).__name__}"
            )
        session = model
        name = session.get_inputs()[0].name
        raw = session.get_inputs()[0].type == "tensor(uint8)"
        rule = (DEFAULT_MULTIPLE, 0)
        kind = "none" if activation == "auto" else activation

        def run(batch):
            return session.run(None, {name: batch})[0]
    else:
        from micronet_tf.compute import inference_function, with_precision

        if isinstance(model, (str, os.PathLike)):
            from micronet_tf import load_model

            model = load_model(model, compile=False)
        inputs = getattr(model, "inputs", None)
        raw = bool(inputs) and str(inputs[0].dtype) == "uint8"
        rule = input_rule(model)
        kind = _keras_activation(model, activation)
        run = inference_function(with_precision(model, mixed_precision), jit_compile)

    def finish(batch: np.ndarray) -> np.ndarray:
        out = np.asarray(run(batch), np.float32)
        mode = kind if kind != "logits" else ("sigmoid" if out.shape[-1] == 1 else "softmax")
        if mode == "sigmoid":
            return special.expit(out)  # no overflow warning for large negative logits
        if mode == "softmax":
            out = np.exp(out - out.max(axis=-1, keepdims=True))
            return out / out.sum(axis=-1, keepdims=True)
        if mode == "exp":
            return np.exp(out)
        return out

    return finish, raw, rule


def _check(tile: int, overlap: int, batch_size: int, rule: tuple[int, int]) -> None:
    multiple, minimum = rule
    if tile <= 0 or tile % multiple or tile < minimum:
        at_least = f" and at least {minimum}" if minimum else ""
        raise ValueError(
            f"tile={tile}: this model needs a positive multiple of {multiple}{at_least}"
        )
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"overlap={overlap}: expected 0 <= overlap < tile / 2 ({tile // 2})")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected >= 1")


def predict(
    model,
    image: np.ndarray,
    *,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    engine: str = "keras",
    activation: str = "auto",
    normalization: bool = True,
    progress: bool | None = None,
    mixed_precision: str | None = None,
    jit_compile: bool = False,
) -> np.ndarray:
    """Per-pixel probabilities (H x W x classes, float32) for a micrograph of any size.

    ``model``: a Keras model or ``.keras`` path (``engine="keras"``), or an ``.onnx`` path /
    ``onnxruntime.InferenceSession`` (``engine="onnx"``). ``image``: HxW, HxWx1/3/4, 8- or
    16-bit (or float in [0, 1]), normalised per tile with ImageNet mean / std
    (``normalization=False``: fed as float32 as it is); a model whose input is uint8 (an export
    with the normalisation in the graph) gets 8-bit RGB tiles. ``tile`` must satisfy the
    model's input rule (:func:`input_rule`); neighbouring tiles share ``2 * overlap`` pixels
    and each pixel has at least ``overlap / 2`` pixels of context. ``activation``: "auto" turns
    a Keras model's logits (``activation=None``) into probabilities (sigmoid for one channel,
    softmax for several) and log-softmax into softmax; ONNX outputs are taken as they are
    unless "sigmoid" / "softmax" / "exp" is given. ``progress``: a tqdm bar (None: for many
    tiles). ``mixed_precision`` (``"float16"`` / ``"bfloat16"``; None: as the model is) and
    ``jit_compile`` (XLA): see :mod:`micronet_tf.compute`; Keras engine only.
    """
    run, raw, rule = _runner(model, engine, activation, mixed_precision, jit_compile)
    _check(tile, overlap, batch_size, rule)
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image of shape {image.shape}: expected HxW or HxWxC")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {image.shape} is empty")
    # Reflect-pad the raw image by the overlap on every side (edges get context), and at the
    # bottom / right up to one tile. Normalisation happens per tile, in the batch loop.
    pad_h = (overlap, max(tile - height - overlap, 0) + overlap)
    pad_w = (overlap, max(tile - width - overlap, 0) + overlap)
    padded = np.pad(image, (pad_h, pad_w) + ((0, 0),) * (image.ndim - 2), mode="reflect")
    step = tile - 2 * overlap
    rows = _starts(padded.shape[0], tile, step)
    cols = _starts(padded.shape[1], tile, step)
    positions = [(r, c) for r in rows for c in cols]

    def prepare(piece: np.ndarray) -> np.ndarray:
        if raw:
            return (to_float_rgb(piece) * 255).round().astype(np.uint8)
        if normalization:
            return normalize(piece)
        piece = np.asarray(piece, np.float32)
        return piece[..., None] if piece.ndim == 2 else piece

    ramp = _ramp(tile, overlap)
    window = np.outer(ramp, ramp)[..., None]
    batches = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]
    if progress or (progress is None and len(batches) >= _PROGRESS_FROM):
        from tqdm.auto import tqdm

        batches = tqdm(batches, unit="batch", desc=f"{len(positions)} tiles of {tile}")
    total = None
    for group in batches:
        outputs = run(np.stack([prepare(padded[r : r + tile, c : c + tile]) for r, c in group]))
        if total is None:
            total = np.zeros((height, width, outputs.shape[-1]), np.float32)
        for (r, c), out in zip(group, outputs):
            # This tile's part inside the image (padded coordinates minus the leading pad).
            top, left = max(r, overlap), max(c, overlap)
            bottom, right = min(r + tile, overlap + height), min(c + tile, overlap + width)
            if top >= bottom or left >= right:
                continue
            piece = np.s_[top - r : bottom - r, left - c : right - c]
            total[top - overlap : bottom - overlap, left - overlap : right - overlap] += (
                out[piece] * window[piece]
            )
    # The window is an outer product and the tiles form a grid, so the weight sum per pixel
    # is the outer product of the row and column sums (no H x W weight image is needed).
    row_weight = _coverage(rows, ramp, overlap, height)
    col_weight = _coverage(cols, ramp, overlap, width)
    for start in range(0, height, 256):  # in row chunks: no full-size temporary
        block = np.outer(row_weight[start : start + 256], col_weight)[..., None]
        total[start : start + 256] /= block
    return total


def _coverage(starts: list[int], ramp: np.ndarray, offset: int, length: int) -> np.ndarray:
    weight = np.zeros(offset + length + len(ramp), np.float64)
    for start in starts:
        weight[start : start + len(ramp)] += ramp
    weight = weight[offset : offset + length]
    if not (weight > 0).all():  # cannot happen with the layout above; guards future edits
        raise AssertionError("tile layout leaves pixels without weight")
    return weight


def to_index_mask(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """HxW uint8 class indices: one channel -> ``probability > threshold`` as 0/1; several ->
    the argmax class. Expects probabilities (what :func:`predict` returns); for raw logits of
    one channel use ``threshold=0`` (sigmoid(x) > 0.5 iff x > 0); argmax is the same either
    way."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3:
        raise ValueError(f"probabilities of shape {probabilities.shape}: expected HxWxC")
    if probabilities.shape[-1] == 1:
        return (probabilities[..., 0] > threshold).astype(np.uint8)
    return np.argmax(probabilities, axis=-1).astype(np.uint8)
