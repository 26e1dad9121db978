""" "Did you mean ...?" hints for unknown names (encoders, architectures, zoo entries)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


def did_you_mean(
    name: str,
    choices: Iterable[str],
    *,
    n: int = 3,
    shown_as: Callable[[str], str] = str,
) -> str:
    """`` Did you mean 'a', 'b'?`` for the ``choices`` closest to ``name`` (shown through
    ``shown_as``, e.g. an alias's canonical name), or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=n)
    return f" Did you mean {', '.join(repr(shown_as(c)) for c in close)}?" if close else ""
