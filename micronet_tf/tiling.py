"""Deprecated name of :mod:`micronet_tf.prediction` (which holds ``predict``); it works, with a
warning, for one release."""

from __future__ import annotations

import warnings

from micronet_tf.prediction import *  # noqa: F403

warnings.warn(
    "micronet_tf.tiling was renamed micronet_tf.prediction (it holds predict); import that",
    DeprecationWarning,
    stacklevel=2,
)
