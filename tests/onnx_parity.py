"""The tests' one ONNX parity check: run an exported file in onnxruntime and compare it with
the Keras model, output by output, with the relative bound of tests/encoders/parity.py (max abs
difference <= tolerance x max(1, largest reference value)) unless a test states its own."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np
import onnxruntime

from tests.encoders.parity import RELATIVE_TOLERANCE, assert_features_match


def run_onnx(path: str | Path, images: np.ndarray) -> list[np.ndarray]:
    """Every output of the ONNX file at ``path`` for ``images`` (its one input)."""
    session = onnxruntime.InferenceSession(str(path))
    return session.run(None, {session.get_inputs()[0].name: images})


def assert_onnx_matches(
    model: keras.Model,
    path: str | Path,
    batches: Iterable[np.ndarray],
    context: str,
    tolerance: float = RELATIVE_TOLERANCE,
) -> None:
    """onnxruntime on ``path`` gives ``model``'s outputs for every batch in ``batches``."""
    session = onnxruntime.InferenceSession(str(path))
    name = session.get_inputs()[0].name
    for x in batches:
        expected = model(x, training=False)
        expected = expected if isinstance(expected, (list, tuple)) else [expected]
        assert_features_match(
            session.run(None, {name: x}),
            [np.asarray(e) for e in expected],
            f"{context} at {x.shape}",
            tolerance,
        )
