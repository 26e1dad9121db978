"""The README's encoder tables are the registry's (tools/make_encoder_table.py writes them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_encoder_table_is_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_encoder_table", ROOT / "tools" / "make_encoder_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.tables()
    assert table in (ROOT / "README.md").read_text(), (
        "README.md's encoder table is out of date: paste the output of "
        "`.venv/bin/python tools/make_encoder_table.py`"
    )
