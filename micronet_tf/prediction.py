"""Tiled prediction: segment micrographs of any size with bounded memory.

The raw image is padded by reflection, cut into overlapping tiles that the model can take,
normalised and run one batch of tiles at a time, and stitched back with weights that fall to
zero towards each tile's edge, so neither seams nor context-starved tile borders show. Memory is
bounded by ``batch_size`` tiles plus the image itself and the H x W x classes float32 result; no
whole-image activations or whole-image normalised copy are ever built.

Test-time augmentation (``tta=``) runs each tile batch once per view (flipped / rotated, then
turned back) and blends the views' mean; ``uncertainty=`` adds one H x W float32 map.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator

import numpy as np
from scipy import special

from micronet_tf.intensity import Normalization, scale_to_unit, warn_if_low_range
from micronet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

ENGINES = ("keras", "onnx")
ACTIVATIONS = ("auto", "sigmoid", "softmax", "exp", "none")
# Without a model-specific rule (ONNX, models not built by micronet-tf): stride-32 encoders.
DEFAULT_MULTIPLE = 32
# Show a progress bar (progress=None) from this many tile batches on.
_PROGRESS_FROM = 8
TTA_MODES = ("flips", "d4")
UNCERTAINTIES = ("variance", "entropy")
# A view: (quarter turns counter-clockwise, then mirror left-right). Tiles are square, so every
# view keeps the tile's shape.
_VIEWS = {
    # identity, horizontal flip, vertical flip (= half turn + mirror), both (= half turn)
    "flips": ((0, False), (0, True), (2, True), (2, False)),
    "d4": tuple((turns, mirror) for turns in range(4) for mirror in (False, True)),
}
# Orientation-sensitive data (layered cross-sections, EBC): trained with left-right mirrors only.
_ORIENTED_VIEWS = ((0, False), (0, True))


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
) -> tuple[Callable[[np.ndarray], np.ndarray], bool, tuple[int, int], bool, Normalization]:
    """(run batch -> output, whether the model takes raw uint8 RGB, its input rule, whether its
    training kept the orientation: :func:`keeps_orientation`, the intensity normalisation it
    was trained with: ``"dtype"`` for ONNX files, which record none)."""
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
        oriented = False  # an ONNX file records no training labels
        trained_with = Normalization()

        def run(batch):
            return session.run(None, {name: batch})[0]
    else:
        from micronet_tf.compute import inference_function, with_precision

        if isinstance(model, (str, os.PathLike)):
            from micronet_tf.saving import load_model

            model = load_model(model, compile=False)
        inputs = getattr(model, "inputs", None)
        raw = bool(inputs) and str(inputs[0].dtype) == "uint8"
        rule = input_rule(model)
        kind = _keras_activation(model, activation)
        oriented = keeps_orientation(model)
        trained_with = _trained_normalization(model)
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

    return finish, raw, rule, oriented, trained_with


def _scaling(normalization, trained_with: Normalization) -> Normalization | None:
    """The :class:`Normalization` that ``predict(normalization=...)`` asks for (None: none)."""
    if normalization is False:
        return None
    if normalization is True or (isinstance(normalization, str) and normalization == "auto"):
        return trained_with
    try:
        return Normalization.parse(normalization)
    except ValueError as error:
        raise ValueError(f"{error}; or 'auto' (as the model was trained) or False") from None


def _trained_normalization(model) -> Normalization:
    """The Keras model's stored normalisation; ``"dtype"`` for models that are not
    micronet-tf segmentation models (a bare encoder, a user's model)."""
    from micronet_tf.models import input_normalization

    try:
        return input_normalization(model)
    except (ValueError, AttributeError):
        return Normalization()


def keeps_orientation(model) -> bool:
    """Whether a Keras model's stored training labels say its data was augmented with left-right
    mirrors only (``keep_orientation``, e.g. EBC); False for models without them."""
    from micronet_tf.models import training_labels

    try:
        labels = training_labels(model)
    except (ValueError, AttributeError):  # not a micronet-tf segmentation model
        return False
    return bool(labels and labels.get("keep_orientation"))


def check_tta(tta: str | None, uncertainty: str | None) -> None:
    """Raise ValueError for a ``tta=`` / ``uncertainty=`` that :func:`predict` does not take."""
    if tta is not None and tta not in TTA_MODES:
        raise ValueError(f"tta={tta!r}: expected None or one of {TTA_MODES}")
    if uncertainty is not None and uncertainty not in UNCERTAINTIES:
        raise ValueError(f"uncertainty={uncertainty!r}: expected None or one of {UNCERTAINTIES}")
    if uncertainty == "variance" and tta is None:
        raise ValueError(
            "uncertainty='variance' needs tta='flips' or 'd4' (one view has no variance); "
            "uncertainty='entropy' works without TTA"
        )


def tta_views(tta: str | None, keep_orientation: bool = False) -> tuple[tuple[int, bool], ...]:
    """The views ``(quarter turns, mirror left-right)`` that ``tta`` averages: None -> the
    identity; "flips" -> identity, horizontal, vertical and both flips; "d4" -> the 8 flips and
    90-degree rotations; with ``keep_orientation`` at most the identity and the horizontal flip."""
    check_tta(tta, None)
    views = ((0, False),) if tta is None else _VIEWS[tta]
    return tuple(v for v in views if v in _ORIENTED_VIEWS) if keep_orientation else views


def _to_view(batch: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    out = np.rot90(batch, turns, axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if mirror else out)


def _from_view(batch: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    return np.rot90(batch[:, :, ::-1] if mirror else batch, -turns, axes=(1, 2))


def _run_views(
    run: Callable[[np.ndarray], np.ndarray],
    batch: np.ndarray,
    views: tuple[tuple[int, bool], ...],
    variance: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over the views of one tile batch (each predicted, turned back) and, if asked, the
    variance across views averaged over classes (B x T x T). Welford's update: views that agree
    give exactly their value and exactly zero variance."""
    mean = spread = None
    for count, (turns, mirror) in enumerate(views, start=1):
        out = _from_view(run(_to_view(batch, turns, mirror)), turns, mirror)
        if mean is None:
            mean = np.array(out, np.float32)
            spread = np.zeros_like(mean) if variance else None
            continue
        delta = out - mean
        mean += delta / count
        if variance:
            spread += delta * (out - mean)
    if not variance:
        return mean, None
    return mean, (spread / len(views)).mean(axis=-1)


def predictive_entropy(probabilities: np.ndarray) -> np.ndarray:
    """H x W float32 in [0, 1]: the entropy of H x W x C probabilities divided by log(C); for
    one channel the binary entropy of p and 1 - p (divided by log 2). 0: certain; 1: uniform.
    Several channels that do not sum to 1 (per-channel sigmoids, as micronet-tf training reads
    its models) are scaled to sum to 1 first; all zero counts as uniform."""
    p = np.clip(np.asarray(probabilities, np.float32), 0.0, 1.0)
    if p.ndim != 3:
        raise ValueError(f"probabilities of shape {p.shape}: expected HxWxC")
    if p.shape[-1] == 1:
        entropy = (special.entr(p[..., 0]) + special.entr(1 - p[..., 0])) / np.log(2)
    else:
        total = p.sum(axis=-1, keepdims=True)
        p = np.where(total > 0, p / np.maximum(total, 1e-30), np.float32(1 / p.shape[-1]))
        entropy = special.entr(p).sum(axis=-1) / np.log(p.shape[-1])
    return np.clip(entropy, 0.0, 1.0).astype(np.float32)


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
    normalization: str | Normalization | bool = "auto",
    progress: bool | None = None,
    mixed_precision: str | None = None,
    jit_compile: bool = False,
    tta: str | None = None,
    uncertainty: str | None = None,
    keep_orientation: bool | None = None,
    name: str = "image",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-pixel probabilities (H x W x classes, float32) for a micrograph of any size; with
    ``uncertainty``, the pair ``(probabilities, uncertainty)`` (the second H x W float32).

    ``model``: a Keras model or ``.keras`` path (``engine="keras"``), or an ``.onnx`` path /
    ``onnxruntime.InferenceSession`` (``engine="onnx"``). ``image``: HxW, HxWx1/3/4, 8- or 16-bit
    (or float in [0, 1]). ``normalization``: how raw intensities become [0, 1] before ImageNet's
    mean / std: ``"auto"`` (default) as the Keras model was trained (its stored setting; ``"dtype"``
    for ONNX files), or ``"dtype"`` / ``"percentile[:LOW,HIGH]"`` (see
    :class:`micronet_tf.intensity.Normalization`); percentiles are taken over the whole image, never
    per tile. ``False``: fed as float32 as it is. Under ``"dtype"`` an integer image that uses less
    than 1/16 of its range gets a warning naming ``name``. A model whose input is uint8 (an export
    with the normalisation in the graph) gets 8-bit RGB tiles, scaled so. ``tile`` must satisfy the
    model's input rule (:func:`input_rule`); neighbouring tiles share ``2 * overlap`` pixels and
    each pixel has at least ``overlap / 2`` pixels of context. ``activation``: "auto" turns a Keras
    model's logits (``activation=None``) into probabilities (sigmoid for one channel, softmax for
    several) and log-softmax into softmax; ONNX outputs are taken as they are unless "sigmoid" /
    "softmax" / "exp" is given. ``progress``: a tqdm bar (None: for many tiles). ``mixed_precision``
    (``"float16"`` / ``"bfloat16"``; None: as the model is) and ``jit_compile`` (XLA): see
    :mod:`micronet_tf.compute`; Keras engine only.

    ``tta``: test-time augmentation, the mean of the probabilities over the views of
    :func:`tta_views` ("flips": 4, "d4": 8; each tile batch turned, predicted and turned back),
    for the cost of that many predictions. ``keep_orientation``: only the identity and the
    horizontal flip (for orientation-sensitive data such as EBC); None: as the Keras model's
    training labels say (:func:`keeps_orientation`; False for ONNX). ``uncertainty``:
    "variance": per pixel, the variance of the probabilities across the views (population
    variance, averaged over the classes; at most 0.25), needs ``tta``; "entropy": the
    predictive entropy of the (averaged) probabilities, divided by its maximum
    (:func:`predictive_entropy`), with or without ``tta``. Memory: one more H x W float32 map.
    """
    check_tta(tta, uncertainty)
    run, raw, rule, oriented, trained_with = _runner(
        model, engine, activation, mixed_precision, jit_compile
    )
    scaling = _scaling(normalization, trained_with)
    _check(tile, overlap, batch_size, rule)
    restrict = oriented if keep_orientation is None else bool(keep_orientation)
    views = tta_views(tta, restrict)
    if len(views) < len(tta_views(tta)):
        why = (
            "keep_orientation=True"
            if keep_orientation
            else "the model was trained keeping orientation (its training labels)"
        )
        warnings.warn(
            f"tta={tta!r}: {why}, so only the identity and the horizontal flip are averaged",
            stacklevel=2,
        )
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image of shape {image.shape}: expected HxW or HxWxC")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {image.shape} is empty")
    if scaling is not None:
        warn_if_low_range(image, name, scaling)
        bounds = scaling.bounds(image)  # the whole image's, shared by its tiles
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
        if raw:  # 8-bit RGB for a graph that normalises (by the dtype, without scaling)
            unit = scale_to_unit(piece, scaling, bounds) if scaling else scale_to_unit(piece)
            return (unit * 255).round().astype(np.uint8)
        if scaling is not None:
            unit = scale_to_unit(piece, scaling, bounds)
            return ((unit - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
        piece = np.asarray(piece, np.float32)
        return piece[..., None] if piece.ndim == 2 else piece

    ramp = _ramp(tile, overlap)
    window = np.outer(ramp, ramp)[..., None]
    batches = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]
    if progress or (progress is None and len(batches) * len(views) >= _PROGRESS_FROM):
        from tqdm.auto import tqdm

        seen = f" x {len(views)} views" if len(views) > 1 else ""
        batches = tqdm(batches, unit="batch", desc=f"{len(positions)} tiles of {tile}{seen}")
    variance = uncertainty == "variance"
    total = spread = None
    for group in batches:
        batch = np.stack([prepare(padded[r : r + tile, c : c + tile]) for r, c in group])
        outputs, spreads = _run_views(run, batch, views, variance)
        if total is None:
            total = np.zeros((height, width, outputs.shape[-1]), np.float32)
            spread = np.zeros((height, width), np.float32) if variance else None
        for index, (r, c) in enumerate(group):
            # This tile's part inside the image (padded coordinates minus the leading pad).
            top, left = max(r, overlap), max(c, overlap)
            bottom, right = min(r + tile, overlap + height), min(c + tile, overlap + width)
            if top >= bottom or left >= right:
                continue
            piece = np.s_[top - r : bottom - r, left - c : right - c]
            target = np.s_[top - overlap : bottom - overlap, left - overlap : right - overlap]
            total[target] += outputs[index][piece] * window[piece]
            if variance:
                spread[target] += spreads[index][piece] * window[piece][..., 0]
    # The window is an outer product and the tiles form a grid, so the weight sum per pixel
    # is the outer product of the row and column sums (no H x W weight image is needed).
    row_weight = _coverage(rows, ramp, overlap, height)
    col_weight = _coverage(cols, ramp, overlap, width)
    if uncertainty == "entropy":
        spread = np.empty((height, width), np.float32)
    for start in range(0, height, 256):  # in row chunks: no full-size temporary
        chunk = np.s_[start : start + 256]
        block = np.outer(row_weight[chunk], col_weight)
        total[chunk] /= block[..., None]
        if variance:
            spread[chunk] /= block
        elif uncertainty == "entropy":
            spread[chunk] = predictive_entropy(total[chunk])
    return total if uncertainty is None else (total, spread)


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
