"""Deprecated name of :mod:`micronet_tf.file_commands` (the ``predict`` and ``measure`` commands
over many files); it works, with a warning, for one release."""

from __future__ import annotations

import warnings

from micronet_tf.file_commands import *  # noqa: F403

warnings.warn(
    "micronet_tf.batch was renamed micronet_tf.file_commands (the predict and measure "
    "commands over many files); import that",
    DeprecationWarning,
    stacklevel=2,
)
